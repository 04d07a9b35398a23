"""From a valid storyboard to a plan: every shot's request, shape and cost, the output's shape, the budget.

The storyboard comes down one way (shotflow.storyboard.validate: read -> validate); planning
adds what follows from a valid storyboard and cannot fail: frame sizes, prices (the catalog's),
the output path and the storyboard's hash. A shot that starts from a frame is planned for its
model's image endpoint (validation chose it): its body without the frame fields, its cost at
that endpoint's price, and where its frames come from. A shot with several takes is planned once
per take (`take_plans`); the picks (shotflow.picks) say which take the video is cut from.
`load_plan`, `plan_from_text` and `plan_from_data` run the two stages in order for a file, a text
or structured data, with the storyboard's picks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping

from shotflow.catalog import frame_size
from shotflow.errors import BudgetError, Problem, StoryboardError
from shotflow.model import OutputSpec, Plan, ShotPlan, body_hash
from shotflow.money import usd
from shotflow.picks import Picks, load_picks, picks_path
from shotflow.settings import get_settings
from shotflow.storyboard.modelrules import ValidShot
from shotflow.storyboard.transitions import effect_name
from shotflow.storyboard.validate import ValidStoryboard, validate_data, validate_file, validate_text

# fields added after storyboards were first hashed: left out of the hash while unset, so a
# storyboard that does not use them keeps its hash (and its up-to-date video)
LATER_SHOT_FIELDS = ("from", "image", "end_image", "takes")
SEED_SPAN = 2**31  # derived seeds stay in 0 .. 2**31 - 1, which every model's seed field takes


def plan_storyboard(valid: ValidStoryboard, picks: Picks | None = None) -> Plan:
    """Every shot's request and cost (every take's), the picked takes, and the output's shape."""
    board, file = valid.board, valid.file
    data = board.model_dump(mode="json", by_alias=True)
    for shot in data["shots"]:
        for key in LATER_SHOT_FIELDS:
            if shot[key] is None:
                del shot[key]
    if data["defaults"]["takes"] is None:
        del data["defaults"]["takes"]
    if data["review"] is False:
        del data["review"]
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    storyboard_hash = hashlib.sha256(canonical.encode()).hexdigest()
    if picks is None:
        picks = load_picks(picks_path(file, storyboard_hash, get_settings().cache_dir))
    generations = tuple(take for s in valid.shots for take in take_plans(s, picks))
    stale = picks.stale({g.id: g.request for g in generations})  # picks made for another version of a shot
    review = board.review
    return Plan(
        source=file,
        title=board.title or Path(file).stem,
        storyboard_hash=storyboard_hash,
        shots=picked_takes(valid, generations, picks),
        output=output_spec(valid),
        path_vars=valid.path_vars,
        warnings=(*valid.warnings, *stale),
        generations=generations,
        picks_file=picks.file,
        review=review is not False,
        review_timeout=review.timeout if not isinstance(review, bool) else Plan.review_timeout,
    )


def take_plans(shot: ValidShot, picks: Picks) -> tuple[ShotPlan, ...]:
    """Every take of a shot: the storyboard's `takes:` and those bought one at a time (the picks).

    Take 1 is the shot's request as written. Another take on a model that takes a seed gets its own
    (the shot's seed + take - 1, else one derived from the request and the take number), so the same
    takes are found in the store on every run; on a model without one it is the same request, a
    distinct generation by its take number (the cache key holds it)."""
    base = shot_plan(shot)
    first = body_hash(base.endpoint, base.body)  # frames are added later: the request as written
    extra = {t.take: t for t in picks.extra_for(shot.id, first)}
    numbers = sorted(set(range(1, shot.takes + 1)) | set(extra))
    takes = []
    for take in numbers:
        body = dict(base.body)
        if take in extra and extra[take].prompt:
            body["prompt"] = extra[take].prompt
        if take > 1 and shot.spec.has_field("seed"):
            if isinstance(base.body.get("seed"), int):
                body["seed"] = base.body["seed"] + take - 1
            else:
                digest = hashlib.sha256(f"{first}:take {take}".encode()).hexdigest()
                body["seed"] = int(digest, 16) % SEED_SPAN
        takes.append(dataclasses.replace(base, body=body, take=take, takes=len(numbers), request=first))
    return tuple(takes)


def picked_takes(valid: ValidStoryboard, generations: tuple[ShotPlan, ...], picks: Picks) -> tuple[ShotPlan, ...]:
    """The take of each shot the video is cut from: the picked one, else take 1 (the first)."""
    chosen = []
    for shot in valid.shots:
        takes = [g for g in generations if g.id == shot.id]
        want = picks.pick_for(shot.id, takes[0].request)
        found = [t for t in takes if t.take == want] if want is not None else takes[:1]
        if not found:
            numbers = ", ".join(str(t.take) for t in takes)
            line = picks.lines.get(shot.id)
            raise StoryboardError(
                [Problem(picks.file, line, f"picks take {want} of shot '{shot.id}', which has take(s) {numbers}", shot.id)]
            )
        chosen.append(found[0])
    return tuple(chosen)


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
    path: str | Path,
    *,
    out: str | None = None,
    vars: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    picks: Picks | None = None,
) -> Plan:
    """A storyboard file's plan for a run: validated, then planned with its picks (`picks`, else
    those kept beside it)."""
    return plan_storyboard(validate_file(path, out=out, vars=vars, now=now), picks)


def plan_from_text(
    text: str,
    file: str = "<storyboard>",
    *,
    out: str | None = None,
    vars: Mapping[str, Any] | None = None,
    picks: Picks | None = None,
) -> Plan:
    return plan_storyboard(validate_text(text, file, out=out, vars=vars), picks)


def plan_from_data(data: Mapping[str, Any], file: str = "<inline storyboard>", picks: Picks | None = None, **run: Any) -> Plan:
    """A storyboard given as structured data (e.g. a deployment parameter), validated the same way."""
    return plan_storyboard(validate_data(data, file, **run), picks)


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
