"""How generation tries a failed step again: one `RetryPolicy` (attempts, exponential backoff with
jitter), and which layer retries which failure, so that no failure is retried by two layers
multiplying each other (a 503 retried 5 times in the call, inside 5 task retries, is 25 requests).

| failure | retried by (and nobody else) | tries |
|---|---|---|
| a submit fal did not take: 408, 429, 503 (`SUBMIT_NOT_TAKEN`), or no connection made (nothing sent, nothing billed) | `send_submit`'s loop (fal/submit.py) | `in_call`: SHOTFLOW_FAL_RETRIES + 1 |
| a submit that may have reached fal (500, 502, 504, an answer lost after sending) | nobody, ever: it is `uncertain` | 1 |
| a status poll or result fetch: transport error, timeout, 408/409/429 (`FAL_CLIENT_RETRY_CODES`), an ingress 502-504 | fal_client, inside the call (`retried_by_fal_client`) | fal_client's 10 |
| a status poll or result fetch: fal's 5xx, an unreadable answer, a young request's 404 | the Job's loops (fal/collect.py) | `in_call`: SHOTFLOW_FAL_RETRIES + 1 |
| a clip download: 4xx/5xx from the media host, a cut connection, a broken stream | `download_clip`'s loop (fal/download.py) | `downloads`: SHOTFLOW_DOWNLOAD_ATTEMPTS |
| `RetryLater`: still queued/running after SHOTFLOW_FAL_WAIT_TIMEOUT; a clip's lock held past SHOTFLOW_LOCK_TIMEOUT; fal's job failed on its side (not billed); a local ffmpeg MediaError | the Prefect task (tasks/generate.py): re-attaches, or submits anew for the failed job | `TASK`: 5 |
| a still's fetch (`image:` URL) that may pass later: no connection, a timeout, a 5xx, 408, 429 (`media.fetch.FETCH_TRANSIENT`; nothing sent to fal) | the Prefect task (`RetryLater`, from generation/continuity.py) | `TASK`: 5 |
| anything after Ctrl-C/SIGTERM; a permanent failure (4xx, 422, the key) | nobody | 1 |

A failure an inner loop gave up on stays `transient` (a later run may succeed: the request is
journaled and re-attached for free) but the task does not retry it (`task_retries`). The CLI's
early start is the shot's first attempt: the task re-raises its failure instead of repeating it
(`generation.early.failure`), unless the task owns that failure.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shotflow.errors import GenerationError, MediaError

if TYPE_CHECKING:
    from shotflow.settings import Settings

MAX_WAIT = 30.0  # seconds: no backoff waits longer (fal_client caps its own at 30 s too)


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all (the first included); after the n-th failure wait `first_wait`
    doubled n-1 times, at most `max_wait`, scaled by a random factor in [1 - jitter, 1 + jitter]
    (so that many shots failing together do not come back together)."""

    attempts: int
    first_wait: float = 1.0
    max_wait: float = MAX_WAIT
    jitter: float = 0.5

    def again(self, failures: int) -> bool:
        """Whether another try follows the `failures`-th failure."""
        return failures < self.attempts

    def wait(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th failure, jittered."""
        base = self.delays(failures)[-1]
        return min(base * random.uniform(1 - self.jitter, 1 + self.jitter), self.max_wait)

    def delays(self, retries: int | None = None) -> list[float]:
        """The waits before each retry, without jitter (Prefect takes these and adds its own)."""
        count = self.attempts - 1 if retries is None else retries
        return [min(self.first_wait * 2**n, self.max_wait) for n in range(count)]

    @classmethod
    def in_call(cls, settings: Settings) -> RetryPolicy:
        """Submits fal did not take, and status polls and result fetches fal_client does not retry."""
        return cls(attempts=settings.fal_retries + 1, first_wait=settings.fal_retry_backoff)

    @classmethod
    def downloads(cls, settings: Settings) -> RetryPolicy:
        """GETs of one clip from fal's media host."""
        return cls(attempts=settings.download_attempts, first_wait=settings.fal_retry_backoff)


# the Prefect task's own retries: only `RetryLater` failures, 2 s doubling, Prefect's jitter
TASK = RetryPolicy(attempts=5, first_wait=2.0)


class RetryLater(GenerationError):
    """A transient failure no loop inside the call retries: the Prefect task tries the shot again
    (it re-attaches to the journaled request, or submits anew when fal's job failed unbilled)."""

    def __init__(self, shot: str, message: str, *, transient: bool = True):
        super().__init__(shot, message, transient=True)

    def __reduce__(self):
        return (RetryLater, (self.shot, self.reason))


def task_retries(exc: BaseException) -> bool:
    """Whether the Prefect task tries a shot again after `exc` (see the table)."""
    # a MediaError reaching the task is a local ffmpeg failure (the preview backend): nothing inside
    # retries it; a download's failures never reach it (the Job turns them into GenerationErrors)
    return isinstance(exc, (RetryLater, MediaError))
