"""What a run is about to pay for, worked out before it pays (the preflight's money checks).

- `--force SHOT` pays again for the shots that continue SHOT (`from:`, directly or not), or a
  shot making the same request (one clip in the store, replaced for both): they start from its
  new clip. `made_again` lists them, `made_again_line` words them with their
  prices, and `consent_problems` refuses them without the user's consent (`force_descendants`:
  the CLI's terminal prompt or --force-descendants, the flow's parameter).
- With `SHOTFLOW_DAILY_BUDGET` set, `budget_problems`: the clips the run may pay for fit in what
  is left of today's budget (the check before each submit still holds the line; this one stops a
  run before it has paid for half of its shots). A shot that continues one whose clip is not
  stored counts as paid for (shotflow.generation.known). `paid_for` lists what a run would pay
  for (also what `shotflow pick` and `shotflow reroll` say a pick or a new take costs).

Each check returns the messages of what it refuses; `shotflow.preflight` reports them with the
rest, before anything is paid. This module imports no Prefect.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from decimal import Decimal

from shotflow.errors import ShotflowError
from shotflow.model import Plan, ShotPlan
from shotflow.money import estimate, usd
from shotflow.settings import Settings, get_settings

# --- what --force pays for again -----------------------------------------------------------


def same_clip(plan: Plan, force: Collection[str], settings: Settings | None = None) -> set[str]:
    """The forced shots and every shot making the same request (the same clip key): the store
    keeps one clip per key, so forcing one replaces the clip of each. A continuing shot's key is
    known when its source's clip is stored (shotflow.generation.known); else it is left out."""
    forced = set(force)
    if not forced:
        return forced
    from shotflow.store.clips import ClipStore

    keys = {s.label: (s.id, ClipStore.key("fal", s)) for s in plan.all_takes if not s.needs_frames}
    if any(plan.shot(shot_id).needs_frames for shot_id in forced):
        from shotflow.generation.known import known_requests

        settings = settings or get_settings()
        known = known_requests(plan, "fal", settings.cache_dir, settings)
        keys.update((label, (k[0].id, ClipStore.key("fal", k[0]))) for label, k in known.items() if k is not None)
    replaced = {key for shot_id, key in keys.values() if shot_id in forced}
    return forced | {shot_id for shot_id, key in keys.values() if key in replaced}


def made_again(plan: Plan, force: Collection[str], settings: Settings | None = None) -> tuple[ShotPlan, ...]:
    """The shots not forced themselves that continue (`from:`, directly or not) a forced one, or a
    shot sharing its clip (`same_clip`), in cut order: they start from the forced clip's new copy,
    so they are generated (and paid) again."""
    return _continuing(plan, same_clip(plan, force, settings))


def _continuing(plan: Plan, replaced: set[str]) -> tuple[ShotPlan, ...]:
    found = {d.id for shot_id in replaced for d in plan.descendants(shot_id)} - replaced
    return tuple(s for s in plan.shots if s.id in found)


def made_again_line(plan: Plan, force: Collection[str], settings: Settings | None = None) -> str:
    """ "--force approach also generates again the shots that continue it (from:): arrival ($0.45),
    driver (unknown): estimated $0.45 + 1 unpriced shot (driver) on fal; shots of other storyboards
    ..." (a shot sharing the forced clip is named); "" when there are none."""
    replaced = same_clip(plan, force, settings)
    shots = _continuing(plan, replaced)
    if not shots:
        return ""
    forced = ", ".join(f"--force {shot_id}" for shot_id in sorted(force))
    listed = ", ".join(f"{s.id} ({usd(s.cost)})" for s in shots)
    total = estimate(sum((s.cost for s in shots if s.cost is not None), Decimal(0)), [s.id for s in shots if s.cost is None])
    one = len(set(force)) == 1
    twins = sorted(replaced - set(force))
    shared = f", or continue {', '.join(twins)} (the same request: one clip)" if twins else ""
    return (
        f"{forced} also generates again the shots that continue {'it' if one else 'them'} (from:){shared}: {listed}: "
        f"estimated {total} on fal; shots of other storyboards that continue {'this clip' if one else 'these clips'} "
        "are made again, and paid for, on their next run"
    )


def consent_problems(
    plan: Plan, force: Collection[str], consent: bool | Callable[[str], bool], settings: Settings | None = None
) -> list[str]:
    """Shots paid for again because they continue a forced shot need the user's consent: `consent`,
    or its answer when asked with the line naming them (the CLI's question on a terminal)."""
    line = made_again_line(plan, force, settings)
    if not line or (consent(line) if callable(consent) else consent):
        return []
    return [
        f"{line}. Nothing was sent: consent with --force-descendants (the flow parameter "
        "force_descendants), or answer the question `shotflow run` asks on a terminal"
    ]


# --- the daily budget -----------------------------------------------------------------------

# journal states from which a run submits again without --force: anything else is collected,
# re-attached or stopped (uncertain, lost, quarantined, a permanent refusal) without paying
_SUBMITS_AGAIN = ("refused", "failed")


def paid_for(plan: Plan, settings: Settings, force: Collection[str] = ()) -> list[ShotPlan]:
    """The generations (every take) a fal run of `plan` would pay for: those without a clip in the
    store and without a journal record that a run collects, re-attaches or stops at (a shot that
    continues one without a stored clip: its request is not known yet, so it is paid for), and the
    forced shots and what continues them."""
    from shotflow.generation.known import known_requests
    from shotflow.store.clips import ClipStore
    from shotflow.store.team import open_journal

    journal = open_journal(settings)
    replaced = same_clip(plan, force, settings)
    again = set(force) | {s.id for s in _continuing(plan, replaced)}
    # a shot sharing a forced shot's clip pays nothing itself, but what continues it is not known
    known = known_requests(plan, "fal", settings.cache_dir, settings, made_again=again | replaced)
    paying = []
    for shot in plan.all_takes:  # every take is paid
        if shot.id not in again and known.get(shot.label) is not None:
            sent, stored = known[shot.label]
            if stored is not None:
                continue
            try:
                record = journal.read(ClipStore.key("fal", sent))
            except ShotflowError:  # an unreadable record: the backend reports it, without paying
                continue
            if record is not None and (record.state not in _SUBMITS_AGAIN or record.permanent):
                continue
        paying.append(shot)
    return paying


def budget_problems(plan: Plan, settings: Settings, force: Collection[str] = ()) -> list[str]:
    """With SHOTFLOW_DAILY_BUDGET set: what the run may pay for on fal fits in what is left today
    (each problem's message; the preflight names the setting)."""
    budget = settings.daily_budget
    if budget is None:
        return []
    from shotflow.store.ledger import spent_on_day, today
    from shotflow.store.team import open_journal

    journal = open_journal(settings)
    paying, unpriced, to_pay = [], [], Decimal(0)
    for shot in paid_for(plan, settings, force):
        paying.append(shot.label)
        if shot.cost is None:
            unpriced.append(shot.label)
        else:
            to_pay += shot.cost
    if not paying:
        return []
    if unpriced:
        return [
            f"no known price for shot(s) {', '.join(unpriced)}, so the run cannot be held to the daily budget "
            f"of {usd(budget)}: nothing was sent"
        ]
    try:
        spent, _ = spent_on_day(journal.records(), today())
    except ShotflowError as exc:
        return [f"today's spend cannot be read from the journal ({exc})"]
    if spent + to_pay > budget:
        return [
            f"the run may pay {usd(to_pay)} for {len(paying)} new clip(s) ({', '.join(paying)}); today's estimated "
            f"spend (UTC) is {usd(spent)}, so it would pass the daily budget of {usd(budget)} "
            "(see `shotflow ledger`): nothing was sent"
        ]
    return []
