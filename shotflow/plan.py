"""From a storyboard to a plan: every shot's request and cost, the output's shape, the budget."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping

from shotflow.catalog import find_model, frame_size
from shotflow.errors import BudgetError, Problem, ShotflowError, StoryboardError
from shotflow.model import OutputSpec, Plan, ShotPlan
from shotflow.storyboard.fill import fill_placeholders, path_vars
from shotflow.storyboard.modelrules import ShotPlanner
from shotflow.storyboard.paths import input_path
from shotflow.storyboard.schema import (
    Storyboard,
    duplicate_ids,
    parse_storyboard,
    read_storyboard,
    storyboard_from_text,
)
from shotflow.storyboard.templating import fill, placeholders
from shotflow.storyboard.transitions import effect_name, plan_cuts
from shotflow.storyboard.yamlsource import Located


def _file_name(file: str, title: str | None) -> str:
    """out/<storyboard name>.mp4 by default; an inline storyboard is named by its title."""
    stem = Path(file).stem if not file.startswith("<") else (title or "storyboard")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "storyboard"


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
        planner = ShotPlanner(board, located, file, i, shot, spec)
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
