"""Commands that read or write a storyboard without spending anything: `new`, `validate`,
`estimate` (many files, the same --var, text or --json) and `schema`.

They never import Prefect, so they answer in well under a second.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from typing import Sequence

from shotflow.catalog import Price, find_model
from shotflow.cli.options import parse_vars
from shotflow.cli.output import table, write_file
from shotflow.errors import StoryboardError
from shotflow.model import Plan, ShotPlan
from shotflow.money import plan_cost, unpriced_shots, usd
from shotflow.plan import load_plan
from shotflow.storyboard.schema import json_schema


def _load_all(files: Sequence[str], var_items: list[str]) -> list[tuple[str, Plan | None, list]]:
    """Each file's plan, or every problem found in it (one bad file never hides another)."""
    overrides = parse_vars(var_items)
    results = []
    for file in files:
        try:
            results.append((file, load_plan(file, vars=overrides), []))
        except StoryboardError as exc:
            results.append((file, None, exc.problems))
    return results


def _price(shot: ShotPlan) -> Price:
    """The price the shot is charged at: its model's, or its image endpoint's when it starts from a frame."""
    spec = find_model(shot.model)
    return spec.image.price if shot.needs_frames and spec.image is not None else spec.price


def _frames(shot: ShotPlan) -> str:
    """Where a shot's frames come from, as the storyboard says it: "from approach", "image, end_image", ""."""
    given = [f"from {shot.source}" if shot.source else "", "image" if shot.image else "", "end_image" if shot.end_image else ""]
    return ", ".join(g for g in given if g)


def _print_warnings(results) -> None:
    for _, plan, _ in results:
        for line in plan.warnings if plan is not None else ():
            print(line, file=sys.stderr)


def _usd_json(amount: Decimal | None) -> float | None:
    """A JSON number (exact for cents and tenths of cents), or null when the price is unknown: never 0."""
    return None if amount is None else float(amount)


def _problem_json(problem) -> dict:
    return {
        "file": problem.file,
        "line": problem.line,
        "column": getattr(problem, "column", None),
        "shot": problem.shot,
        "message": problem.message,
    }


def _totals_json(plan: Plan) -> dict:
    return {
        "shots": len(plan.shots),
        "takes": len(plan.all_takes),
        "generated_seconds": plan.generated_seconds,
        "final_seconds": plan.final_seconds,
        "width": plan.output.width,
        "height": plan.output.height,
        "fps": plan.output.fps,
        "cost_usd": None if plan.unpriced else _usd_json(plan.known_cost),
        "known_cost_usd": _usd_json(plan.known_cost),
        "unpriced_shots": [s.id for s in plan.unpriced],
    }


def _file_json(file: str, plan: Plan | None, problems: list, *, shots: bool) -> dict:
    if plan is None:
        return {"file": file, "ok": False, "problems": [_problem_json(p) for p in problems]}
    entry = {
        "file": file,
        "ok": True,
        "problems": [],
        "warnings": list(plan.warnings),
        "title": plan.title,
        "totals": _totals_json(plan),
    }
    if shots:
        entry["shots"] = [
            {
                "id": s.id,
                "model": s.model,
                "endpoint": s.endpoint,
                "seconds": s.seconds,
                "resolution": s.resolution,
                "width": s.width,
                "height": s.height,
                "audio": s.audio,
                "cost_usd": _usd_json(s.cost),
                "takes": len(plan.takes_of(s.id)),
                "take": s.take,
                "price": _price(s).describe(),
                "from": s.source,
                "image": _shown(s.image),
                "end_image": _shown(s.end_image),
            }
            for s in plan.shots
        ]
    return entry


def _takes(plan: Plan, shot: ShotPlan) -> str:
    """A shot's takes as the estimate shows them: how many, and the one the video uses."""
    takes = plan.takes_of(shot.id)
    return str(len(takes)) if len(takes) == 1 else f"{len(takes)} (uses {shot.take})"


def _all_takes_cost(plan: Plan, shot: ShotPlan):
    costs = [t.cost for t in plan.takes_of(shot.id)]
    return None if any(c is None for c in costs) else sum(costs)


def _shown(still: str | None) -> str | None:
    """A still as printed: a URL without its query (a signed URL's credentials), a path as it is."""
    if not still:
        return still
    from shotflow.media.frames import is_url, show_url  # Pillow: only when there is a still

    return show_url(still) if is_url(still) else still


def _report_problems(results) -> int:
    failed = [problems for _, plan, problems in results if plan is None]
    for problems in failed:
        for problem in problems:
            print(problem, file=sys.stderr)
    if failed:
        n = len(results)
        print(f"{len(failed)} of {n} storyboard{'s' if n > 1 else ''} invalid", file=sys.stderr)
    return len(failed)


def _print_json(results, *, shots: bool) -> int:
    """The one JSON object of --json; the exit code: 1 if any file is invalid."""
    files = [_file_json(file, plan, problems, shots=shots) for file, plan, problems in results]
    plans = [plan for _, plan, _ in results if plan is not None]
    known = sum((p.known_cost for p in plans), Decimal(0))
    unpriced = [f"{p.source}:{s.id}" for p in plans for s in p.unpriced]
    totals = {
        "files": len(results),
        "invalid": len(results) - len(plans),
        "generated_seconds": sum(p.generated_seconds for p in plans),
        "cost_usd": None if unpriced or len(plans) < len(results) else _usd_json(known),
        "known_cost_usd": _usd_json(known),
        "unpriced_shots": unpriced,
    }
    print(json.dumps({"ok": len(plans) == len(results), "files": files, "totals": totals}, indent=2))
    return 0 if len(plans) == len(results) else 1


def cmd_validate(args) -> int:
    results = _load_all(args.files, args.var)
    if args.json:
        return _print_json(results, shots=False)
    for file, plan, _ in results:
        if plan is not None:
            print(
                f"{file}: ok: '{plan.title}', {len(plan.shots)} shots, {plan.final_seconds:g} s "
                f"at {plan.output.width}x{plan.output.height}, estimated {plan_cost(plan)}"
            )
    _print_warnings(results)
    return 1 if _report_problems(results) else 0


def cmd_estimate(args) -> int:
    results = _load_all(args.files, args.var)
    if args.json:
        return _print_json(results, shots=True)
    plans = [plan for _, plan, _ in results if plan is not None]
    for i, plan in enumerate(plans):
        rows = [
            [s.id, s.model, f"{s.seconds} s", s.resolution, f"{s.width}x{s.height}", "yes" if s.audio else "no", usd(s.cost)]
            for s in plan.shots
        ]
        headers = ["shot", "model", "seconds", "resolution", "size", "audio", "cost"]
        if any(s.needs_frames for s in plan.shots):  # continuity: where each first frame comes from
            rows = [row[:2] + [_frames(s)] + row[2:] for row, s in zip(rows, plan.shots)]
            headers[2:2] = ["frames"]
        if plan.has_takes:  # every take is paid: the cost column is the shot's, all its takes
            for row, s in zip(rows, plan.shots):
                row[-1:] = [_takes(plan, s), usd(_all_takes_cost(plan, s))]
            headers[-1:] = ["takes", "cost"]
        print(("\n" if i else "") + f"{plan.title} ({plan.source})")
        print(table(rows, headers))
        takes = f" ({len(plan.all_takes)} takes)" if plan.has_takes else ""
        print(
            f"\n{len(plan.shots)} shots{takes}, {plan.generated_seconds} s generated, final video {plan.final_seconds:g} s "
            f"at {plan.output.width}x{plan.output.height} {plan.output.fps} fps"
        )
        print(f"estimated cost: {plan_cost(plan)}")
        used = {(s.model, s.needs_frames): _price(s) for s in plan.shots}
        as_of = sorted({price.as_of for price in used.values()})
        print(f"prices on fal (as of {', '.join(as_of)}; `shotflow models NAME` for more):")
        for (model, from_image), price in used.items():
            print(f"  {model}{' (image to video)' if from_image else ''}: {price.describe()}")
    if len(results) > 1 and plans:
        known = sum((p.known_cost for p in plans), Decimal(0))
        print(f"\nall {len(plans)} storyboards: estimated {usd(known)}{unpriced_shots(sum(len(p.unpriced) for p in plans))}")
    _print_warnings(results)
    return 1 if _report_problems(results) else 0


def cmd_new(args) -> int:
    from shotflow.storyboard.starter import write_starter

    path = write_starter(args.name)
    print(f"shotflow: wrote {path}")
    print(f"shotflow: next: shotflow validate {path}; shotflow estimate {path}; shotflow run {path} --backend preview")
    return 0


def cmd_schema(args) -> int:
    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.output:
        write_file(args.output, text)
    else:
        sys.stdout.write(text)
    return 0
