"""The ledger: one row per request across runs, spend per day and model, the daily budget."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from shotflow.errors import BudgetError
from shotflow.store import ledger
from shotflow.store.journal import CANCELLED_ON_REQUEST

TODAY = datetime.now(timezone.utc).replace(microsecond=0)


def stamp(days_ago: float = 0) -> str:
    return (TODAY - timedelta(days=days_ago)).isoformat()


def record(shot: str, state: str, cost: str | None = "1.40", *, days_ago: float = 0, previous=(), **extra) -> dict:
    return {
        "key": f"k-{shot}",
        "shot": shot,
        "endpoint": "fal-ai/kling-video/v2/master/text-to-video",
        "storyboard": "/boards/a.yaml",
        "request_id": None if state in ("uncertain", "intended", "refused") else f"req-{shot}",
        "state": state,
        "estimated_cost_usd": cost,
        "intended_at": stamp(days_ago),
        "submitted_at": None if state in ("uncertain", "intended", "refused") else stamp(days_ago),
        "finished_at": None,
        "previous": list(previous),
        **extra,
    }


def test_one_row_per_request_with_the_issue_field_names():
    earlier = {
        "request_id": "req-old",
        "state": "downloaded",
        "estimated_cost_usd": "1.40",
        "submitted_at": stamp(1),
        "storyboard": "/boards/a.yaml",
        "finished_at": stamp(1),
    }
    rows = ledger.ledger_rows([record("a", "downloaded", previous=[earlier]), record("b", "uncertain")])
    assert [r["request_id"] for r in rows] == ["req-old", "req-a", None]
    for row in rows:
        assert set(ledger.FIELDS) <= set(row)
    # an earlier request of the clip inherits the record's shot and endpoint
    assert rows[0]["shot"] == "a" and rows[0]["endpoint"].startswith("fal-ai/kling")


def test_records_written_before_the_ledger_have_null_storyboard_and_cost():
    old = {
        "key": "k",
        "shot": "a",
        "endpoint": "fal-ai/veo3",
        "request_id": "r",
        "state": "downloaded",
        "submitted_at": stamp(),
        "schema": 1,
    }
    (row,) = ledger.ledger_rows([old])
    assert row["storyboard"] is None and row["estimated_cost_usd"] is None and row["finished_at"] is None


def test_since_and_storyboard_filters(tmp_path):
    board = tmp_path / "b.yaml"
    board.write_text("")
    rows = ledger.ledger_rows(
        [record("a", "downloaded", days_ago=3), record("b", "downloaded", storyboard=str(board))],
        since=(TODAY - timedelta(days=1)).date(),
    )
    assert [r["shot"] for r in rows] == ["b"]
    rows = ledger.ledger_rows([record("a", "downloaded"), record("b", "downloaded", storyboard=str(board))], storyboard=board)
    assert [r["shot"] for r in rows] == ["b"]


def test_totals_count_what_fal_may_have_billed():
    rows = ledger.ledger_rows(
        [
            record("a", "downloaded"),
            record("b", "uncertain"),  # may have been billed: counted
            record("c", "refused"),  # never taken: not counted
            record("d", "failed", permanent=False),  # a 5xx failure on fal's side: not billed
            record("e", "failed", permanent=True),  # a 422 from the result: billed
            record("f", "submitted", cost=None),
            # cancelled with `shotflow cancel`: it may have been running, and billed
            record("g", "failed", permanent=False, error=f"{CANCELLED_ON_REQUEST}; fal says: cancelled"),
        ]
    )
    day = ledger.totals(rows)["per_day"][TODAY.date().isoformat()]
    assert day == {"requests": 5, "estimated_cost_usd": "5.60", "unpriced": 1}
    assert sum(m["requests"] for m in ledger.totals(rows)["per_model"].values()) == 5


def test_daily_budget():
    records = [record("a", "downloaded"), record("b", "downloaded", days_ago=1)]
    ledger.check_daily_budget(records, Decimal("3"), Decimal("1.40"), shot="shot 'c'")  # 1.40 + 1.40 <= 3
    with pytest.raises(BudgetError) as exc:
        ledger.check_daily_budget(records, Decimal("2.5"), Decimal("1.40"), shot="shot 'c'")
    message = str(exc.value)
    assert "shot 'c'" in message and "$2.80" in message and "$2.50" in message and "SHOTFLOW_DAILY_BUDGET" in message
    with pytest.raises(BudgetError, match="price is unknown"):
        ledger.check_daily_budget(records, Decimal("100"), None, shot="shot 'c'")
    ledger.check_daily_budget(records, None, None, shot="shot 'c'")  # no budget set: nothing to hold


def test_spend_is_counted_by_utc_day():
    late = {
        "key": "k",
        "shot": "a",
        "endpoint": "e",
        "state": "downloaded",
        "estimated_cost_usd": "2",
        "submitted_at": "2026-03-01T23:30:00-05:00",
    }  # 04:30 UTC on March 2
    assert ledger.spent_on_day([late], date(2026, 3, 2)) == (Decimal(2), 0)
    assert ledger.spent_on_day([late], date(2026, 3, 1)) == (Decimal(0), 0)


def test_budget_lock_serialises_across_threads(tmp_path):
    from shotflow.store.journal import Journal

    journal = Journal(tmp_path / "jobs")
    inside, most = [0], [0]
    guard = threading.Lock()

    def worker():
        with ledger.budget_lock(journal):
            with guard:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            threading.Event().wait(0.05)
            with guard:
                inside[0] -= 1

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1
