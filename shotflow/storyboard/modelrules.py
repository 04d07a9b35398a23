"""One shot against its model: every rule of what a model accepts, each checked here and only here.

This is where money is lost, so nothing is snapped or dropped: a shot that asks its model for
something the model cannot do is a problem that names the file, line, shot and what the model
accepts. Values that a shot inherits (from `defaults:` or `output:`) are only requested from
models that have a field for them; values a shot sets itself must be honoured exactly. What
passes is a `ValidShot`: the exact request body and the clip's shape (the plan prices it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from shotflow.catalog import ModelSpec, find_model
from shotflow.errors import Problem, ShotflowError
from shotflow.storyboard.schema import Storyboard, or_list
from shotflow.storyboard.yamlsource import Located

# shot fields that map onto model fields of the same name; never accepted inside params
MAPPED_FIELDS = ("prompt", "duration", "aspect_ratio", "resolution", "negative_prompt", "seed")


@dataclass(frozen=True)
class ValidShot:
    """A shot its model can render: what is sent to fal and the shape of the clip it returns."""

    id: str
    index: int
    line: int | None
    spec: ModelSpec
    body: dict[str, Any]  # the request as sent: JSON values, unset fields left out
    seconds: int
    aspect_ratio: str
    resolution: str


def check_shot(board: Storyboard, located: Located, file: str, index: int) -> tuple[ValidShot | None, list[Problem]]:
    """Shot `index` of `board` (placeholders filled) against its model: the request, or every problem."""
    shot = board.shots[index]
    model_name = shot.model or board.defaults.model
    if model_name is None:
        return None, [Problem(file, located.line(("shots", index)), "no model: set model: on the shot or in defaults", shot.id)]
    try:
        spec = find_model(model_name)
    except ShotflowError as exc:
        path = ("shots", index, "model") if shot.model else ("defaults", "model")
        return None, [Problem(file, located.line(path), str(exc), shot.id)]
    rules = _ShotRules(board, located, file, index, spec)
    return rules.check(), rules.problems


class _ShotRules:
    """The rules of one shot's model, in the order a reader meets them; every problem is kept."""

    def __init__(self, board: Storyboard, located: Located, file: str, index: int, spec: ModelSpec):
        self.board, self.located, self.file = board, located, file
        self.index, self.shot, self.spec = index, board.shots[index], spec
        self.name = spec.alias
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
        return ValidShot(self.shot.id, self.index, self.line(), self.spec, body, seconds, aspect, resolution)

    def duration(self) -> int:
        spec, name = self.spec, self.name
        seconds, src, src_line = self.inherited("duration")
        if seconds is None:
            seconds = spec.default_seconds
        if seconds != int(seconds):
            self.problem(f"{name} renders whole seconds ({or_list(spec.seconds)} s), not {seconds}{self.whence(src, src_line)}", "duration")
        seconds = int(seconds)
        if spec.durations:
            if seconds in spec.durations:
                self.body["duration"] = spec.durations[seconds]
            else:
                self.problem(f"{name} renders {or_list(spec.seconds)} s clips, not {seconds} s{self.whence(src, src_line)}", "duration")
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
            aspect, src, src_line = self.board.output.aspect_ratio, "output.aspect_ratio", self.located.line(("output", "aspect_ratio"))
        if not spec.has_field("aspect_ratio"):
            if aspect is not None and src is None and aspect != spec.native_aspect:
                self.problem(f"{name} has no aspect_ratio field and always renders {spec.native_aspect}, not {aspect}", "aspect_ratio")
            return spec.native_aspect
        aspect = aspect or spec.field_default("aspect_ratio")
        if aspect in spec.aspect_ratios:
            self.body["aspect_ratio"] = aspect
        else:
            self.problem(f"{name} takes aspect ratio {or_list(spec.aspect_ratios)}, not {aspect}{self.whence(src, src_line)}", "aspect_ratio")
        return aspect

    def resolution(self, seconds: int) -> str:
        """Inherited from defaults, then from output; never a silent upgrade."""
        spec, name = self.spec, self.name
        resolution, src, src_line = self.inherited("resolution")
        if resolution is None:
            resolution, src, src_line = self.board.output.resolution, "output.resolution", self.located.line(("output", "resolution"))
        if not spec.has_field("resolution"):
            if src is None and resolution != spec.native_resolution:
                self.problem(f"{name} has no resolution field and always renders {spec.native_resolution}, not {resolution}", "resolution")
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
        for key, value in self.shot.params.items():
            if key in MAPPED_FIELDS:
                self.problem(f"params.{key}: set {key}: on the shot, not in params", "params", key)
            elif not self.spec.has_field(key):
                extra = sorted(set(self.spec.input.model_fields) - set(MAPPED_FIELDS))
                self.problem(f"params.{key}: {self.name} has no such field (its own fields: {', '.join(extra) or 'none'})", "params", key)
            else:
                self.body[key] = value

    def validated(self) -> dict[str, Any] | None:
        """The body as the model's input class reads it (types, enums, bounds), as JSON."""
        try:
            validated = self.spec.input.model_validate(self.body)
        except ValidationError as exc:
            for err in exc.errors():
                key = str(err["loc"][0]) if err["loc"] else "?"
                where = ("params", key) if key in self.shot.params else ()
                self.problem(f"{'params.' if where else ''}{key}: {err['msg']} (got {err['input']!r})", *where)
            return None
        return validated.model_dump(mode="json", exclude_none=True)
