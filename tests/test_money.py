"""The one wording of money (shotflow/money.py): amounts, estimates naming unpriced shots, a
preview's "would cost ... on fal"."""

from __future__ import annotations

from decimal import Decimal

from shotflow import money
from shotflow.plan import plan_from_text


def test_an_amount_is_worded_to_the_cent_and_an_unknown_one_never_as_zero():
    assert money.usd(Decimal("1.4")) == "$1.40"
    assert money.usd("2.5") == "$2.50" and money.usd(0) == "$0.00"
    assert money.usd(Decimal("0.004")) == "$0.004"  # under a cent: not rounded away to $0.00
    assert [money.usd(v) for v in (None, "", "n/a", "NaN", "Infinity")] == ["unknown"] * 5


def test_an_estimate_names_the_shots_without_a_price():
    plan = plan_from_text(
        "version: 1\nshots:\n  - {id: a, prompt: p, model: veo3}\n  - {id: b, prompt: q, model: wan-pro}\n  - {id: c, prompt: r, model: wan-pro}\n",
        "sb.yaml",
    )
    assert money.plan_cost(plan) == "$3.20 + 2 unpriced shots (b, c)"
    assert money.run_cost(plan, "fal") == "estimated $3.20 + 2 unpriced shots (b, c)"
    assert money.run_cost(plan, "preview") == "would cost $3.20 + 2 unpriced shots (b, c) on fal"
    assert money.estimate(Decimal("1.5"), ["x"]) == "$1.50 + 1 unpriced shot (x)"
    assert money.unpriced_shots(0) == "" and money.unpriced_shots(3) == " + 3 unpriced shots"
