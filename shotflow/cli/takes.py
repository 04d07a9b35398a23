"""Commands about a shot's takes: `pick` (which take the video is cut from) and `reroll` (one more
take of one shot, bought without re-running the rest).

Both write the storyboard's picks file (NAME.picks.yaml beside it: shotflow/picks.py owns its
format). Money follows `shotflow run --force`'s rule: a pick that changes the frame the shots
continuing it (`from:`) start from makes them again, paid for, on the next run, so they are listed
with their prices and the user consents (on a terminal, or --yes); without a terminal and without
--yes nothing changes. `reroll` pays for exactly one generation: when the storyboard's next run
would pay for anything else (a shot missing from the clip store), it refuses, naming those shots,
and records nothing. It then generates the new take with `shotflow run` itself (the same early
start, preflight, daily budget, journal and summary), which finds every other clip in the store.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

from shotflow.cli.options import parse_vars
from shotflow.errors import BudgetError, ShotflowError
from shotflow.model import Plan, ShotPlan
from shotflow.money import estimate, usd
from shotflow.picks import load_picks, save_picks
from shotflow.plan import load_plan
from shotflow.settings import Settings, get_settings


def cmd_pick(args) -> int:
    plan = load_plan(args.file, vars=parse_vars(args.var))
    shot = plan.shot(args.shot)
    numbers = [t.take for t in plan.takes_of(shot.id)]
    if args.take not in numbers:
        raise ShotflowError(
            f"{args.file}: shot '{shot.id}' has no take {args.take} (takes: {', '.join(map(str, numbers))}); more takes come "
            f"from `takes: N` in the storyboard or `shotflow reroll {args.file} {shot.id}`"
        )
    if shot.take == args.take:
        print(f"shotflow: shot '{shot.id}' already uses take {args.take} ({plan.picks_file}): nothing changed")
        return 0
    settings = get_settings()
    picked = plan.with_picks({shot.id: args.take})
    again = made_again_by_pick(plan, picked, shot.id, settings)
    if again:
        line = again_line(f"take {args.take} of '{shot.id}'", again)
        if not consents(line, args.yes, "Pick it and pay for them on the next run?"):
            raise ShotflowError(
                f"{plan.picks_file}: not changed: {line}. Consent with --yes, or answer the question `shotflow pick` asks "
                "on a terminal"
            )
    save_picks(load_picks(plan.picks_file).with_pick(shot.id, args.take, shot.request), Path(plan.source).name)
    print(f"shotflow: shot '{shot.id}' now uses take {args.take} (it used take {shot.take}); kept in {plan.picks_file}")
    print(f"shotflow: {next_run(picked, shot.id, args.file, settings, again)}")
    return 0


def cmd_reroll(args) -> int:
    from shotflow.generation.choose import choose_backend

    overrides = parse_vars(args.var)
    plan = load_plan(args.file, vars=overrides, out=args.out)
    shot = plan.shot(args.shot)
    if args.prompt is not None and not args.prompt.strip():
        raise ShotflowError(
            f"shot '{shot.id}': --prompt is empty: give the new take's prompt, or leave it out for the shot's own"
        )
    settings = get_settings()
    backend = choose_backend(args.backend, settings.names_a_key)
    picks, take = load_picks(plan.picks_file).with_extra_take(
        shot.id, max(t.take for t in plan.takes_of(shot.id)), args.prompt, shot.request
    )
    extra = load_plan(args.file, vars=overrides, out=args.out, picks=picks)  # the storyboard with its new take
    new = next(t for t in extra.takes_of(shot.id) if t.take == take)
    after, again = extra, []
    if args.pick:
        picks = picks.with_pick(shot.id, take, shot.request)
        after = extra.with_picks({shot.id: take})
    if backend == "fal":
        if args.pick:
            again = made_again_by_pick(extra, after, shot.id, settings)
        _only_the_new_take(after, new, again, args.file, settings)
        _within(new, again, args.max_cost, args.file)
        if again:
            line = again_line(f"the new take of '{shot.id}'", again)
            if not consents(line, args.yes, "Generate them again and pay for them?"):
                raise ShotflowError(f"{plan.picks_file}: not changed, nothing sent: {line}. Consent with --yes")
    save_picks(picks, Path(plan.source).name)
    prompt = f" with the prompt {args.prompt!r}" if args.prompt else ""
    cost = f"estimated {usd(new.cost)} on fal" if backend == "fal" else "an offline preview: nothing is paid"
    print(f"shotflow: shot '{shot.id}': take {take}{prompt} is recorded in {plan.picks_file}; generating it ({cost})", flush=True)
    code = _run(args, backend)
    if code != 0:
        print(
            f"shotflow: take {take} of '{shot.id}' stays recorded in {plan.picks_file}: `shotflow run {args.file}` generates it "
            "(a request fal accepted is collected, never paid for twice)",
            file=sys.stderr,
        )
        return code
    if args.pick:
        print(f"shotflow: the video is cut from take {take} of '{shot.id}'")
    else:
        print(
            f"shotflow: shot '{shot.id}' has a take {take}; the video still uses take {shot.take}. "
            f"To cut the new one in: shotflow pick {args.file} {shot.id} {take}"
        )
    return 0


# --- what a pick or a new take pays for ------------------------------------------------------


def made_again_by_pick(before: Plan, after: Plan, shot_id: str, settings: Settings) -> list[ShotPlan]:
    """The generations of the shots continuing `shot_id` (`from:`, directly or not) that a fal run
    pays for with `after`'s pick and would not with `before`'s: they start from another frame."""
    from shotflow.spend import paid_for

    ids = {d.id for d in after.descendants(shot_id)}
    if not ids:
        return []
    already = {s.label for s in paid_for(before, settings) if s.id in ids}
    return [s for s in paid_for(after, settings) if s.id in ids and s.label not in already]


def again_line(what: str, again: list[ShotPlan]) -> str:
    """ "take 2 of 'approach' changes the frame the shots that continue it start from: the next run
    generates again, and pays for, arrival ($0.45), driver (unknown): estimated $0.45 + 1 unpriced
    shot (driver) on fal" """
    listed = ", ".join(f"{s.label} ({usd(s.cost)})" for s in again)
    total = estimate(sum((s.cost for s in again if s.cost is not None), Decimal(0)), [s.label for s in again if s.cost is None])
    return (
        f"{what} changes the frame the shots that continue it (from:) start from: the next run generates again, and "
        f"pays for, {listed}: estimated {total} on fal"
    )


def consents(line: str, yes: bool, question: str) -> bool:
    """--yes, or the user's answer on a terminal (asked with the line naming what is paid); no
    terminal: no."""
    if yes:
        return True
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return False
    print(f"shotflow: {line}.", file=sys.stderr)
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")  # "" at the end of input: no


def next_run(plan: Plan, shot_id: str, file: str, settings: Settings, again: list[ShotPlan]) -> str:
    """What the next `shotflow run FILE` does about the picked take: cut it (from the store, or
    once it is generated), and make again the shots that continue it."""
    from shotflow.generation.choose import choose_backend
    from shotflow.generation.known import known_requests

    shot = plan.shot(shot_id)
    run = f"`shotflow run {file}`"
    if choose_backend(None, settings.names_a_key) == "preview":
        return f"the next {run} (an offline preview: nothing is paid) cuts take {shot.take} of '{shot_id}'"
    known = known_requests(plan, "fal", settings.cache_dir, settings).get(shot.label)
    if known is not None and known[1] is not None:
        said = f"the next {run} cuts take {shot.take} of '{shot_id}'; nothing is paid for it: the take is in the clip store"
    else:
        said = (
            f"take {shot.take} of '{shot_id}' has not been generated yet: the next {run} generates it, as it does every take "
            f"(estimated {usd(shot.cost)} on fal), and cuts it"
        )
    if again:
        said += f"; it also generates again {', '.join(s.label for s in again)} (consented above)"
    return said


def _only_the_new_take(plan: Plan, new: ShotPlan, again: list[ShotPlan], file: str, settings: Settings) -> None:
    """Refuse a reroll whose run would pay for more than the new take (and, with --pick, the shots
    continuing it): those shots are named and nothing is recorded."""
    from shotflow.spend import paid_for

    allowed = {new.label} | {s.label for s in again}
    others = [s for s in paid_for(plan, settings) if s.label not in allowed]
    if others:
        listed = ", ".join(f"{s.label} ({usd(s.cost)})" for s in others)
        raise ShotflowError(
            f"{file}: reroll pays for one take, but the next run of this storyboard would also pay for {listed}: they have no "
            f"clip in the clip store. Nothing was recorded or sent: run `shotflow run {file}` first, then reroll"
        )


def _within(new: ShotPlan, again: list[ShotPlan], max_cost: Decimal | None, file: str) -> None:
    """--max-cost holds what the reroll pays for: the new take (and, with --pick, what continues it)."""
    if max_cost is None:
        return
    paying = [new, *again]
    unpriced = [s.label for s in paying if s.cost is None]
    if unpriced:
        raise BudgetError(f"{file}: cannot hold the reroll to {usd(max_cost)}: no known price for {', '.join(unpriced)}")
    total = sum((s.cost for s in paying), Decimal(0))
    if total > max_cost:
        raise BudgetError(
            f"{file}: the reroll's estimated {usd(total)} is over the budget of {usd(max_cost)}; nothing was recorded or sent"
        )


def _run(args, backend: str) -> int:
    """`shotflow run FILE` with the reroll's backend, vars and output: every option at its default,
    so the run is the one a user would start."""
    from shotflow.cli.parser import build_parser

    argv = ["run", args.file, "--backend", backend]
    for var in args.var:
        argv += ["--var", var]
    if args.out:
        argv += ["--out", args.out]
    run = build_parser().parse_args(argv)
    return run.func(run)
