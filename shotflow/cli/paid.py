"""Commands about paid fal requests: `ledger` (every request the journal knows, with spend),
`cancel` (requests still running on fal, checking fal's answer) and `accept` (a clip kept
aside becomes the shot's clip)."""

from __future__ import annotations

import json
from dataclasses import replace

from shotflow.cli.options import parse_vars
from shotflow.cli.output import table
from shotflow.errors import MissingKeyError, ShotflowError
from shotflow.model import Plan, ShotPlan
from shotflow.money import usd
from shotflow.plan import load_plan
from shotflow.settings import get_settings


def _journal(settings):
    from shotflow.store.team import open_journal  # the shared store's (SHOTFLOW_STORE) when there is one

    return open_journal(settings)


def _short_time(stamp: str | None) -> str:
    return "" if not stamp else stamp[:19].replace("T", " ")


def cmd_ledger(args) -> int:
    from shotflow.cli.published import print_videos, videos
    from shotflow.store.ledger import FIELDS, ledger_rows, totals

    if getattr(args, "videos", False):  # only the videos published to the shared store, with fresh links
        if args.json:
            print(json.dumps(videos(get_settings()) or [], indent=2))
        elif not print_videos(get_settings()):
            print("no shared store (SHOTFLOW_STORE): no videos there")
        return 0
    rows = ledger_rows(_journal(get_settings()).records(), since=args.since, storyboard=args.storyboard)
    if args.json:
        print(json.dumps([{name: row.get(name) for name in (*FIELDS, "intended_at")} for row in rows], indent=2))
        return 0
    if not rows:
        print("no fal request in the journal" + (" for that selection" if args.since or args.storyboard else ""))
        print_videos(get_settings())  # with a shared store: the videos there, with links
        return 0
    print(
        table(
            [
                [
                    r["shot"] or "",
                    r["storyboard"] or "(before the ledger)",
                    r["endpoint"] or "",
                    r["request_id"] or "(none: uncertain)" if r["state"] in ("uncertain", "intended") else r["request_id"] or "",
                    r["state"] or "",
                    usd(r["estimated_cost_usd"]),
                    _short_time(r["submitted_at"] or r.get("intended_at")),
                    _short_time(r["finished_at"]),
                ]
                for r in rows
            ],
            ["shot", "storyboard", "endpoint", "request id", "state", "est. cost", "sent (UTC)", "finished (UTC)"],
        )
    )
    sums = totals(rows)
    for group, title in (("per_day", "day (UTC)"), ("per_model", "model")):
        print()
        print(
            table(
                [
                    [
                        name,
                        b["requests"],
                        usd(b["estimated_cost_usd"]) + (f" + {b['unpriced']} unpriced" if b["unpriced"] else ""),
                    ]
                    for name, b in sums[group].items()
                ],
                [title, "requests fal may have billed", "estimated cost"],
            )
        )
    print_videos(get_settings())  # with a shared store: the videos there, with links
    return 0


def cmd_cancel(args) -> int:
    from shotflow.store.ledger import same_storyboard  # one notion of "the same storyboard" (ledger.py)

    targets = list(args.targets)
    storyboard = args.storyboard
    if args.all:
        if len(targets) > 1:
            raise ShotflowError("cancel --all takes at most one storyboard FILE, not shot ids")
        storyboard = storyboard or (targets[0] if targets else None)
        targets = []
    elif not targets:
        raise ShotflowError("cancel: name the shots (SHOT...), or --all [FILE]")
    settings = get_settings()
    from shotflow.tasks.secrets import fal_key

    from shotflow.generation.choose import open_backend

    key = fal_key(settings)
    if not key:
        raise MissingKeyError("cancelling a request needs the fal key that paid for it: set FAL_KEY")
    with open_backend("fal", settings, key=key) as backend:
        live = [r for r in backend.journal.records() if r.state == "submitted" and r.request_id]
        if storyboard is not None:
            wanted = same_storyboard(storyboard)
            live = [r for r in live if r.storyboard and same_storyboard(r.storyboard) == wanted]
        chosen = live
        if targets:
            chosen = []
            for shot in targets:
                mine = [r for r in live if r.shot == shot]
                if not mine:
                    print(
                        f"shotflow: shot '{shot}': no request of it is running on fal"
                        + (f" for {storyboard}" if storyboard else "")
                    )
                elif len(mine) > 1 and storyboard is None:
                    boards = ", ".join(sorted({r.storyboard or "(unknown storyboard)" for r in mine}))
                    raise ShotflowError(
                        f"shot '{shot}' has requests running for several storyboards ({boards}): add --storyboard FILE"
                    )
                chosen.extend(mine)
        if not chosen and not targets:
            print("shotflow: no paid request is running on fal" + (f" for {storyboard}" if storyboard else ""))
            return 0
        still_running = 0
        for record in chosen:
            _, verdict = backend.cancel(record.key)
            what = {
                "cancelled": "cancelled (fal confirms it ended; a re-run submits it anew)",
                "finished": "finished before the cancel landed: paid for, and a re-run collects it",
                "running": "fal still reports it running after the cancel: it may be billed; try again or check fal's dashboard",
                "not live": "no longer running (nothing to cancel)",
            }.get(verdict, verdict)
            print(f"shotflow: shot '{record.shot}' (fal request {record.request_id}): {what}")
            still_running += verdict == "running"
    return 1 if still_running else 0


def cmd_accept(args) -> int:
    from shotflow.generation.fal.backend import accept_clip
    from shotflow.store.team import open_clip_store

    plan = load_plan(args.file, vars=parse_vars(args.var))
    shot = plan.shot(args.shot)
    if getattr(args, "take", None) is not None:  # a take the video is not cut from
        takes = plan.takes_of(shot.id)
        found = [t for t in takes if t.take == args.take]
        if not found:
            raise ShotflowError(f"shot '{shot.id}' has no take {args.take} (takes: {', '.join(str(t.take) for t in takes)})")
        shot = found[0]
    settings = get_settings()
    journal = _journal(settings)
    key, current = _kept_aside(plan, shot, settings, journal, args.file)
    before = journal.read(key)
    record = accept_clip(journal, open_clip_store(settings), key, args.clip)
    what = f"your file {args.clip}" if args.clip else "the clip kept aside"
    reason = f" (it had been kept aside because: {before.quarantine_reason})" if before and before.quarantine_reason else ""
    print(f"shotflow: shot '{shot.label}': {what} is now its clip{reason}; fal request {record.request_id} is {record.state}")
    if current:
        print(f"shotflow: the next `shotflow run {args.file}` uses it without paying")
    else:  # a continuing shot whose first frame cannot be made now: its request depends on that frame
        print(
            f"shotflow: the next `shotflow run {args.file}` uses it without paying if {_first_frame(shot)} is the one it was sent"
        )
    return 0


def _kept_aside(plan: Plan, shot: ShotPlan, settings, journal, storyboard: str) -> tuple[str, bool]:
    """The clip key `accept` takes into the store, and whether it is the shot's request as a run
    would send it now. A shot that continues another (`from:`) has a key only once its frames
    exist: it is resolved from its source's stored clip (shotflow.generation.known); when that
    clip is not stored, the journal names its request: the quarantined one of this shot submitted
    for this storyboard (the latest, if several), found as `cancel` finds requests."""
    from shotflow.generation.known import known_requests
    from shotflow.store.clips import ClipStore
    from shotflow.store.ledger import same_storyboard

    chain, at = [shot], shot  # the shot and the shots it continues: nothing else is resolved
    while at.source:
        at = plan.shot(at.source)
        chain.append(at)
    ids = {s.id for s in chain}
    known = known_requests(replace(plan, shots=tuple(s for s in plan.shots if s.id in ids)), "fal", settings.cache_dir, settings)
    if known.get(shot.label) is not None:
        return ClipStore.key("fal", known[shot.label][0]), True
    wanted = same_storyboard(storyboard)
    kept = [
        r
        for r in journal.records()
        if r.state == "quarantined"
        and (r.shot, r.take) == (shot.id, shot.take)
        and r.storyboard
        and same_storyboard(r.storyboard) == wanted
    ]
    if not kept:
        raise ShotflowError(
            f"shot '{shot.id}': no clip of it is kept aside for {storyboard} (its request is not known now: "
            f"{_first_frame(shot)} cannot be had; and the journal holds no quarantined request of it)"
        )
    return max(kept, key=lambda r: r.finished_at or r.updated_at or "").key, False


def _first_frame(shot: ShotPlan) -> str:
    return f"the last frame of shot '{shot.source}'" if shot.source else "its still"
