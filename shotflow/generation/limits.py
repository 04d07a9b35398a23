"""How many generations one run has in flight, overall and per model (no Prefect).

Semaphores are kept per run key, in this process, so everything generating for a run shares
them: the CLI's early start (shotflow.generation.early) and the flow's generate-shot tasks
(tasks/limits.py adds the Prefect server's account-wide limit on top).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager, nullcontext
from typing import Callable, Iterator

from shotflow import interrupt

_lock = threading.Lock()
_runs: dict[str, "RunLimits"] = {}


class RunLimits:
    def __init__(self, total: int, per_model: dict[str, int] | None = None):
        self.total = threading.BoundedSemaphore(max(1, total))
        self.per_model = {m: threading.BoundedSemaphore(max(1, n)) for m, n in (per_model or {}).items()}

    @contextmanager
    def slot(self, model: str, shot: str = "", on_wait: Callable[[], object] | None = None) -> Iterator[None]:
        """One request in flight; a shot still waiting for its turn when a stop comes never gets one.
        `on_wait()` is called when the shot has to wait for its turn."""
        per_model = self.per_model.get(model)
        with (
            _acquired(self.total, shot, on_wait),
            _acquired(per_model, shot, on_wait) if per_model is not None else nullcontext(),
        ):
            yield


@contextmanager
def _acquired(semaphore: threading.BoundedSemaphore, shot: str, on_wait: Callable[[], object] | None = None) -> Iterator[None]:
    if not semaphore.acquire(blocking=False):
        if on_wait is not None:
            on_wait()
        while not semaphore.acquire(timeout=0.5):
            if interrupt.stop_requested():
                raise interrupt.Interrupted(shot)
    try:
        yield
    finally:
        semaphore.release()


def open_limits(run_key: str, total: int, per_model: dict[str, int] | None = None) -> RunLimits:
    """The run's limits. A run whose limits are open already (the CLI opened them for its early
    start, with the same numbers) keeps them: its early generations hold slots of the same ones."""
    with _lock:
        limits = _runs.get(run_key)
        if limits is None:
            limits = _runs[run_key] = RunLimits(total, per_model)
        return limits


def limits_for(run_key: str) -> RunLimits:
    with _lock:
        return _runs.setdefault(run_key, RunLimits(4))


def close_limits(run_key: str) -> None:
    with _lock:
        _runs.pop(run_key, None)
