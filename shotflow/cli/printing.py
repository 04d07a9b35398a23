"""How the command line prints figures: dollars, a plan's cost, and columns of text."""

from __future__ import annotations

from decimal import Decimal
from typing import Sequence

from shotflow.model import Plan


def money(amount: Decimal | None) -> str:
    return "unknown" if amount is None else f"${amount:.2f}"


def plan_cost(plan: Plan) -> str:
    text = money(plan.known_cost)
    if plan.unpriced:
        text += f" + {len(plan.unpriced)} unpriced shot{'s' if len(plan.unpriced) > 1 else ''} ({', '.join(s.id for s in plan.unpriced)})"
    return text


def table(rows: list[Sequence[str]], header: Sequence[str], wrap: dict[int, int] | None = None) -> str:
    """Columns two spaces apart; `wrap` {column: width} wraps those cells onto more lines."""
    import textwrap

    wrap = wrap or {}
    rows = [list(map(str, header))] + [list(map(str, r)) for r in rows]
    cells = [[[c] if i not in wrap or n == 0 else textwrap.wrap(c, wrap[i], break_on_hyphens=False) or [""] for i, c in enumerate(r)]
             for n, r in enumerate(rows)]
    widths = [max(len(line) for r in cells for line in r[i]) for i in range(len(header))]
    lines = []
    for r in cells:
        for k in range(max(len(c) for c in r)):
            lines.append("  ".join((c[k] if k < len(c) else "").ljust(w) for c, w in zip(r, widths)).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
