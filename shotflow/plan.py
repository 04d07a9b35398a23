"""From a valid storyboard to a plan: every shot's request, shape and cost, the output's shape, the budget.

The storyboard comes down one way (shotflow.storyboard.validate: read -> validate); planning
adds what follows from a valid storyboard and cannot fail: frame sizes, prices (the catalog's),
the output path and the storyboard's hash. A shot that starts from a frame is planned for its
model's image endpoint (validation chose it): its body without the frame fields, its cost at
that endpoint's price, and where its frames come from. `load_plan`, `plan_from_text` and `plan_from_data`
run the two stages in order for a file, a text or structured data.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping

from shotflow.catalog import frame_size
from shotflow.errors import BudgetError
from shotflow.model import OutputSpec, Plan, ShotPlan
from shotflow.money import usd
from shotflow.storyboard.modelrules import ValidShot
from shotflow.storyboard.transitions import effect_name
from shotflow.storyboard.validate import ValidStoryboard, validate_data, validate_file, validate_text

CONTINUITY_FIELDS = ("from", "image", "end_image")


def plan_storyboard(valid: ValidStoryboard) -> Plan:
    """Every shot's request and cost, and the output's shape."""
    board, file = valid.board, valid.file
    data = board.model_dump(mode="json", by_alias=True)
    for shot in data["shots"]:  # a storyboard without continuity keeps the hash it had before these fields
        for key in CONTINUITY_FIELDS:
            if shot[key] is None:
                del shot[key]
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return Plan(
        source=file,
        title=board.title or Path(file).stem,
        storyboard_hash=hashlib.sha256(canonical.encode()).hexdigest(),
        shots=tuple(shot_plan(s) for s in valid.shots),
        output=output_spec(valid),
        path_vars=valid.path_vars,
        warnings=valid.warnings,
    )


def shot_plan(shot: ValidShot) -> ShotPlan:
    """One shot's request with its frame size, frame rate, audio and cost (`shot.spec` is the model
    as its image endpoint for a shot that starts from a frame)."""
    spec = shot.spec
    frames = shot.frames
    audio = spec.audio == "param" and bool(shot.body.get("generate_audio"))
    width, height = frame_size(shot.aspect_ratio, shot.resolution)
    cost = spec.price.cost(
        seconds=shot.seconds, resolution=shot.resolution, width=width, height=height, fps=spec.fps, audio=audio
    )
    return ShotPlan(
        id=shot.id,
        index=shot.index,
        line=shot.line,
        model=spec.alias,
        endpoint=spec.endpoint,
        body=shot.body,
        seconds=shot.seconds,
        aspect_ratio=shot.aspect_ratio,
        resolution=shot.resolution,
        width=width,
        height=height,
        fps=spec.fps,
        audio=audio,
        cost=cost,
        source=frames.source if frames else None,
        image=frames.image if frames else None,
        end_image=frames.end_image if frames else None,
        image_field=shot.image_field,
        end_field=shot.end_field,
    )


def output_spec(valid: ValidStoryboard) -> OutputSpec:
    """The final video: where it goes, its frame, the cuts and the soundtrack."""
    board = valid.board
    output = board.output
    aspect = output.aspect_ratio or board.defaults.aspect_ratio or "16:9"
    width, height = frame_size(aspect, output.resolution)
    return OutputSpec(
        path=valid.out or output.path or f"out/{_file_name(valid.file, board.title)}.mp4",
        width=width,
        height=height,
        fps=output.fps,
        fit=output.fit,
        transition=effect_name(output.transition),
        transition_seconds=output.transition.seconds,
        soundtrack=valid.soundtrack,
        soundtrack_volume=output.audio.volume if output.audio else 1.0,
        cuts=valid.cuts,
        existing=output.existing,
    )


def _file_name(file: str, title: str | None) -> str:
    """out/<storyboard name>.mp4 by default; an inline storyboard is named by its title."""
    stem = Path(file).stem if not file.startswith("<") else (title or "storyboard")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "storyboard"


def load_plan(
    path: str | Path, *, out: str | None = None, vars: Mapping[str, Any] | None = None, now: datetime | None = None
) -> Plan:
    """A storyboard file's plan for a run: validated, then planned."""
    return plan_storyboard(validate_file(path, out=out, vars=vars, now=now))


def plan_from_text(
    text: str, file: str = "<storyboard>", *, out: str | None = None, vars: Mapping[str, Any] | None = None
) -> Plan:
    return plan_storyboard(validate_text(text, file, out=out, vars=vars))


def plan_from_data(data: Mapping[str, Any], file: str = "<inline storyboard>", **run: Any) -> Plan:
    """A storyboard given as structured data (e.g. a deployment parameter), validated the same way."""
    return plan_storyboard(validate_data(data, file, **run))


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
        raise BudgetError(f"{plan.source}: cannot hold the run to {usd(budget)}: no known price for {unpriced}")
    if plan.known_cost > budget:
        raise BudgetError(
            f"{plan.source}: estimated {usd(plan.known_cost)} is over the budget of {usd(budget)}; nothing was started"
        )
