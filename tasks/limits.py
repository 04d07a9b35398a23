"""How many generations a run has in flight: overall, per model, and (with a server) per account.

Semaphores are kept per flow run, in this process, so every task of a run shares them. When a
Prefect server is used, a global concurrency limit on top bounds all runs of all workers.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager, nullcontext
from typing import Iterator

from shotflow import interrupt

_lock = threading.Lock()
_runs: dict[str, "RunLimits"] = {}


class RunLimits:
    def __init__(self, total: int, per_model: dict[str, int] | None = None):
        self.total = threading.BoundedSemaphore(max(1, total))
        self.per_model = {m: threading.BoundedSemaphore(max(1, n)) for m, n in (per_model or {}).items()}

    @contextmanager
    def slot(self, model: str, shot: str = "") -> Iterator[None]:
        """One request in flight; a shot still waiting for its turn when a stop comes never gets one."""
        per_model = self.per_model.get(model)
        with _acquired(self.total, shot), (_acquired(per_model, shot) if per_model is not None else nullcontext()):
            yield


@contextmanager
def _acquired(semaphore: threading.BoundedSemaphore, shot: str) -> Iterator[None]:
    while not semaphore.acquire(timeout=0.5):
        if interrupt.stop_requested():
            raise interrupt.Interrupted(shot)
    try:
        yield
    finally:
        semaphore.release()


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
    """True when runs report to a shared Prefect server (not the embedded one, nor the private one
    `shotflow run` starts for itself: it holds no account-wide limit)."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL")
    return bool(url) and url != os.environ.get("SHOTFLOW_PRIVATE_PREFECT_API")


@contextmanager
def account_slot(limit_name: str) -> Iterator[None]:
    """Hold one slot of the server's global concurrency limit while a fal request is in flight."""
    if not uses_server():
        yield
        return
    from prefect.concurrency.sync import concurrency

    with concurrency(limit_name, occupy=1, strict=False):
        yield
