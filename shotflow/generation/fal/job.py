"""One paid fal request as a state machine: its transitions are the only code that writes the journal.

States (the ledger's names, see shotflow.store.journal.STATES):

    intended --accepted--> submitted --completed--> completed --downloaded--> downloaded
        |                      |                        |   \\--quarantined--> quarantined --accept--> downloaded
        |--refused--> refused  |--failed--> failed      |--failed (422 from the result: billed)--> failed
        \\--uncertain--> uncertain                      \\--lost (media still failing after the retention)--> lost
                               \\--lost (fal 404s it long after it could have expired)--> lost
    downloaded --lost (clip gone from the store and its media too, after the retention)--> lost

A transition is written under the clip's journal lock and only if the record on disk still
describes this request in a state the transition starts from; otherwise the Job adopts what
another run wrote (it got there first) and says so by returning False.

Collecting a request (waiting, fetching its result, downloading its clip) is
`shotflow.generation.fal.collect`; it moves the Job through these transitions.

Ages: within a process measured with time.monotonic() from when the Job attached, added to the
UTC age recorded then (clamped at >= 0); across runs, the recorded UTC times. Nothing is ever
cancelled because of its age; the wait timeout (Settings.fal_wait_timeout) only stops waiting (the
request is re-attached later).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from fal_client import Completed

from shotflow.generation.fal.errors import FAL_ERRORS
from shotflow.generation.fal.submit import Accepted, request_handle
from shotflow.model import ShotPlan
from shotflow.store.clips import StoredClip
from shotflow.store.journal import CANCELLED_ON_REQUEST, LIVE, JobRecord, Journal, frame_note, parse_utc

if TYPE_CHECKING:
    from shotflow.generation.fal.backend import FalBackend

# status polls after a cancel was accepted, waiting for fal to say how the request ended
CANCEL_CHECKS = 5


def utc_now() -> datetime:
    """The wall clock (a function, so tests can make it jump)."""
    return datetime.now(timezone.utc)


def stamp() -> str:
    return utc_now().isoformat(timespec="milliseconds")


class Job:
    """The latest request of one clip-store key, and the only writer of its journal record."""

    def __init__(self, journal: Journal, record: JobRecord):
        self.journal = journal
        self.record = record
        # ages: the UTC ages at attach time, then the monotonic clock (no wall-clock jump counts)
        self._attached = time.monotonic()
        self._utc_at_attach = utc_now()

    # --- ages ----------------------------------------------------------------------------------

    def age(self, field: str) -> float | None:
        """Seconds since the record's UTC time `field` (e.g. 'submitted_at'), None if unknown."""
        when = parse_utc(getattr(self.record, field, None))
        if when is None:
            return None
        recorded = max(0.0, (self._utc_at_attach - when).total_seconds())
        return recorded + (time.monotonic() - self._attached)

    def media_age(self) -> float | None:
        """Seconds since the request completed (its media's retention runs from then)."""
        for name in ("completed_at", "submitted_at", "updated_at"):
            age = self.age(name)
            if age is not None:
                return age
        return None

    # --- transitions ---------------------------------------------------------------------------

    @classmethod
    def intend(
        cls,
        journal: Journal,
        shot: ShotPlan,
        key: str,
        *,
        prior: JobRecord | None,
        storyboard: str | None,
        force_token: str | None,
        run_token: str | None = None,
    ) -> Job:
        """Write the intent BEFORE the submit is sent (the caller holds the clip's lock)."""
        at = stamp()
        record = JobRecord(
            key=key,
            shot=shot.id,
            endpoint=shot.endpoint,
            body_hash=shot.body_hash,
            state="intended",
            seconds=shot.seconds,
            attempts=(prior.attempts if prior else 0) + 1,
            previous=(*prior.previous, prior.history_entry()) if prior is not None else (),
            created_at=prior.created_at if prior else at,
            intended_at=at,
            storyboard=storyboard,
            estimated_cost_usd=None if shot.cost is None else str(shot.cost),
            force_token=force_token,
            run_token=run_token,
            frames=tuple(frame_note(f) for f in shot.frames),
            take=shot.take,
        )
        return cls(journal, journal.write(record))

    def accepted(self, answer: Accepted) -> bool:
        return self._move(
            ("intended",),
            state="submitted",
            request_id=answer.request_id,
            status_url=answer.status_url,
            response_url=answer.response_url,
            cancel_url=answer.cancel_url,
            submitted_at=stamp(),
            error=None,
        )

    def refused(self, reason: str, *, permanent: bool) -> bool:
        return self._move(("intended",), state="refused", error=reason, permanent=permanent, finished_at=stamp())

    def uncertain(self, reason: str) -> bool:
        return self._move(("intended",), state="uncertain", error=reason)

    def completed(self) -> bool:
        return self._move(("submitted",), state="completed", completed_at=stamp(), error=None)

    def got_result(self, video_url: str) -> bool:
        return self._move(("completed",), video_url=video_url, error=None)

    def noted(self, error: str) -> bool:
        """An error about a live request that keeps it live (an odd answer, a failed download)."""
        return self._move((*LIVE, "downloaded"), error=error)

    def downloaded(self, clip: StoredClip) -> bool:
        return self._move(("completed", "downloaded"), **_in_store(clip))

    def quarantined(self, path: Any, reason: str) -> bool:
        return self._move(
            ("completed", "downloaded"),
            state="quarantined",
            quarantine_path=str(path),
            quarantine_reason=reason,
            error=reason,
            finished_at=stamp(),
        )

    def accept(self, clip: StoredClip) -> bool:
        """quarantined -> downloaded: the user vouched for the kept-aside copy (`shotflow accept`)."""
        return self._move(("quarantined",), **_in_store(clip), quarantine_path=None)

    def failed(self, reason: str, *, permanent: bool) -> bool:
        return self._move(LIVE, state="failed", error=reason, permanent=permanent, finished_at=stamp())

    def lost(self, reason: str) -> bool:
        return self._move((*LIVE, "downloaded"), state="lost", error=reason, finished_at=stamp())

    def _move(self, from_states: tuple[str, ...] | frozenset[str], **changes: Any) -> bool:
        current = self.journal.update(self.record.key, self.record.request_id, expect=tuple(from_states), **changes)
        if current is None:
            return False
        self.record = current
        return current.state == changes.get("state", current.state) and current.request_id == changes.get(
            "request_id", current.request_id
        )

    # --- fal's handle of this request ----------------------------------------------------------

    def handle(self, backend: FalBackend):
        r = self.record
        return request_handle(
            backend.fal, r.endpoint, r.request_id, status_url=r.status_url, response_url=r.response_url, cancel_url=r.cancel_url
        )

    # --- cancelling ----------------------------------------------------------------------------

    def cancel(self, backend: FalBackend, shot_id: str) -> str:
        """Cancel this live request on purpose (`shotflow cancel`) and check fal's answer.

        Returns what became of it: "cancelled" (fal says it ended cancelled: the record is
        `failed`), "finished" (it completed anyway: paid for, the record is `completed` and a run
        collects it), "running" (fal still reports it live: kept `submitted`), or "not live"
        (nothing to cancel: the record is not `submitted`)."""
        if self.record.state != "submitted" or not self.record.request_id:
            return "not live"
        verdict, status = check_cancel(self.handle(backend), backend.settings.fal_poll_interval)
        if verdict == "cancelled":
            said = backend.scrub(str(status.error)) if status else "cancelled"
            self.failed(f"{CANCELLED_ON_REQUEST}; fal says: {said}", permanent=False)
        elif verdict == "finished":
            self.completed()
        return verdict


def _in_store(clip: StoredClip) -> dict[str, Any]:
    """The changes of a record whose clip reached the store (downloaded, or accepted)."""
    at = stamp()
    return dict(state="downloaded", downloaded_at=at, finished_at=at, error=None, clip_sha256=clip.sha256, clip_bytes=clip.size)


def check_cancel(handle, poll_interval: float) -> tuple[str, Completed | None]:
    """PUT cancel (at the handle's queue-host URL), then ask fal how the request ended.

    fal's 202 only means cancellation was requested: a job already running may still finish (and
    bill). Returns ("cancelled" | "finished" | "running", the last Completed status or None)."""
    cancelled = True
    try:
        handle.cancel()
    except FAL_ERRORS:
        cancelled = False  # e.g. 400: it just finished; or a 5xx: the status says how it stands
    status = None
    for check in range(CANCEL_CHECKS if cancelled else 1):
        if check:
            time.sleep(poll_interval)
        try:
            status = handle.status(with_logs=False)
        except FAL_ERRORS:
            status = None
            continue
        if isinstance(status, Completed):
            break
    if isinstance(status, Completed):
        return ("cancelled" if status.error else "finished"), status
    return "running", None
