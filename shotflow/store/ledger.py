"""The ledger: every fal request the job journal knows, across runs, and the spend per day.

It is where a user reconciles shotflow with fal's bill (`shotflow ledger`), and where the optional
daily budget (`SHOTFLOW_DAILY_BUDGET`) is held: the spend of a day is the estimated cost of every
request sent that day (UTC) that fal may have billed, whichever run or storyboard sent it.

A journal record describes the latest request of one clip; its `previous` list holds the earlier
requests of the same clip. Each of them is one row here. Records written before the ledger
existed have no storyboard and no cost: those fields are null, never guessed.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable, Iterator

from shotflow.errors import BudgetError
from shotflow.money import usd
from shotflow.store.journal import CANCELLED_ON_REQUEST, parse_utc

# the fields of one ledger row, in the order `shotflow ledger` prints them
FIELDS = (
    "shot",
    "take",
    "storyboard",
    "endpoint",
    "request_id",
    "state",
    "estimated_cost_usd",
    "submitted_at",
    "finished_at",
)
# states of a request fal may have billed: everything it took or may have taken, except a job that
# failed on fal's side (5xx failures and jobs cancelled while queued are not billed). A `failed`
# request that is `permanent` (a 422 from the result) was billed.
MAYBE_BILLED = frozenset({"intended", "uncertain", "submitted", "completed", "downloaded", "lost", "quarantined"})
# the pseudo-key whose journal lock serialises budget checks with the intents they allow
_BUDGET_LOCK = "daily-budget"


def request_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per request of one journal record (its earlier requests first)."""
    latest = {k: record.get(k) for k in record if k != "previous"}
    rows = []
    for entry in [*(record.get("previous") or ()), latest]:
        if not isinstance(entry, dict):
            continue
        row = {name: entry.get(name, record.get(name) if name in ("shot", "take", "endpoint") else None) for name in FIELDS}
        row["intended_at"] = entry.get("intended_at")
        row["permanent"] = bool(entry.get("permanent"))
        row["error"] = entry.get("error")
        row["key"] = record.get("key")
        rows.append(row)
    return rows


def ledger_rows(
    records: Iterable[Any], *, since: date | None = None, storyboard: str | Path | None = None
) -> list[dict[str, Any]]:
    """Every request of `records` (JobRecords or their JSON dicts), oldest first.

    `since` keeps requests sent on or after that UTC day; `storyboard` keeps those sent by runs
    of that file (compared as resolved paths)."""
    wanted = None if storyboard is None else same_storyboard(storyboard)
    rows = []
    for record in records:
        data = record.to_json() if hasattr(record, "to_json") else record
        for row in request_rows(data):
            sent = sent_on(row)
            if since is not None and (sent is None or sent < since):
                continue
            if wanted is not None and (row["storyboard"] is None or same_storyboard(row["storyboard"]) != wanted):
                continue
            rows.append(row)
    rows.sort(key=lambda r: r.get("submitted_at") or r.get("intended_at") or "")
    return rows


def maybe_billed(row: dict[str, Any]) -> bool:
    if row.get("state") in MAYBE_BILLED:
        return True
    # a failure fal bills (a 422), or a request cancelled on purpose that may have been running
    return row.get("state") == "failed" and (
        bool(row.get("permanent")) or str(row.get("error") or "").startswith(CANCELLED_ON_REQUEST)
    )


def cost_of(row: dict[str, Any]) -> Decimal | None:
    value = row.get("estimated_cost_usd")
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def sent_on(row: dict[str, Any]) -> date | None:
    """The UTC day a request was sent (accepted, or intended when fal's answer never came)."""
    when = parse_utc(row.get("submitted_at") or row.get("intended_at"))
    return None if when is None else when.astimezone(timezone.utc).date()


def totals(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Spend per UTC day and per model (endpoint): requests, known cost, unpriced requests.

    Only requests fal may have billed count; `refused` and unbilled failures are left out."""
    result: dict[str, dict[str, dict[str, Any]]] = {"per_day": {}, "per_model": {}}
    buckets: dict[str, dict[str, dict[str, Any]]] = {"per_day": defaultdict(_bucket), "per_model": defaultdict(_bucket)}
    for row in rows:
        if not maybe_billed(row):
            continue
        day = sent_on(row)
        for group, name in (("per_day", day.isoformat() if day else "unknown"), ("per_model", row.get("endpoint") or "unknown")):
            bucket = buckets[group][name]
            bucket["requests"] += 1
            cost = cost_of(row)
            if cost is None:
                bucket["unpriced"] += 1
            else:
                bucket["estimated_cost_usd"] += cost
    for group, named in buckets.items():
        result[group] = {name: {**b, "estimated_cost_usd": str(b["estimated_cost_usd"])} for name, b in sorted(named.items())}
    return result


def spent_on_day(records: Iterable[Any], day: date) -> tuple[Decimal, int]:
    """Estimated spend of `day` (UTC) and how many of its maybe-billed requests have no price."""
    spent, unpriced = Decimal(0), 0
    for row in ledger_rows(records):
        if sent_on(row) != day or not maybe_billed(row):
            continue
        cost = cost_of(row)
        if cost is None:
            unpriced += 1
        else:
            spent += cost
    return spent, unpriced


def today() -> date:
    return datetime.now(timezone.utc).date()


def check_daily_budget(journal: Any, budget: Decimal | None, adding: Decimal | None, *, shot: str) -> None:
    """BudgetError unless `adding` more today keeps the day's estimated spend within `budget`.

    `journal` is a Journal (or an iterable of records); `shot` names what asks ("shot 'x'", or a
    run). An unpriced request cannot be held to a budget, so it is refused while one is set."""
    if budget is None:
        return
    what = shot
    records = journal.records() if hasattr(journal, "records") else journal
    spent, _ = spent_on_day(records, today())
    if adding is None:
        raise BudgetError(
            f"{what}: its price is unknown, so it cannot be held to the daily budget of {usd(budget)} "
            "(SHOTFLOW_DAILY_BUDGET); nothing was sent"
        )
    if spent + adding > budget:
        raise BudgetError(
            f"{what}: {usd(adding)} more would take today's estimated spend (UTC) to {usd(spent + adding)}, "
            f"over the daily budget of {usd(budget)} (SHOTFLOW_DAILY_BUDGET; {usd(spent)} spent so far, "
            "see `shotflow ledger`); nothing was sent"
        )


@contextmanager
def budget_lock(journal: Any) -> Iterator[None]:
    """Hold the journal's daily-budget lock (waiting up to the journal's lock timeout): a budget
    check and the intent it allows are one step, across threads and processes, so two runs cannot
    both spend the last dollar."""
    with journal.submit_lock(_BUDGET_LOCK):
        yield


def _bucket() -> dict[str, Any]:
    return {"requests": 0, "estimated_cost_usd": Decimal(0), "unpriced": 0}


def same_storyboard(path: str | Path) -> str:
    """A storyboard as the ledger compares it: its resolved path (an inline one by its name)."""
    text = str(path)
    if text.startswith("inline:"):
        return text
    return str(Path(text).expanduser().resolve())
