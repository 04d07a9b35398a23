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

Collecting a request (`collect`): wait for it (status polls), fetch its result (the video URL,
kept in the record), download and verify the clip under the clip's lock (re-checking the store
after taking it, so two runs never download it twice). A download that fails keeps the request
`completed` with its URL and the error, to be tried again by a retry or a later run without
paying, until fal's media retention (Settings.media_retention_days after completion) has passed:
then it is `lost`, and only `--force` buys it again. A complete copy that fails verification is
kept aside (`quarantined`): `shotflow accept SHOT` uses it, `--force SHOT` buys a new one.

Ages: within a process measured with time.monotonic() from when the Job attached, added to the
UTC age recorded then (clamped at >= 0); across runs, the recorded UTC times. Nothing is ever
cancelled because of its age; `wait_timeout` only stops waiting (the request is re-attached later).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

from fal_client import Completed, InProgress, Queued

from shotflow import interrupt
from shotflow.errors import DownloadError, GenerationError
from shotflow.generation.fal.download import download_clip
from shotflow.generation.fal.errors import FAL_ERRORS, RETRY_CODES, classify, price, status_code, uncertain_error
from shotflow.generation.fal.submit import Accepted, request_handle
from shotflow.interrupt import Interrupted
from shotflow.model import GeneratedClip, ShotEvent, ShotPlan
from shotflow.store.clips import StoredClip
from shotflow.store.journal import LIVE, JobRecord, Journal

if TYPE_CHECKING:
    from shotflow.generation.fal.backend import FalBackend

# fal keeps a request (and its result) about an hour after it completes: one submitted less than
# this long ago cannot have expired, so a 404 about it is a glitch to wait out, not a lost job
RESULT_RETENTION = 3600.0
# status polls after a cancel was accepted, waiting for fal to say how the request ended
CANCEL_CHECKS = 5

Emit = Callable[[ShotEvent], None]


def utc_now() -> datetime:
    """The wall clock (a function, so tests can make it jump)."""
    return datetime.now(timezone.utc)


def stamp() -> str:
    return utc_now().isoformat(timespec="milliseconds")


def _parse(when: str | None) -> datetime | None:
    if not when:
        return None
    try:
        moment = datetime.fromisoformat(when)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class Job:
    """The latest request of one clip-store key, and the only writer of its journal record."""

    def __init__(self, journal: Journal, record: JobRecord, *, lock_timeout: float = 300.0):
        self.journal = journal
        self.record = record
        self.lock_timeout = lock_timeout
        # ages: the UTC ages at attach time, then the monotonic clock (no wall-clock jump counts)
        self._attached = time.monotonic()
        self._utc_at_attach = utc_now()

    # --- ages ----------------------------------------------------------------------------------

    def age(self, field: str) -> float | None:
        """Seconds since the record's UTC time `field` (e.g. 'submitted_at'), None if unknown."""
        when = _parse(getattr(self.record, field, None))
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
        lock_timeout: float = 300.0,
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
        )
        return cls(journal, journal.write(record), lock_timeout=lock_timeout)

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
        at = stamp()
        return self._move(
            ("completed", "downloaded"),
            state="downloaded",
            downloaded_at=at,
            finished_at=at,
            error=None,
            clip_sha256=clip.sha256,
            clip_bytes=clip.size,
        )

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
        at = stamp()
        return self._move(
            ("quarantined",),
            state="downloaded",
            downloaded_at=at,
            finished_at=at,
            error=None,
            clip_sha256=clip.sha256,
            clip_bytes=clip.size,
            quarantine_path=None,
        )

    def failed(self, reason: str, *, permanent: bool) -> bool:
        return self._move(LIVE, state="failed", error=reason, permanent=permanent, finished_at=stamp())

    def lost(self, reason: str) -> bool:
        return self._move((*LIVE, "downloaded"), state="lost", error=reason, finished_at=stamp())

    def _move(self, from_states: tuple[str, ...] | frozenset[str], **changes: Any) -> bool:
        current = self.journal.update(
            self.record.key, self.record.request_id, expect=tuple(from_states), lock_timeout=self.lock_timeout, **changes
        )
        if current is None:
            return False
        self.record = current
        return current.state == changes.get("state", current.state) and current.request_id == changes.get("request_id", current.request_id)

    # --- collecting: wait, result, download ----------------------------------------------------

    def collect(self, backend: FalBackend, shot: ShotPlan, emit: Emit) -> GeneratedClip:
        """From the current state to a clip in the store; raises GenerationError on the way."""
        if self.record.state == "submitted":
            self._wait(backend, shot, emit)
            self.completed()
        if self.record.state == "completed" and not self.record.video_url:
            self.got_result(self._fetch_result(backend, shot, emit))
        if self.record.state in ("completed", "downloaded") and self.record.video_url:
            return self._download(backend, shot, emit)
        return self._dead_end(shot)

    def _dead_end(self, shot: ShotPlan) -> GeneratedClip:
        rid = self.record.request_id
        raise GenerationError(
            shot.id, f"fal request {rid} is {self.record.state} ({self.record.error or 'no clip'}); `--force {shot.id}` buys a new one",
            transient=False,
        )

    def _handle(self, backend: FalBackend):
        r = self.record
        return request_handle(
            backend.fal, r.endpoint, r.request_id, status_url=r.status_url, response_url=r.response_url, cancel_url=r.cancel_url
        )

    def _wait(self, backend: FalBackend, shot: ShotPlan, emit: Emit) -> Completed:
        rid = self.record.request_id
        handle = self._handle(backend)
        start = time.monotonic()
        failures, position, running, logs_seen = 0, None, False, 0
        while True:
            if interrupt.stop_requested():
                raise self._stopped(shot)
            status, failure = None, None
            try:
                status = handle.status(with_logs=True)
            except FAL_ERRORS as exc:
                failure = exc
            if failure is not None:
                error = self._call_failed(backend, shot, failure, f"polling request {rid}", "polling it")
                del failure
                failures += 1
                if not error.transient or failures > backend.retries:
                    raise error
                emit(ShotEvent(shot.id, "retrying", error.reason, rid))
                if interrupt.wait(backend.backoff(failures)):
                    raise self._stopped(shot)
                continue
            failures = 0
            if isinstance(status, Queued):
                if status.position != position:
                    position = status.position
                    emit(ShotEvent(shot.id, "queued", f"position {position}", rid, queue_position=position))
            elif isinstance(status, (InProgress, Completed)):
                if not running:
                    running = True
                    emit(ShotEvent(shot.id, "running", "", rid))
                logs = status.logs if status.logs is not None else []
                if not isinstance(logs, list):
                    raise self._odd(shot, f"its status carried logs of another shape ({type(logs).__name__}, not a list)")
                for entry in logs[logs_seen:]:
                    message = entry.get("message", "") if isinstance(entry, dict) else str(entry)
                    emit(ShotEvent(shot.id, "log", backend.scrub(str(message)), rid))
                logs_seen = max(logs_seen, len(logs))
                if isinstance(status, Completed):
                    return status
            else:
                raise self._odd(shot, f"its status was of another shape ({type(status).__name__})")
            if backend.wait_timeout is not None and time.monotonic() - start > backend.wait_timeout:
                state = "queued" if isinstance(status, Queued) else "running"
                raise GenerationError(
                    shot.id,
                    f"fal request {rid} is still {state} after {backend.wait_timeout:g} s; it keeps running "
                    "and the next attempt re-attaches to it (nothing is paid twice)",
                    transient=True,
                )
            if interrupt.wait(backend.poll_interval):
                raise self._stopped(shot)

    def _fetch_result(self, backend: FalBackend, shot: ShotPlan, emit: Emit) -> str:
        """The video URL of a completed request, fetched by id; a failed fetch is retried, never resubmitted."""
        rid = self.record.request_id
        handle = self._handle(backend)
        failures = 0
        while True:
            if interrupt.stop_requested():
                raise self._stopped(shot)
            result, failure = None, None
            try:
                result = handle.get(interval=backend.poll_interval)
            except FAL_ERRORS as exc:
                failure = exc
            if failure is None:
                break
            code = status_code(failure)
            error = self._call_failed(backend, shot, failure, f"fetching the result of request {rid}", "fetching its result")
            del failure
            if code == 422:  # fal refused this body after taking it: billed, remembered
                self.failed(error.reason, permanent=True)
                raise error
            if code != 404 and _job_failed(handle):
                # the job itself failed on fal's side (a 5xx, which fal does not bill) or was
                # cancelled: there is no result to fetch, the next attempt submits anew
                self.failed(error.reason, permanent=False)
                raise GenerationError(shot.id, f"{error.reason}; fal request {rid} failed on fal's side (not billed)", transient=True)
            if not error.transient:
                raise error
            failures += 1
            if failures > backend.retries:
                raise GenerationError(
                    shot.id, f"{error.reason}; request {rid} is kept: the next attempt fetches its result again", transient=True
                )
            emit(ShotEvent(shot.id, "retrying", f"result fetch: {error.reason}", rid))
            if interrupt.wait(backend.backoff(failures)):
                raise self._stopped(shot)
        if not isinstance(result, dict):
            raise self._odd(shot, f"its result is a JSON {_json_kind(result)}, not an object")
        video = result.get("video")
        if not isinstance(video, dict):
            keys = ", ".join(sorted(map(str, result))) or "none"
            raise self._odd(shot, f"its result has no video (result keys: {keys})")
        url = video.get("url")
        if not isinstance(url, str) or urlsplit(url).scheme != "https" or not urlsplit(url).netloc:
            what = f"a {_json_kind(url)}" if not isinstance(url, str) else f"not an https URL ({urlsplit(url).scheme or 'no'} scheme)"
            raise self._odd(shot, f"its video URL is {what}")
        return url

    def _download(self, backend: FalBackend, shot: ShotPlan, emit: Emit) -> GeneratedClip:
        """Download the clip under the clip's lock, re-checking the store first."""
        key, store = self.record.key, backend.store
        with self.journal.submit_lock(key, timeout=self.lock_timeout):
            current = self.journal.read(key)
            if current is not None and current.request_id == self.record.request_id:
                self.record = current
            rid, url = self.record.request_id, self.record.video_url
            found = store.find(key)
            if found is not None and self.record.state == "downloaded":  # another run got it meanwhile
                return GeneratedClip(shot.id, found, key, backend.name, cache_hit=False, request_id=rid)
            if self.record.state not in ("completed", "downloaded") or not url:
                return self._dead_end(shot)
            emit(ShotEvent(shot.id, "downloading", urlsplit(url).netloc, rid))
            try:
                stored = download_clip(
                    url,
                    store,
                    key,
                    allowed_hosts=backend.settings.allowed_media_hosts,
                    max_bytes=backend.settings.max_download_bytes,
                    expected_seconds=shot.seconds,
                    tolerance=backend.duration_tolerance,
                    attempts=backend.download_attempts,
                    backoff=backend.retry_backoff,
                    on_retry=lambda attempt, why: emit(ShotEvent(shot.id, "retrying", f"download {attempt}: {why}", rid)),
                )
            except DownloadError as exc:
                return self._download_failed(backend, shot, exc)
            self.downloaded(stored)
        return GeneratedClip(shot.id, stored.path, key, backend.name, cache_hit=False, request_id=rid)

    def _download_failed(self, backend: FalBackend, shot: ShotPlan, exc: DownloadError) -> GeneratedClip:
        rid = self.record.request_id
        reason = backend.scrub(str(getattr(exc, "reason", None) or exc))
        quarantined = getattr(exc, "quarantined", None)
        if quarantined is not None:
            self.quarantined(quarantined, reason)
            raise GenerationError(
                shot.id,
                f"the clip of fal request {rid} (paid for) failed verification: {reason}. It is kept aside at "
                f"{quarantined}: `shotflow accept {shot.id}` uses it, `--force {shot.id}` buys a new one "
                f"({price(shot.cost)})",
                transient=False,
            )
        retention = backend.settings.media_retention_days * 86400.0
        age = self.media_age()
        if age is not None and age > retention:
            why = (
                f"its media still fails {age / 86400:.1f} days after completion, past fal's media retention "
                f"({backend.settings.media_retention_days:g} days, SHOTFLOW_MEDIA_RETENTION_DAYS): {reason}"
            )
            self.lost(why)
            raise GenerationError(
                shot.id,
                f"fal request {rid} was paid for but is lost: {why}. Only `--force {shot.id}` buys it again ({price(shot.cost)})",
                transient=False,
            )
        self.noted(f"download failed: {reason}")
        raise GenerationError(
            shot.id,
            f"fal request {rid} is done (and paid for) but its clip did not download: {reason}. Its URL is kept "
            "in the job journal: the next attempt or run downloads it again, without paying",
            # a URL refused by a setting (host not allowed, too big) waits for the setting, not a retry
            transient=not getattr(exc, "refused", False),
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
        verdict, status = check_cancel(self._handle(backend), backend.poll_interval)
        if verdict == "cancelled":
            self.failed(f"cancelled on request; fal says: {status.error if status else 'cancelled'}", permanent=False)
        elif verdict == "finished":
            self.completed()
        return verdict

    # --- errors --------------------------------------------------------------------------------

    def _call_failed(self, backend: FalBackend, shot: ShotPlan, exc: BaseException, doing: str, short: str) -> GenerationError:
        """A failed status poll or result fetch as a GenerationError; a 404 is judged by age; an
        answer of an odd shape is an error naming the request (kept re-attachable)."""
        code = status_code(exc)
        if code == 404:
            return self._not_found(shot, short)
        if isinstance(exc, (KeyError, TypeError)) or (isinstance(exc, ValueError) and not isinstance(exc, json.JSONDecodeError)):
            return self._odd(shot, f"fal's answer while {doing} was of another shape ({type(exc).__name__}: {backend.scrub(str(exc))})")
        error = classify(exc, shot.id, shot.endpoint, doing, scrub=backend.scrub)
        if code is not None and code not in RETRY_CODES and code < 500 and error.transient:
            error = GenerationError(shot.id, error.reason, transient=False)
        return error

    def _not_found(self, shot: ShotPlan, doing: str) -> GenerationError:
        """fal's 404 about a journaled request: a glitch while it may still exist, else lost."""
        rid, age = self.record.request_id, self.age("submitted_at")
        if age is not None and age < RESULT_RETENTION:
            return GenerationError(
                shot.id,
                f"fal answered 404 while {doing} (request {rid}, submitted {age:.0f} s ago, well within the "
                f"~{RESULT_RETENTION / 3600:g} h fal keeps requests); it is kept and the next attempt re-attaches to it",
                transient=True,
            )
        submitted = f"submitted {age / 3600:.1f} h ago" if age is not None else "submitted at an unknown time"
        why = f"fal no longer knows request {rid} ({submitted}; fal keeps results about {RESULT_RETENTION / 3600:g} h)"
        self.lost(why)
        return GenerationError(
            shot.id,
            f"{why}: it was paid for and is lost. It is not submitted again automatically; `--force {shot.id}` buys "
            f"a new one ({price(shot.cost)})",
            transient=False,
        )

    def _odd(self, shot: ShotPlan, what: str) -> GenerationError:
        rid = self.record.request_id
        why = f"fal request {rid}: {what}"
        self.noted(why)
        return GenerationError(
            shot.id,
            f"{why}. The request is kept: a re-run re-attaches to it without paying, `--force {shot.id}` "
            f"buys a new one ({price(shot.cost)})",
            transient=False,
        )

    def _stopped(self, shot: ShotPlan) -> Interrupted:
        return Interrupted(
            shot.id,
            f"stopped: fal request {self.record.request_id} is paid and still running on fal; "
            "a re-run collects it without paying again",
        )


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


def _job_failed(handle) -> bool:
    """Whether fal reports the request as completed with an error (the job failed, not the fetch)."""
    try:
        status = handle.status(with_logs=False)
    except FAL_ERRORS:
        return False
    return isinstance(status, Completed) and bool(status.error)


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if value is None:
        return "null"
    return type(value).__name__


def uncertain_of(record: JobRecord, shot: ShotPlan) -> GenerationError:
    """The error of a shot blocked by an uncertain (or unknown-state) record."""
    if not record.known:
        return GenerationError(
            shot.id,
            f"uncertain: its journal record is in state '{record.state}', which this version of shotflow does not "
            f"know (written by a newer one?), request {record.request_id or 'unknown'}; fal may have billed it. "
            f"It is not submitted again automatically; `--force {shot.id}` submits it again and pays again "
            f"({price(shot.cost)})",
            transient=False,
        )
    return uncertain_error(shot.id, sent_at=record.intended_at or record.updated_at, reason=record.error, cost=shot.cost)

