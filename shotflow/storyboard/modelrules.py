"""One shot against its model: every rule of what a model accepts, each checked here and only here.

This is where money is lost, so nothing is snapped or dropped: a shot that asks its model for
something the model cannot do is a problem that names the file, line, shot and what the model
accepts. Values that a shot inherits (from `defaults:` or `output:`) are only requested from
models that have a field for them; values a shot sets itself must be honoured exactly. What
passes is a `ValidShot`: the exact request body and the clip's shape (the plan prices it).

A shot that starts from a frame (`from:`, `image:`, `end_image:`: `continuity.FrameSources`) goes to
its model's image endpoint: the same rules run against that endpoint's own schema and price
(`ModelSpec.for_images`), and its body leaves out the frame fields (added once the frames exist).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from shotflow import catalog
from shotflow.catalog import ModelSpec, find_model
from shotflow.errors import Problem, ShotflowError
from shotflow.model import FRAME_REF
from shotflow.storyboard.continuity import FrameSources
from shotflow.storyboard.schema import ASPECT_PATTERN, Storyboard, or_list
from shotflow.storyboard.yamlsource import Located

# shot fields that map onto model fields of the same name; never accepted inside params
MAPPED_FIELDS = ("prompt", "duration", "aspect_ratio", "resolution", "negative_prompt", "seed")


@dataclass(frozen=True)
class ValidShot:
    """A shot its model can render: what is sent to fal and the shape of the clip it returns."""

    id: str
    index: int
    line: int | None
    spec: ModelSpec  # for a shot that starts from a frame: the model as its image endpoint
    body: dict[str, Any]  # the request as sent: JSON values, unset fields left out (and the frame fields)
    seconds: int
    aspect_ratio: str
    resolution: str
    frames: FrameSources | None = None  # where its first (and last) frame come from
    image_field: str | None = None  # the image endpoint's field for the first frame
    end_field: str | None = None  # ... and for the last frame, when the endpoint takes one
    takes: int = 1  # paid generations of this shot (the shot's takes:, else defaults.takes, else 1)


def check_shot(
    board: Storyboard, located: Located, file: str, index: int, frames: FrameSources | None = None
) -> tuple[ValidShot | None, list[Problem]]:
    """Shot `index` of `board` (placeholders filled) against its model (its image endpoint when the
    shot has `frames`): the request, or every problem."""
    shot = board.shots[index]
    model_name = shot.model or board.defaults.model
    if model_name is None:
        return None, [Problem(file, located.line(("shots", index)), "no model: set model: on the shot or in defaults", shot.id)]
    try:
        spec = find_model(model_name)
    except ShotflowError as exc:
        path = ("shots", index, "model") if shot.model else ("defaults", "model")
        return None, [Problem(file, located.line(path), str(exc), shot.id)]
    if frames is not None:
        refused = _image_endpoint_problem(spec, frames)
        if refused is not None:
            key, message = refused
            return None, [Problem(file, located.line(("shots", index, key)), f"{key}: {message}", shot.id)]
    rules = _ShotRules(board, located, file, index, spec, frames)
    return rules.check(), rules.problems


def _image_endpoint_problem(spec: ModelSpec, frames: FrameSources) -> tuple[str, str] | None:
    """Why `spec` cannot take these frames (the field to point at, the message), or None."""
    key = "from" if frames.source else "image" if frames.image else "end_image"
    if spec.image is None:
        can = [m.alias for m in catalog.MODELS if m.image is not None]
        use = f"use {or_list(can)}" if can else "no model in the catalog has one yet"
        return key, f"{spec.alias} has no image-to-video endpoint, so it cannot start from a frame: {use}"
    if frames.end_image is not None and spec.image.end_field is None:
        can = [m.alias for m in catalog.MODELS if m.image is not None and m.image.end_field is not None]
        use = f"use {or_list(can)}" if can else "no model in the catalog takes one yet"
        return "end_image", f"{spec.alias}'s image endpoint takes no last frame: {use}"
    first = spec.image.input.model_fields.get(spec.image.image_field)
    if frames.source is None and frames.image is None and first is not None and first.is_required():
        return "end_image", f"{spec.alias}'s image endpoint needs a first frame too: add from: or image:"
    return None


class _ShotRules:
    """The rules of one shot's model, in the order a reader meets them; every problem is kept."""

    def __init__(self, board: Storyboard, located: Located, file: str, index: int, spec: ModelSpec, frames: FrameSources | None):
        self.board, self.located, self.file = board, located, file
        self.index, self.shot, self.frames = index, board.shots[index], frames
        self.image = spec.image if frames is not None else None
        self.spec = spec.for_images() if self.image is not None else spec
        self.name = f"{spec.alias}'s image endpoint" if self.image is not None else spec.alias
        # the body fields of the frames this shot gives (they are filled in once the frames exist)
        self.frame_fields: tuple[str, ...] = ()
        if self.image is not None and frames is not None:
            first = (self.image.image_field,) if frames.source or frames.image else ()
            last = (self.image.end_field,) if frames.end_image and self.image.end_field else ()
            self.frame_fields = first + last
        self.body: dict[str, Any] = {"prompt": self.shot.prompt}
        self.problems: list[Problem] = []

    def line(self, *path: str | int) -> int | None:
        return self.located.line(("shots", self.index, *path))

    def problem(self, message: str, *path: str | int) -> None:
        self.problems.append(Problem(self.file, self.line(*path), message, self.shot.id))

    def inherited(self, name: str) -> tuple[Any, str | None, int | None]:
        """The value of `name` for this shot, where it came from, and that line."""
        own = getattr(self.shot, name)
        if own is not None:
            return own, None, self.line(name)
        value = getattr(self.board.defaults, name, None)
        if value is not None:
            return value, f"defaults.{name}", self.located.line(("defaults", name))
        return None, None, None

    @staticmethod
    def whence(source: str | None, line: int | None) -> str:
        return f" (from {source} at line {line})" if source else ""

    def check(self) -> ValidShot | None:
        seconds = self.duration()
        aspect = self.aspect_ratio()
        resolution = self.resolution(seconds)
        self.negative_prompt()
        self.seed()
        self.params()
        body = None if self.problems else self.validated()
        if body is None:
            return None
        image = self.image
        return ValidShot(
            self.shot.id,
            self.index,
            self.line(),
            self.spec,
            body,
            seconds,
            aspect,
            resolution,
            self.frames,
            image.image_field if image else None,
            image.end_field if image else None,
            self.shot.takes or self.board.defaults.takes or 1,
        )

    def duration(self) -> int:
        spec, name = self.spec, self.name
        seconds, src, src_line = self.inherited("duration")
        if seconds is None:
            seconds = spec.default_seconds
        if seconds is None:  # a catalog entry with neither a duration field nor a fixed length
            self.problem(f"{name} has no duration field and the catalog gives no length for its clips", "duration")
            return 0
        if seconds != int(seconds):
            self.problem(
                f"{name} renders whole seconds ({or_list(spec.seconds)} s), not {seconds}{self.whence(src, src_line)}", "duration"
            )
        seconds = int(seconds)
        if spec.durations:
            if seconds in spec.durations:
                self.body["duration"] = spec.durations[seconds]
            else:
                self.problem(
                    f"{name} renders {or_list(spec.seconds)} s clips, not {seconds} s{self.whence(src, src_line)}", "duration"
                )
        elif seconds != spec.native_duration:
            self.problem(
                f"{name} has no duration field and always renders {spec.native_duration} s, not {seconds} s"
                f"{self.whence(src, src_line)}: set duration: {spec.native_duration} or pick another model",
                "duration",
            )
        return seconds

    def aspect_ratio(self) -> str:
        """The shot's own value must be honoured; an inherited one is asked of models that take one."""
        spec, name = self.spec, self.name
        aspect, src, src_line = self.inherited("aspect_ratio")
        if aspect is None and self.board.output.aspect_ratio and spec.has_field("aspect_ratio"):
            aspect, src, src_line = (
                self.board.output.aspect_ratio,
                "output.aspect_ratio",
                self.located.line(("output", "aspect_ratio")),
            )
        if not spec.has_field("aspect_ratio"):
            if aspect is not None and src is None and self.image is not None:
                self.problem(
                    f"{name} has no aspect_ratio field: the first frame decides the shape (remove aspect_ratio: here)",
                    "aspect_ratio",
                )
            elif aspect is not None and src is None and aspect != spec.native_aspect:
                self.problem(
                    f"{name} has no aspect_ratio field and always renders {spec.native_aspect}, not {aspect}", "aspect_ratio"
                )
            return spec.native_aspect
        aspect = aspect or spec.field_default("aspect_ratio")
        if aspect in spec.aspect_ratios:
            self.body["aspect_ratio"] = aspect
        else:
            self.problem(
                f"{name} takes aspect ratio {or_list(spec.aspect_ratios)}, not {aspect}{self.whence(src, src_line)}",
                "aspect_ratio",
            )
        # "auto" (an image endpoint's default: the first frame decides): the plan assumes the native shape
        return aspect if re.fullmatch(ASPECT_PATTERN, aspect) else spec.native_aspect

    def resolution(self, seconds: int) -> str:
        """Inherited from defaults, then from output; never a silent upgrade."""
        spec, name = self.spec, self.name
        resolution, src, src_line = self.inherited("resolution")
        if resolution is None:
            resolution, src, src_line = (
                self.board.output.resolution,
                "output.resolution",
                self.located.line(("output", "resolution")),
            )
        if not spec.has_field("resolution"):
            if src is None and resolution != spec.native_resolution:
                self.problem(
                    f"{name} has no resolution field and always renders {spec.native_resolution}, not {resolution}", "resolution"
                )
            resolution = spec.native_resolution
        elif resolution in spec.resolutions:
            self.body["resolution"] = resolution
        else:
            options = or_list(spec.resolutions)
            self.problem(
                f"{name} renders {options}, not {resolution}{self.whence(src, src_line)}: "
                f"set resolution: to one of {options} on this shot or in defaults",
                "resolution",
            )
        for bad_res, bad_seconds, why in spec.forbidden:
            if resolution == bad_res and seconds == bad_seconds:
                self.problem(f"{name} cannot render {bad_res} for {bad_seconds} s: {why}", "resolution")
        return resolution

    def negative_prompt(self) -> None:
        """Sent where the model takes one; refused only when the shot sets it itself."""
        negative, src, _ = self.inherited("negative_prompt")
        if negative is None:
            return
        if self.spec.has_field("negative_prompt"):
            self.body["negative_prompt"] = negative
        elif src is None:
            self.problem(f"{self.name} takes no negative_prompt", "negative_prompt")

    def seed(self) -> None:
        if self.shot.seed is None:
            return
        if self.spec.has_field("seed"):
            self.body["seed"] = self.shot.seed
        else:
            self.problem(f"{self.name} takes no seed", "seed")

    def params(self) -> None:
        """Model-specific fields, checked against the model's own input class."""
        frame_keys = (self.image.image_field, self.image.end_field) if self.image else ()
        for key, value in self.shot.params.items():
            if key in MAPPED_FIELDS:
                self.problem(f"params.{key}: set {key}: on the shot, not in params", "params", key)
            elif key in frame_keys:
                given = "from: or image:" if key == frame_keys[0] else "end_image:"
                self.problem(f"params.{key}: the frame is given by {given} on the shot, not in params", "params", key)
            elif not self.spec.has_field(key):
                extra = sorted(set(self.spec.input.model_fields) - set(MAPPED_FIELDS) - set(frame_keys))
                self.problem(
                    f"params.{key}: {self.name} has no such field (its own fields: {', '.join(extra) or 'none'})", "params", key
                )
            else:
                self.body[key] = value

    def validated(self) -> dict[str, Any] | None:
        """The body as the model's input class reads it (types, enums, bounds), as JSON; a frame
        field is checked with a stand-in reference, then left out (the frame does not exist yet)."""
        stand_in = FRAME_REF + "0" * 64
        try:
            validated = self.spec.input.model_validate({**self.body, **dict.fromkeys(self.frame_fields, stand_in)})
        except ValidationError as exc:
            for err in exc.errors():
                key = str(err["loc"][0]) if err["loc"] else "?"
                where = ("params", key) if key in self.shot.params else ()
                self.problem(f"{'params.' if where else ''}{key}: {err['msg']} (got {err['input']!r})", *where)
            return None
        body = validated.model_dump(mode="json", exclude_none=True)
        return {key: value for key, value in body.items() if key not in self.frame_fields}
