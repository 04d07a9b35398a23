"""Shot events fan out to whoever watches a run in this process (the CLI's live display).

Backends report through an `OnEvent` callback; the Prefect tasks turn each event into a run
log line and publish it here too. Subscribers must be quick and must not raise.
"""

from __future__ import annotations

import threading
from typing import Callable

from shotflow.backend import ShotEvent

_lock = threading.Lock()
_subscribers: list[Callable[[ShotEvent], None]] = []


def subscribe(fn: Callable[[ShotEvent], None]) -> Callable[[], None]:
    with _lock:
        _subscribers.append(fn)

    def unsubscribe() -> None:
        with _lock:
            if fn in _subscribers:
                _subscribers.remove(fn)

    return unsubscribe


def publish(event: ShotEvent) -> None:
    with _lock:
        subscribers = list(_subscribers)
    for fn in subscribers:
        try:
            fn(event)
        except Exception:  # a broken display must never fail a paid generation
            pass
