"""The one narrow interface every generation backend implements (fal, and the offline preview).

The flow does not branch on which backend it has: it asks for a shot's clip and gets a path in
the clip store, plus what happened on the way (a cache hit, a request id).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Protocol

from shotflow.plan import ShotPlan

EventKind = Literal["cached", "submitted", "reattached", "queued", "running", "log", "downloading", "done", "retrying"]


@dataclass(frozen=True)
class ShotEvent:
    """Something a user watching the run wants to see about one shot."""

    shot: str
    kind: EventKind
    detail: str = ""
    request_id: str | None = None
    queue_position: int | None = None


OnEvent = Callable[[ShotEvent], None]


def ignore_events(event: ShotEvent) -> None:
    return None


@dataclass(frozen=True)
class GeneratedClip:
    shot: str
    path: Path  # in the clip store; verified
    key: str  # the clip store key
    backend: str
    cache_hit: bool
    request_id: str | None = None
    # a paid clip that failed verification and that the user accepted (`shotflow accept`): why it failed
    accepted_despite: str | None = None


class Backend(Protocol):
    name: str

    def generate(self, shot: ShotPlan, *, force: str | None = None, on_event: OnEvent = ignore_events) -> GeneratedClip:
        """The shot's clip: from the store, or generated, verified and stored.

        `force` is the run's token (None: not forced): a forced shot is generated again, at most
        once per token, so a retry of the forced attempt re-attaches instead of paying again."""
        ...

    def close(self) -> None:
        """Release connections; safe to call twice."""
        ...
