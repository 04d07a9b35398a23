"""What the command line hands the user besides its sentences: columns of text, and the files
the user names (`schema -o`, `deploy --prefect-yaml`). Money is worded by shotflow/money.py."""

from __future__ import annotations

from typing import Sequence

from shotflow.errors import ShotflowError


def table(rows: list[Sequence[str]], header: Sequence[str], wrap: dict[int, int] | None = None) -> str:
    """Columns two spaces apart; `wrap` {column: width} wraps those cells onto more lines."""
    import textwrap

    wrap = wrap or {}
    rows = [list(map(str, header))] + [list(map(str, r)) for r in rows]
    cells = [
        [[c] if i not in wrap or n == 0 else textwrap.wrap(c, wrap[i], break_on_hyphens=False) or [""] for i, c in enumerate(r)]
        for n, r in enumerate(rows)
    ]
    widths = [max(len(line) for r in cells for line in r[i]) for i in range(len(header))]
    lines = []
    for r in cells:
        for k in range(max(len(c) for c in r)):
            lines.append("  ".join((c[k] if k < len(c) else "").ljust(w) for c, w in zip(r, widths)).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_file(path: str, text: str) -> None:
    """Write a file the user named on the command line; a failure is one line naming it."""
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise ShotflowError(f"cannot write {path}: {exc.strerror}") from None
