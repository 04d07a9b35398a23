"""The live view of a run in the terminal: one line per shot.

On a terminal the lines update in place; in a log or a pipe, each change of a shot's state is
printed once, so CI logs stay readable.
"""

from __future__ import annotations

import sys
import threading
import time

from rich.console import Console
from rich.live import Live
from rich.table import Table

from shotflow.backend import ShotEvent
from shotflow.plan import Plan

LABELS = {
    "cached": "in the clip store",
    "submitted": "submitted",
    "reattached": "re-attached",
    "queued": "queued",
    "running": "generating",
    "log": "generating",
    "downloading": "downloading",
    "retrying": "retrying",
    "done": "done",
}


class ShotDisplay:
    def __init__(self, plan: Plan, stream=None):
        self.plan = plan
        self.stream = stream or sys.stdout
        self.console = Console(file=self.stream)
        self.live_mode = self.console.is_terminal
        self.state = {s.id: ("waiting", "", "") for s in plan.shots}
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.live: Live | None = None
        self.width = max(len(s.id) for s in plan.shots)

    def __enter__(self):
        if self.live_mode:
            self.live = Live(self._table(), console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live:
            self.live.update(self._table())
            self.live.__exit__(*exc)
        return False

    def __call__(self, event: ShotEvent) -> None:
        if event.shot not in self.state:
            return
        label = LABELS.get(event.kind, event.kind)
        detail = event.detail
        if event.kind == "queued" and event.queue_position is not None:
            detail = f"position {event.queue_position}"
        with self.lock:
            old_label, _, old_request = self.state[event.shot]
            request = event.request_id or old_request
            if old_label == "done":
                return
            self.state[event.shot] = (label, detail, request)
            if self.live:
                self.live.update(self._table())
            elif label != old_label or event.kind in ("queued", "retrying"):
                elapsed = time.monotonic() - self.started
                shot = self.plan.shot(event.shot)
                line = f"[{elapsed:6.1f}s] {event.shot:<{self.width}}  {shot.model:<16}  {label}"
                if detail:
                    line += f" ({detail})"
                if request and event.kind in ("submitted", "reattached"):
                    line += f"  request {request}"
                print(line, file=self.stream, flush=True)

    def on_fal(self) -> list[tuple[str, str, str]]:
        """(shot, fal request id, what it was last seen doing) for every shot with a request that
        is not done: paid, and not yet in the clip store."""
        with self.lock:
            return [(shot, request, label) for shot, (label, _, request) in self.state.items() if request and label != "done"]

    def _table(self) -> Table:
        done = sum(1 for label, _, _ in self.state.values() if label in ("done",))
        table = Table(title=f"{self.plan.title}: {done}/{len(self.plan.shots)} shots ready", title_justify="left", box=None)
        for column in ("shot", "model", "seconds", "status", "detail", "fal request"):
            table.add_column(column)
        for s in self.plan.shots:
            label, detail, request = self.state[s.id]
            table.add_row(s.id, s.model, str(s.seconds), label, detail[-60:], request or "")
        return table
