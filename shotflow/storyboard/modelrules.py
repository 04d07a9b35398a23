"""One shot against its model: the exact request body, its shape and its cost.

This is where money is lost, so nothing is snapped or dropped: a shot that asks its model for
something the model cannot do is a problem that names the file, line, shot and what the model
accepts. Values that a shot inherits (from `defaults:` or `output:`) are only requested from
models that have a field for them; values a shot sets itself must be honoured exactly.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from shotflow.catalog import ModelSpec, frame_size
from shotflow.errors import Problem
from shotflow.model import ShotPlan
from shotflow.storyboard.schema import Shot, Storyboard
from shotflow.storyboard.yamlsource import Located

# shot fields that map onto model fields of the same name; never accepted inside params
MAPPED_FIELDS = ("prompt", "duration", "aspect_ratio", "resolution", "negative_prompt", "seed")

def _choices(values) -> str:
    values = [str(v) for v in values]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


class ShotPlanner:
    """Builds one shot's body, collecting every problem instead of stopping at the first."""

    def __init__(self, board: Storyboard, located: Located, file: str, index: int, shot: Shot, spec: ModelSpec):
        self.board, self.located, self.file = board, located, file
        self.index, self.shot, self.spec = index, shot, spec
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

    def whence(self, source: str | None, line: int | None) -> str:
        return f" (from {source} at line {line})" if source else ""

    def build(self) -> ShotPlan | None:
        spec, shot = self.spec, self.shot
        body: dict[str, Any] = {"prompt": shot.prompt}
        name = spec.alias

        # duration
        seconds, src, src_line = self.inherited("duration")
        if seconds is None:
            seconds = _default_seconds(spec)
        if seconds != int(seconds):
            self.problem(f"{name} renders whole seconds ({_choices(spec.seconds)} s), not {seconds}{self.whence(src, src_line)}", "duration")
        seconds = int(seconds)
        if spec.durations:
            if seconds in spec.durations:
                body["duration"] = spec.durations[seconds]
            else:
                self.problem(f"{name} renders {_choices(spec.seconds)} s clips, not {seconds} s{self.whence(src, src_line)}", "duration")
        elif seconds != spec.native_duration:
            self.problem(
                f"{name} has no duration field and always renders {spec.native_duration} s, not {seconds} s"
                f"{self.whence(src, src_line)}: set duration: {spec.native_duration} or pick another model",
                "duration",
            )

        # aspect ratio: the shot's own value must be honoured; an inherited one is asked of models that take one
        aspect, src, src_line = self.inherited("aspect_ratio")
        if aspect is None and self.board.output.aspect_ratio and spec.has_field("aspect_ratio"):
            aspect, src, src_line = self.board.output.aspect_ratio, "output.aspect_ratio", self.located.line(("output", "aspect_ratio"))
        if spec.has_field("aspect_ratio"):
            aspect = aspect or spec.field_default("aspect_ratio")
            if aspect in spec.aspect_ratios:
                body["aspect_ratio"] = aspect
            else:
                self.problem(f"{name} takes aspect ratio {_choices(spec.aspect_ratios)}, not {aspect}{self.whence(src, src_line)}", "aspect_ratio")
        else:
            if aspect is not None and src is None and aspect != spec.native_aspect:
                self.problem(f"{name} has no aspect_ratio field and always renders {spec.native_aspect}, not {aspect}", "aspect_ratio")
            aspect = spec.native_aspect

        # resolution: inherited from defaults, then from output; never a silent upgrade
        resolution, src, src_line = self.inherited("resolution")
        if resolution is None:
            resolution, src, src_line = self.board.output.resolution, "output.resolution", self.located.line(("output", "resolution"))
        if spec.has_field("resolution"):
            if resolution in spec.resolutions:
                body["resolution"] = resolution
            else:
                options = _choices(spec.resolutions)
                self.problem(
                    f"{name} renders {options}, not {resolution}{self.whence(src, src_line)}: "
                    f"set resolution: to one of {options} on this shot or in defaults",
                    "resolution",
                )
        else:
            if src is None and resolution != spec.native_resolution:
                self.problem(f"{name} has no resolution field and always renders {spec.native_resolution}, not {resolution}", "resolution")
            resolution = spec.native_resolution
        for bad_res, bad_seconds, why in spec.forbidden:
            if resolution == bad_res and seconds == bad_seconds:
                self.problem(f"{name} cannot render {bad_res} for {bad_seconds} s: {why}", "resolution")

        # negative prompt and seed
        negative, src, _ = self.inherited("negative_prompt")
        if negative is not None:
            if spec.has_field("negative_prompt"):
                body["negative_prompt"] = negative
            elif src is None:
                self.problem(f"{name} takes no negative_prompt", "negative_prompt")
        if shot.seed is not None:
            if spec.has_field("seed"):
                body["seed"] = shot.seed
            else:
                self.problem(f"{name} takes no seed", "seed")

        # params: model-specific fields, checked against the model's own input class
        for key, value in shot.params.items():
            if key in MAPPED_FIELDS:
                self.problem(f"params.{key}: set {key}: on the shot, not in params", "params", key)
            elif not spec.has_field(key):
                extra = sorted(set(spec.input.model_fields) - set(MAPPED_FIELDS))
                self.problem(
                    f"params.{key}: {name} has no such field (its own fields: {', '.join(extra) or 'none'})",
                    "params",
                    key,
                )
            else:
                body[key] = value
        if self.problems:
            return None
        try:
            validated = spec.input.model_validate(body)
        except ValidationError as exc:
            for err in exc.errors():
                key = str(err["loc"][0]) if err["loc"] else "?"
                where = ("params", key) if key in shot.params else ()
                self.problem(f"{'params.' if where else ''}{key}: {err['msg']} (got {err['input']!r})", *where)
            return None
        body = validated.model_dump(mode="json", exclude_none=True)
        audio = spec.audio == "param" and bool(body.get("generate_audio"))
        width, height = frame_size(aspect, resolution)
        cost = spec.price.cost(seconds=seconds, resolution=resolution, width=width, height=height, fps=spec.fps, audio=audio)
        return ShotPlan(
            id=shot.id,
            index=self.index,
            line=self.line(),
            model=spec.alias,
            endpoint=spec.endpoint,
            body=body,
            seconds=seconds,
            aspect_ratio=aspect,
            resolution=resolution,
            width=width,
            height=height,
            fps=spec.fps,
            audio=audio,
            cost=cost,
        )

def _default_seconds(spec: ModelSpec) -> int:
    if not spec.durations:
        return spec.native_duration
    default = spec.field_default("duration")
    for seconds, encoded in spec.durations.items():
        if encoded == default:
            return seconds
    return next(iter(spec.durations))
