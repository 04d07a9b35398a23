"""Shot events fan out to whoever watches a run in this process (the CLI's live display).

Backends report through an `OnEvent` callback; the Prefect tasks turn each event into a run
log line and publish it here too. The flow publishes an `AssemblyEvent` at each step of the
assembly (clips normalised, join, contact sheet, manifest), for the display's bar. Subscribers
must be quick and must not raise.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from shotflow.model import ShotEvent


@dataclass(frozen=True)
class AssemblyEvent:
    """How far the assembly is: `done` of `total` units of `step` (e.g. 4 of 10 clips normalised)."""

    step: str
    done: int
    total: int


_lock = threading.Lock()
_subscribers: list[Callable[[ShotEvent | AssemblyEvent], None]] = []


def subscribe(fn: Callable[[ShotEvent | AssemblyEvent], None]) -> Callable[[], None]:
    with _lock:
        if fn not in _subscribers:  # subscribing twice is once (the CLI's early start and the flow share a display)
            _subscribers.append(fn)

    def unsubscribe() -> None:
        with _lock:
            if fn in _subscribers:
                _subscribers.remove(fn)

    return unsubscribe


def publish(event: ShotEvent | AssemblyEvent) -> None:
    with _lock:
        subscribers = list(_subscribers)
    for fn in subscribers:
        try:
            fn(event)
        except Exception:  # a broken display must never fail a paid generation
            pass
