"""How shotflow words money, written once for every output (terminal, contact sheet, manifest,
Prefect UI, messages): an amount, an estimate that names the shots without a price, and a cost as
the backend had it (a preview pays nothing, so it says what the shots would cost on fal).

Every figure is an estimate from the catalog's prices; what fal billed is in the journal
(`shotflow ledger`). A price nobody knows is "unknown", never $0. (A catalog price, per second or
per clip, keeps every digit it has: the catalog words it, `shotflow.catalog.spec.dollars`.)
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Sequence

from shotflow.model import Plan

PREVIEW = "preview"  # the backend that pays nothing: its costs are what fal would charge
UNKNOWN = "unknown"
CENT = Decimal("0.01")


def usd(amount: Decimal | str | float | None) -> str:
    """Dollars to the cent ("$1.40"); an amount under a cent keeps its digits ("$0.004"). None (or
    anything that is not a finite amount: a journal's or a manifest's string) is "unknown"."""
    if amount is None:
        return UNKNOWN
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        return UNKNOWN
    if not value.is_finite():
        return UNKNOWN
    return f"${value:.2f}" if value >= CENT or value == 0 else f"${value:.3f}"


def unpriced_shots(count: int, ids: Sequence[str] = ()) -> str:
    """ " + 2 unpriced shots (a, b)", added to a known cost; "" when every shot has a price."""
    if not count:
        return ""
    return f" + {count} unpriced shot{'s' if count > 1 else ''}" + (f" ({', '.join(ids)})" if ids else "")


def estimate(known: Decimal, unpriced_ids: Sequence[str]) -> str:
    """A known sum and the shots it leaves out: "$2.80 + 1 unpriced shot (b)"."""
    return usd(known) + unpriced_shots(len(unpriced_ids), unpriced_ids)


def plan_cost(plan: Plan) -> str:
    """What a plan's shots cost at the catalog's prices: "$2.80 + 1 unpriced shot (b)"."""
    return estimate(plan.known_cost, [s.id for s in plan.unpriced])


def on_fal(cost: str, backend: str) -> str:
    """A cost as the backend had it: "would cost $1.40 on fal" for a preview, "$1.40 on fal"."""
    return f"would cost {cost} on fal" if backend == PREVIEW else f"{cost} on fal"


def run_cost(plan: Plan, backend: str) -> str:
    """A run's opening words on money: "would cost $2.80 on fal" (a preview), "estimated $2.80"."""
    return on_fal(plan_cost(plan), backend) if backend == PREVIEW else f"estimated {plan_cost(plan)}"
