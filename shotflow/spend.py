"""What a run is about to pay for, worked out before it pays (the preflight's money checks).

- `--force SHOT` pays again for the shots that continue SHOT (`from:`, directly or not): they
  start from its new clip. `made_again` lists them, `made_again_line` words them with their
  prices, and `consent_problems` refuses them without the user's consent (`force_descendants`:
  the CLI's terminal prompt or --force-descendants, the flow's parameter).
- With `SHOTFLOW_DAILY_BUDGET` set, `budget_problems`: the clips the run may pay for fit in what
  is left of today's budget (the check before each submit still holds the line; this one stops a
  run before it has paid for half of its shots). A shot that continues one whose clip is not
  stored counts as paid for (shotflow.generation.known).

Each check returns the messages of what it refuses; `shotflow.preflight` reports them with the
rest, before anything is paid. This module imports no Prefect.
"""

from __future__ import annotations

from collections.abc import Collection
from decimal import Decimal
from pathlib import Path

from shotflow.errors import ShotflowError
from shotflow.model import Plan, ShotPlan
from shotflow.money import estimate, usd
from shotflow.settings import Settings

# --- what --force pays for again -----------------------------------------------------------


def made_again(plan: Plan, force: Collection[str]) -> tuple[ShotPlan, ...]:
    """The shots not forced themselves that continue a forced one (`from:`, directly or not), in
    cut order: they start from the forced shot's new clip, so they are generated (and paid) again."""
    forced = set(force)
    found = {d.id for shot_id in forced for d in plan.descendants(shot_id)} - forced
    return tuple(s for s in plan.shots if s.id in found)


def made_again_line(plan: Plan, force: Collection[str]) -> str:
    """ "--force approach also generates again the shots that continue it: arrival ($0.45), driver
    (unknown): estimated $0.45 + 1 unpriced shot (driver)"; "" when there are none."""
    shots = made_again(plan, force)
    if not shots:
        return ""
    forced = ", ".join(f"--force {shot_id}" for shot_id in sorted(force))
    listed = ", ".join(f"{s.id} ({usd(s.cost)})" for s in shots)
    total = estimate(sum((s.cost for s in shots if s.cost is not None), Decimal(0)), [s.id for s in shots if s.cost is None])
    them = "it" if len(set(force)) == 1 else "them"
    return f"{forced} also generates again the shots that continue {them} (from:): {listed}: estimated {total} on fal"


def consent_problems(plan: Plan, force: Collection[str], consent: bool) -> list[str]:
    """Shots paid for again because they continue a forced shot need the user's consent."""
    line = made_again_line(plan, force)
    if not line or consent:
        return []
    return [
        f"{line}. Nothing was sent: consent with --force-descendants (the flow parameter "
        "force_descendants), or answer the question `shotflow run` asks on a terminal"
    ]


# --- the daily budget -----------------------------------------------------------------------

# journal states from which a run submits again without --force: anything else is collected,
# re-attached or stopped (uncertain, lost, quarantined, a permanent refusal) without paying
_SUBMITS_AGAIN = ("refused", "failed")


def budget_problems(plan: Plan, settings: Settings, force: Collection[str] = ()) -> list[str]:
    """With SHOTFLOW_DAILY_BUDGET set: what the run may pay for on fal fits in what is left today
    (each problem's message; the preflight names the setting)."""
    budget = settings.daily_budget
    if budget is None:
        return []
    from shotflow.generation.known import known_requests
    from shotflow.store.clips import ClipStore
    from shotflow.store.journal import Journal
    from shotflow.store.ledger import spent_on_day, today

    cache = Path(settings.cache_dir).expanduser()
    journal = Journal.in_cache(cache, lock_timeout=settings.lock_timeout)
    again = set(force) | {s.id for s in made_again(plan, force)}
    known = known_requests(plan, "fal", cache, settings, made_again=again)
    paying, unpriced, to_pay = [], [], Decimal(0)
    for shot in plan.shots:
        # a shot that continues one without a stored clip: its request is not known yet, so it is paid for
        if shot.id not in again and known.get(shot.id) is not None:
            sent, stored = known[shot.id]
            if stored is not None:
                continue
            key = ClipStore.key("fal", sent)
            try:
                record = journal.read(key)
            except ShotflowError:  # an unreadable record: the backend reports it, without paying
                continue
            if record is not None and (record.state not in _SUBMITS_AGAIN or record.permanent):
                continue
        paying.append(shot.id)
        if shot.cost is None:
            unpriced.append(shot.id)
        else:
            to_pay += shot.cost
    if not paying:
        return []
    if unpriced:
        return [
            f"no known price for shot(s) {', '.join(unpriced)}, so the run cannot be held to the daily budget "
            f"of ${budget:.2f}: nothing was sent"
        ]
    try:
        spent, _ = spent_on_day(journal.records(), today())
    except ShotflowError as exc:
        return [f"today's spend cannot be read from the journal ({exc})"]
    if spent + to_pay > budget:
        return [
            f"the run may pay ${to_pay:.2f} for {len(paying)} new clip(s) ({', '.join(paying)}); today's estimated "
            f"spend (UTC) is ${spent:.2f}, so it would pass the daily budget of ${budget:.2f} "
            "(see `shotflow ledger`): nothing was sent"
        ]
    return []
