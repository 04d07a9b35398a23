"""How many generations a run has in flight: overall, per model, and (with a server) per account.

Semaphores are kept per flow run, in this process, so every task of a run shares them. When a
Prefect server is used, a global concurrency limit on top bounds all runs of all workers.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager, nullcontext
from typing import Iterator

_lock = threading.Lock()
_runs: dict[str, "RunLimits"] = {}


class RunLimits:
    def __init__(self, total: int, per_model: dict[str, int] | None = None):
        self.total = threading.BoundedSemaphore(max(1, total))
        self.per_model = {m: threading.BoundedSemaphore(max(1, n)) for m, n in (per_model or {}).items()}

    @contextmanager
    def slot(self, model: str) -> Iterator[None]:
        per_model = self.per_model.get(model)
        with self.total, (per_model if per_model is not None else nullcontext()):
            yield


def open_limits(run_key: str, total: int, per_model: dict[str, int] | None = None) -> RunLimits:
    with _lock:
        limits = _runs[run_key] = RunLimits(total, per_model)
        return limits


def limits_for(run_key: str) -> RunLimits:
    with _lock:
        return _runs.setdefault(run_key, RunLimits(4))


def close_limits(run_key: str) -> None:
    with _lock:
        _runs.pop(run_key, None)


def uses_server() -> bool:
    """True when runs report to a real Prefect server (not the embedded, per-process one)."""
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL"))


@contextmanager
def account_slot(limit_name: str) -> Iterator[None]:
    """Hold one slot of the server's global concurrency limit while a fal request is in flight."""
    if not uses_server():
        yield
        return
    from prefect.concurrency.sync import concurrency

    with concurrency(limit_name, occupy=1, strict=False):
        yield
