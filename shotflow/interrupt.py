"""The process-wide stop flag that Ctrl-C and SIGTERM raise, the error a stopped shot ends with, and
how long a stop waits for what is under way (`STOP_GRACE_SECONDS`).

The CLI's signal handler calls `request_stop()`; whatever is about to pay (a submit) or is waiting
on fal checks `stop_requested()` and ends the shot with `Interrupted` instead. A request fal has
already accepted stays journaled, so a re-run collects it without paying again. No Prefect here.
"""

from __future__ import annotations

import threading

from shotflow.errors import GenerationError

# After the first Ctrl-C the flow ends Cancelled in well under a second; shots still waiting on fal
# stop at their next poll. Whatever has not stopped by then (the flow's thread, the early start's
# generation) is not waited for.
STOP_GRACE_SECONDS = 5.0
_stop = threading.Event()


def request_stop() -> None:
    """Ask every shot of this process to stop: no new submit, no more waiting."""
    _stop.set()


def stop_requested() -> bool:
    return _stop.is_set()


def reset() -> None:
    """Clear the flag (tests, and a process that runs again after a stop)."""
    _stop.clear()


def wait(seconds: float) -> bool:
    """Sleep up to `seconds`, waking at once on a stop; True if a stop was requested."""
    return _stop.wait(seconds)


class Interrupted(GenerationError):
    """A shot stopped by Ctrl-C/SIGTERM. Not transient: a retry in this run must not follow."""

    def __init__(self, shot: str, message: str = "stopped before submitting: nothing paid", *, transient: bool = False):
        super().__init__(shot, message, transient=False)

    def __reduce__(self):
        return (Interrupted, (self.shot, self.reason))
