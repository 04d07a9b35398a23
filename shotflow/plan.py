"""From a storyboard to a plan: the exact request body of every shot, its shape and its cost.

This is where money is lost, so nothing is snapped or dropped: a shot that asks its model for
something the model cannot do is a problem that names the file, line, shot and what the model
accepts. Values that a shot inherits (from `defaults:` or `output:`) are only requested from
models that have a field for them; values a shot sets itself must be honoured exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from shotflow.catalog import ModelSpec, find_model, frame_size
from shotflow.errors import BudgetError, Problem, ShotflowError, StoryboardError
from shotflow.model import CutSpec, OutputSpec, PathVar, Plan, ShotPlan
from shotflow.storyboard.schema import (
    Shot,
    Storyboard,
    Transition,
    duplicate_ids,
    parse_storyboard,
    read_storyboard,
    storyboard_from_text,
    validation_problems,
)
from shotflow.storyboard.templating import fill, malformed, placeholders, run_vars
from shotflow.storyboard.yamlsource import Located

# shot fields that map onto model fields of the same name; never accepted inside params
MAPPED_FIELDS = ("prompt", "duration", "aspect_ratio", "resolution", "negative_prompt", "seed")


def effect_name(transition: Transition) -> str:
    """A storyboard transition as the assembly's effect name: a fade is named by its colour."""
    return f"fade{transition.color or 'black'}" if transition.type == "fade" else transition.type


def _choices(values) -> str:
    values = [str(v) for v in values]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


class _ShotPlanner:
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


def _file_name(file: str, title: str | None) -> str:
    """out/<storyboard name>.mp4 by default; an inline storyboard is named by its title."""
    stem = Path(file).stem if not file.startswith("<") else (title or "storyboard")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "storyboard"


def _default_seconds(spec: ModelSpec) -> int:
    if not spec.durations:
        return spec.native_duration
    default = spec.field_default("duration")
    for seconds, encoded in spec.durations.items():
        if encoded == default:
            return seconds
    return next(iter(spec.durations))


def _override_problem(name: str, value: Any) -> str | None:
    """What is wrong with a value given for a var at run time (--var, a deployment, the UI)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return f"var '{name}': the value given for this run is a {type(value).__name__}: give text or a number"
    if isinstance(value, float) and not math.isfinite(value):
        return f"var '{name}': the value given for this run is {value}: give a finite number"
    if not str(value).strip():
        return f"var '{name}': the value given for this run is empty: give it a value (e.g. --var {name}=...)"
    return None


PATH_FIELDS = (("output", "path"), ("output", "audio", "path"))


def fill_placeholders(
    board: Storyboard, located: Located, file: str, overrides: Mapping[str, Any] | None, now: datetime | None
) -> tuple[Storyboard, dict[str, str], list[Problem]]:
    """The storyboard with every `{{ name }}` filled from vars, overrides and the run's date.

    An empty value is an error naming the var: given for the run, always; declared in vars:,
    where a placeholder uses it (an empty prompt or file name is never what was meant)."""
    problems: list[Problem] = []
    vars_line = located.line(("vars",))
    for name, value in (overrides or {}).items():
        if name not in board.vars:
            declared = ", ".join(board.vars) or "none"
            problems.append(Problem(file, vars_line, f"no var '{name}' to override (declared: {declared})"))
        elif why := _override_problem(name, value):
            problems.append(Problem(file, located.line(("vars", name)), why))
    tz = ZoneInfo(board.schedule.timezone) if board.schedule else None
    values = {**run_vars(now or datetime.now(tz)), **{k: str(v) for k, v in board.vars.items()}}
    values.update({k: str(v) for k, v in (overrides or {}).items()})
    data = board.model_dump()
    empty_reported: set[str] = set(n for n in (overrides or {}) if n in board.vars and not str(overrides[n]).strip())

    def visit(path: tuple, text: str | None, shot: str | None) -> str | None:
        if text is None:
            return None
        where = ".".join(map(str, path if shot is None else path[2:]))
        for bad in malformed(text):
            problems.append(Problem(file, located.line(path), f"{where}: {bad} is not a placeholder: write {{{{ name }}}}", shot))
        unknown = [n for n in placeholders(text) if n not in values]
        for name in dict.fromkeys(unknown):
            known = ", ".join(sorted(values))
            problems.append(Problem(file, located.line(path), f"unknown placeholder {{{{ {name} }}}}: add it to vars: (known: {known})", shot))
        for name in dict.fromkeys(placeholders(text)):
            if name in values and not values[name].strip() and name not in empty_reported:
                empty_reported.add(name)
                problems.append(
                    Problem(
                        file,
                        located.line(("vars", name)),
                        f"var '{name}' is empty but {{{{ {name} }}}} is used in {where}: give it a value",
                        shot,
                    )
                )
        return fill(text, values) if not unknown else text

    data["title"] = visit(("title",), data["title"], None)
    data["description"] = visit(("description",), data["description"], None)
    data["output"]["path"] = visit(("output", "path"), data["output"]["path"], None)
    if data["output"]["audio"] is not None:
        data["output"]["audio"]["path"] = visit(("output", "audio", "path"), data["output"]["audio"]["path"], None)
    data["defaults"]["negative_prompt"] = visit(("defaults", "negative_prompt"), data["defaults"]["negative_prompt"], None)
    for i, shot in enumerate(data["shots"]):
        shot["prompt"] = visit(("shots", i, "prompt"), shot["prompt"], shot["id"])
        shot["negative_prompt"] = visit(("shots", i, "negative_prompt"), shot["negative_prompt"], shot["id"])
    try:
        filled = Storyboard.model_validate(data)
    except ValidationError as exc:
        if not problems:  # what filling broke, said per field (an empty var is already named above)
            problems.extend(validation_problems(exc, located, file))
        filled = board
    return filled, values, problems


# --- paths: the one rule ---------------------------------------------------------------------


def input_path(text: str, storyboard: str) -> Path:
    """A file a storyboard names as an input (the soundtrack): relative to the storyboard's
    folder; an inline storyboard (no file) has none, so the folder the run starts in."""
    path = Path(text)
    if path.is_absolute():
        return path
    base = Path.cwd() if storyboard.startswith("<") else Path(storyboard).resolve().parent
    return base / path


def output_path(text: str, cwd: str | Path | None = None) -> Path:
    """Where a run writes (`output.path`, `--out`): relative to the folder the run starts in
    (`cwd`, default the working directory: a deployment's, for scheduled and UI runs), resolved."""
    path = Path(text)
    path = path if path.is_absolute() else Path(cwd if cwd is not None else Path.cwd()) / path
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: the preflight says what is wrong with it
        return Path(os.path.abspath(path))


# --- transitions --------------------------------------------------------------------------


def _label(transition: Transition) -> str:
    return f"fade through {transition.color or 'black'}" if transition.type == "fade" else transition.type


def plan_cuts(board: Storyboard, located: Located, file: str, seconds: Mapping[int, int]) -> tuple[tuple[CutSpec, ...], list[Problem]]:
    """The cut into every shot after the first (its own `transition:`, else `output.transition`),
    and what is wrong with them: a transition on the first shot (refused: nothing cuts into it), an
    overlap that is not whole frames, one not shorter than a clip it joins, or a clip that cannot
    hold the overlaps at both of its ends. `seconds` has the length of every shot that planned."""
    fps = board.output.fps
    problems: list[Problem] = []
    first = board.shots[0]
    if first.transition is not None:
        problems.append(
            Problem(file, located.line(("shots", 0, "transition")), "transition: the first shot has no cut into it: remove its transition:", first.id)
        )
    chosen: list[tuple[Transition, int | None, str, bool]] = []  # transition, its line, its field, the shot's own
    default = (board.output.transition, located.line(("output", "transition")), "output.transition", False)
    for i, shot in enumerate(board.shots[1:], start=1):
        own = shot.transition is not None
        chosen.append((shot.transition, located.line(("shots", i, "transition")), "transition", True) if own else default)
    # output.transition is checked even when no cut takes it (a setting that is wrong is said)
    for k, (transition, line, field, own) in [(0, default)] + [(i, c) for i, c in enumerate(chosen, start=1) if c[3]]:
        count = transition.seconds * fps
        if transition.type != "cut" and abs(count - round(count)) > 1e-6:
            lo, hi = int(count) / fps, (int(count) + 1) / fps
            shot = board.shots[k].id if own else None
            problems.append(
                Problem(
                    file,
                    line,
                    f"{field}: a {transition.seconds:g} s {transition.type} is {count:g} frames at {fps} fps; "
                    f"use a whole number of frames, e.g. {lo:.4g} or {hi:.4g} s, so the video lasts exactly what the plan says",
                    shot,
                )
            )
    cuts = tuple(CutSpec(effect_name(t), 0.0 if t.type == "cut" else t.seconds) for t, *_ in chosen)
    frames_of = [round(c.overlap * fps) for c in cuts]
    too_long: set[int] = set()
    for k, (cut, (transition, line, field, _)) in enumerate(zip(cuts, chosen), start=1):  # the cut into shot k
        if not cut.overlap:
            continue
        for j in (k - 1, k):
            if j in seconds and frames_of[k - 1] >= seconds[j] * fps:
                too_long.add(k)
                problems.append(
                    Problem(
                        file,
                        line,
                        f"{field}: the {transition.seconds:g} s {_label(transition)} from '{board.shots[k - 1].id}' into "
                        f"'{board.shots[k].id}' does not fit in shot '{board.shots[j].id}' ({seconds[j]} s): "
                        f"a transition must be shorter than both shots it joins",
                        board.shots[k].id,
                    )
                )
    for j in range(1, len(board.shots) - 1):  # a clip between two overlaps must outlast both
        head, tail = frames_of[j - 1], frames_of[j]
        if j not in seconds or not (head and tail) or {j, j + 1} & too_long or head + tail < seconds[j] * fps:
            continue
        (t_in, line_in, _, own_in), (t_out, line_out, _, own_out) = chosen[j - 1], chosen[j]
        problems.append(
            Problem(
                file,
                line_in if own_in or not own_out else line_out,
                f"a {seconds[j]} s clip cannot hold the {t_in.seconds:g} s {_label(t_in)} into it and the "
                f"{t_out.seconds:g} s {_label(t_out)} out of it: together they must be shorter than the clip "
                f"(shorten one, e.g. both below {seconds[j] / 2:g} s)",
                board.shots[j].id,
            )
        )
    return cuts, problems


def path_vars(board: Storyboard, located: Located, values: Mapping[str, str], out: str | None) -> tuple[PathVar, ...]:
    """Every var (builtins included) whose value is filled into an output or input path."""
    found: list[PathVar] = []
    for path in PATH_FIELDS:
        if out and path == ("output", "path"):
            continue  # --out replaces output.path
        node: Any = board
        for part in path:
            node = getattr(node, part, None) if node is not None else None
        for name in dict.fromkeys(placeholders(node or "")):
            if name in values:
                found.append(PathVar(name, values[name], ".".join(path), located.line(path)))
    for name in dict.fromkeys(placeholders(out or "")):
        if name in values:
            found.append(PathVar(name, values[name], "--out"))
    return tuple(found)


def plan_storyboard(
    board: Storyboard,
    located: Located,
    file: str,
    *,
    out: str | None = None,
    vars: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> Plan:
    """Every shot's body and cost, or a StoryboardError listing every problem."""
    template = board
    board, values, problems = fill_placeholders(board, located, file, vars, now)
    problems = duplicate_ids(located, file) + problems
    shots: list[ShotPlan] = []
    for i, shot in enumerate(board.shots):
        model_name = shot.model or board.defaults.model
        if model_name is None:
            problems.append(Problem(file, located.line(("shots", i)), "no model: set model: on the shot or in defaults", shot.id))
            continue
        try:
            spec = find_model(model_name)
        except ShotflowError as exc:
            path = ("shots", i, "model") if shot.model else ("defaults", "model")
            problems.append(Problem(file, located.line(path), str(exc), shot.id))
            continue
        planner = _ShotPlanner(board, located, file, i, shot, spec)
        planned = planner.build()
        problems.extend(planner.problems)
        if planned:
            shots.append(planned)

    output = board.output
    aspect = output.aspect_ratio or board.defaults.aspect_ratio or "16:9"
    width, height = frame_size(aspect, output.resolution)
    cuts, found = plan_cuts(board, located, file, {s.index: s.seconds for s in shots})
    problems.extend(found)
    soundtrack = None
    if output.audio is not None:
        track = input_path(output.audio.path, file)
        if not track.is_file():
            problems.append(Problem(file, located.line(("output", "audio", "path")), f"output.audio.path: no such file {track}"))
        soundtrack = str(track)
    for name in placeholders(out or ""):
        if name not in values:
            problems.append(Problem(file, None, f"--out {out!r}: unknown placeholder {{{{ {name} }}}}"))
    if problems:
        problems.sort(key=lambda p: p.line or 0)
        raise StoryboardError(problems)

    out_path = fill(out, values) if out else output.path or f"out/{_file_name(file, board.title)}.mp4"
    spec = OutputSpec(
        path=out_path,
        width=width,
        height=height,
        fps=output.fps,
        fit=output.fit,
        transition=effect_name(output.transition),
        transition_seconds=output.transition.seconds,
        soundtrack=soundtrack,
        soundtrack_volume=output.audio.volume if output.audio else 1.0,
        cuts=cuts,
        existing=output.existing,
    )
    canonical = json.dumps(board.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return Plan(
        source=file,
        title=board.title or Path(file).stem,
        storyboard_hash=hashlib.sha256(canonical.encode()).hexdigest(),
        shots=tuple(shots),
        output=spec,
        path_vars=path_vars(template, located, values, out),
    )


def load_plan(path: str | Path, *, out: str | None = None, vars: Mapping[str, Any] | None = None, now: datetime | None = None) -> Plan:
    board, located = read_storyboard(path)
    return plan_storyboard(board, located, str(path), out=out, vars=vars, now=now)


def plan_from_text(text: str, file: str = "<storyboard>", *, out: str | None = None, vars: Mapping[str, Any] | None = None) -> Plan:
    board, located = storyboard_from_text(text, file)
    return plan_storyboard(board, located, file, out=out, vars=vars)


def plan_from_data(data: Mapping[str, Any], file: str = "<inline storyboard>", **kw) -> Plan:
    """A storyboard given as structured data (e.g. a deployment parameter), validated the same way."""
    located = Located(dict(data))
    board = parse_storyboard(located, file)
    return plan_storyboard(board, located, file, **kw)



def check_budget(plan: Plan, max_cost: float | Decimal | None, backend: str) -> None:
    """Refuse a fal run whose estimate is over budget, or cannot be known to be under it.

    The preview backend pays nothing, so a budget never stops it."""
    if max_cost is None:
        return
    try:
        budget = Decimal(str(max_cost))
    except ArithmeticError:
        budget = Decimal("NaN")
    if not budget.is_finite() or budget < 0:
        raise BudgetError(f"{plan.source}: max_cost {max_cost!r} is not an amount of dollars: give a finite number >= 0")
    if backend != "fal":
        return
    if plan.unpriced:
        unpriced = ", ".join(f"{s.model} (shot '{s.id}')" for s in plan.unpriced)
        raise BudgetError(f"{plan.source}: cannot hold the run to ${budget:.2f}: no known price for {unpriced}")
    if plan.known_cost > budget:
        raise BudgetError(f"{plan.source}: estimated ${plan.known_cost:.2f} is over the budget of ${budget:.2f}; nothing was started")
