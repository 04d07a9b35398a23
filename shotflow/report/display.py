"""The live view of a run in the terminal: one row per shot, and a bar for the assembly.

Each shot's row shows its state, its place in fal's queue, how long it has been on its way
(since it was sent, or drawn), how many times it was retried, and what it costs (a preview: what
it would cost on fal). Under the table, a bar follows the assembly: clips normalised as they
land, then the join, the contact sheet and the manifest (`AssemblyEvent`s from the flow).

On a terminal the view updates in place (elapsed times tick); in a log or a pipe, each change
of a shot's state is printed once, and each assembly step once, so CI logs stay readable.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from shotflow.generation.events import AssemblyEvent
from shotflow.model import Plan, ShotEvent
from shotflow.money import PREVIEW, usd

LABELS = {
    "cached": "in the clip store",
    "waiting": "waiting for a slot",
    "submitted": "submitted",
    "reattached": "re-attached",
    "queued": "queued",
    "running": "generating",
    "log": "generating",
    "downloading": "downloading",
    "retrying": "retrying",
    "done": "done",
}
BAR_WIDTH = 30


@dataclass
class _Row:
    label: str = "waiting"
    detail: str = ""
    request: str = ""
    queue: int | None = None
    started: float | None = None
    finished: float | None = None
    retries: int = 0


class ShotDisplay:
    def __init__(self, plan: Plan, stream=None, backend: str | None = None):
        self.plan = plan
        self.backend = backend
        self.stream = stream or sys.stdout
        self.console = Console(file=self.stream)
        # a reviewed run asks its questions on this terminal: lines, not a live table redrawn over the prompts
        self.live_mode = self.console.is_terminal and not plan.review
        self.rows = {s.label: _Row() for s in plan.all_takes}  # a row per take
        self.models = {s.label: s.model for s in plan.all_takes}
        self.assembly: AssemblyEvent | None = None
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.live: Live | None = None
        self.width = max(len(s.label) for s in plan.all_takes)

    # kept for callers that read (label, detail, request) per shot
    @property
    def state(self) -> dict[str, tuple[str, str, str]]:
        return {shot: (r.label, r.detail, r.request) for shot, r in self.rows.items()}

    def __enter__(self):
        if self.live_mode:
            # Live redraws 4 times a second by itself (elapsed times tick): events only change the
            # rows, so a burst of fal log lines costs no rendering; __rich__ takes self.lock
            # inside Live's lock, so nothing here refreshes while holding self.lock
            self.live = Live(self, console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live:
            self.live.refresh()
            self.live.__exit__(*exc)
        return False

    def __call__(self, event) -> None:
        if isinstance(event, AssemblyEvent):
            self._assembly(event)
            return
        if not isinstance(event, ShotEvent) or event.shot not in self.rows:
            return
        label = LABELS.get(event.kind, event.kind)
        detail = event.detail
        if event.kind == "queued" and event.queue_position is not None:
            detail = f"position {event.queue_position}"
        now = time.monotonic()
        with self.lock:
            row = self.rows[event.shot]
            if row.label == "done":
                return
            old_label = row.label
            row.label, row.detail = label, detail
            row.request = event.request_id or row.request
            if row.started is None and event.kind not in ("cached",):
                row.started = now
            if event.kind == "queued":
                row.queue = event.queue_position
            elif event.kind in ("running", "log", "downloading", "done"):
                row.queue = None
            if event.kind == "retrying":
                row.retries += 1
            if event.kind == "done":
                row.finished = now
            if not self.live and (label != old_label or event.kind in ("queued", "retrying")):
                model = self.models.get(event.shot, "")
                line = f"[{now - self.started:6.1f}s] {event.shot:<{self.width}}  {model:<16}  {label}"
                if detail:
                    line += f" ({detail})"
                if row.request and event.kind in ("submitted", "reattached"):
                    line += f"  request {row.request}"
                print(line, file=self.stream, flush=True)

    def _assembly(self, event: AssemblyEvent) -> None:
        with self.lock:
            old, self.assembly = self.assembly, event
            if not self.live and (old is None or (old.step, old.done) != (event.step, event.done)):
                print(f"[{time.monotonic() - self.started:6.1f}s] assembly: {_bar(event)}", file=self.stream, flush=True)

    def on_fal(self) -> list[tuple[str, str, str]]:
        """(shot, fal request id, what it was last seen doing) for every shot with a request that
        is not done: paid, and not yet in the clip store."""
        with self.lock:
            return [(shot, r.request, r.label) for shot, r in self.rows.items() if r.request and r.label != "done"]

    def __rich__(self):
        now = time.monotonic()
        with self.lock:
            done = sum(1 for r in self.rows.values() if r.label == "done")
            title = f"{self.plan.title}: {done}/{len(self.rows)} {'takes' if self.plan.has_takes else 'shots'} ready"
            table = Table(title=title, title_justify="left", box=None)
            cost_header = "would cost" if self.backend == PREVIEW else "cost"  # a preview pays nothing
            for column in ("shot", "model", "state", "queue", "elapsed", "retries", cost_header, "detail"):
                table.add_column(column, justify="right" if column in ("queue", "elapsed", "retries", cost_header) else "left")
            for s in self.plan.all_takes:
                r = self.rows[s.label]
                elapsed = "" if r.started is None else f"{(r.finished or now) - r.started:.0f} s"
                table.add_row(
                    s.label, s.model, r.label, "" if r.queue is None else str(r.queue), elapsed,
                    str(r.retries) if r.retries else "", usd(s.cost), r.detail[-40:],
                )  # fmt: skip
            if self.assembly is None:
                return table
            return Group(table, Text(f"assembly: {_bar(self.assembly)}"))


def _bar(event: AssemblyEvent) -> str:
    total = max(event.total, 1)
    filled = round(BAR_WIDTH * min(event.done, total) / total)
    return f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {event.step} ({event.done}/{event.total})"
