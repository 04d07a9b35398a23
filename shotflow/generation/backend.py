"""The one narrow interface every generation backend implements (fal, and the offline preview).

The flow does not branch on which backend it has: it asks for a shot's clip and gets a path in
the clip store, plus what happened on the way (a cache hit, a request id).
"""

from __future__ import annotations

from typing import Protocol

from shotflow.model import GeneratedClip, OnEvent, ShotPlan, ignore_events


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
