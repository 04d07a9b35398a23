"""Collecting a paid fal request: from its journaled state to a clip in the store.

`Collector.run` waits for the request (status polls), fetches its result (the video URL, kept in
the record), and downloads and verifies the clip under the clip's lock (re-checking the store
after taking it, so two runs never download it twice; with a shared store the clip is in the
store before the record says `downloaded`, and an upload that fails is tried again later). Every step moves the `Job` through its
transitions (shotflow.generation.fal.job); nothing here writes the journal itself.

What each outcome means: a download that fails keeps the request `completed` with its URL and
the error, to be tried again by a retry or a later run without paying, until fal's media
retention (Settings.media_retention_days after completion) has passed: then it is `lost`, and
only `--force` buys it again. A complete copy that fails verification is kept aside
(`quarantined`): `shotflow accept SHOT` uses it, `--force SHOT` buys a new one. A 404 about a
request younger than fal keeps requests is waited out; an older one is `lost`. An answer of an
odd shape is noted on the record, which stays re-attachable.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

from fal_client import Completed, InProgress, Queued

from shotflow import interrupt
from shotflow.errors import DownloadError, GenerationError
from shotflow.generation.fal.download import download_clip
from shotflow.generation.fal.errors import (
    FAL_CLIENT_RETRY_CODES,
    FAL_ERRORS,
    classify,
    forcing,
    quarantined_error,
    retried_by_fal_client,
    status_code,
    stopped_at,
)
from shotflow.generation.fal.job import Job
from shotflow.generation.retry import RetryLater, RetryPolicy
from shotflow.interrupt import Interrupted
from shotflow.model import GeneratedClip, ShotEvent, ShotPlan
from shotflow.store.journal import JobRecord
from shotflow.store.shared import SharedStoreError

if TYPE_CHECKING:
    from shotflow.generation.fal.backend import FalBackend

# fal keeps a request (and its result) about an hour after it completes (shared/notes/fal-queue.md):
# a 404 about one that cannot have expired yet is a glitch to wait out, not a lost job
RESULT_RETENTION = 3600.0
LONGEST_RUN = 1800.0  # a generation runs minutes once fal starts it: a generous bound

Emit = Callable[[ShotEvent], None]


class Collector:
    """Collects one Job's request for one shot, reporting progress through `emit`."""

    def __init__(self, job: Job, backend: FalBackend, shot: ShotPlan, emit: Emit):
        self.job = job
        self.backend = backend
        self.shot = shot
        self.emit = emit
        self.settings = backend.settings
        self.policy = RetryPolicy.in_call(backend.settings)

    @property
    def record(self) -> JobRecord:
        return self.job.record

    def run(self) -> GeneratedClip:
        """From the current state to a clip in the store; raises GenerationError on the way."""
        if self.record.state == "submitted":
            self._wait()
            self.job.completed()
        if self.record.state == "completed" and not self.record.video_url:
            self.job.got_result(self._fetch_result())
        if self.record.state in ("completed", "downloaded") and self.record.video_url:
            return self._download()
        return self._dead_end()

    def _dead_end(self) -> GeneratedClip:
        record = self.record
        raise stopped_at(
            self.shot, f"fal request {record.request_id} is {record.state} ({record.error or 'no clip'}); {forcing(self.shot)}"
        )

    def _wait(self) -> Completed:
        rid = self.record.request_id
        handle = self.job.handle(self.backend)
        start = time.monotonic()
        failures, position, running, logs_seen = 0, None, False, 0
        while True:
            if interrupt.stop_requested():
                raise self._stopped()
            status, failure = None, None
            try:
                status = handle.status(with_logs=True)
            except FAL_ERRORS as exc:
                failure = exc
            if failure is not None:
                error = self._call_failed(failure, f"polling request {rid}", "polling it")
                failures = self._again(failures, error, failure, "", "a re-run re-attaches to it (nothing is paid twice)")
                del failure
                continue
            failures = 0
            if isinstance(status, Queued):
                if status.position != position:
                    position = status.position
                    self.emit(ShotEvent(self.shot.label, "queued", f"position {position}", rid, queue_position=position))
            elif isinstance(status, (InProgress, Completed)):
                if not running:
                    running = True
                    self.emit(ShotEvent(self.shot.label, "running", "", rid))
                logs = status.logs if status.logs is not None else []
                if not isinstance(logs, list):
                    raise self._odd(f"its status carried logs of another shape ({type(logs).__name__}, not a list)")
                for entry in logs[logs_seen:]:
                    message = entry.get("message", "") if isinstance(entry, dict) else str(entry)
                    self.emit(ShotEvent(self.shot.label, "log", self.backend.scrub(str(message)), rid))
                logs_seen = max(logs_seen, len(logs))
                if isinstance(status, Completed):
                    return status
            else:
                raise self._odd(f"its status was of another shape ({type(status).__name__})")
            wait_timeout = self.settings.fal_wait_timeout
            if wait_timeout is not None and time.monotonic() - start > wait_timeout:
                state = "queued" if isinstance(status, Queued) else "running"
                raise RetryLater(
                    self.shot.label,
                    f"fal request {rid} is still {state} after {wait_timeout:g} s (SHOTFLOW_FAL_WAIT_TIMEOUT); it keeps "
                    "running and the next attempt re-attaches to it (nothing is paid twice)",
                )
            if interrupt.wait(self.settings.fal_poll_interval):
                raise self._stopped()

    def _fetch_result(self) -> str:
        """The video URL of a completed request, fetched by id; a failed fetch is retried, never resubmitted."""
        rid = self.record.request_id
        handle = self.job.handle(self.backend)
        failures = 0
        while True:
            if interrupt.stop_requested():
                raise self._stopped()
            result, failure = None, None
            try:
                result = handle.get(interval=self.settings.fal_poll_interval)
            except FAL_ERRORS as exc:
                failure = exc
            if failure is None:
                break
            code = status_code(failure)
            error = self._call_failed(failure, f"fetching the result of request {rid}", "fetching its result")
            if code == 422:  # fal refused this body after taking it: billed, remembered
                self.job.failed(error.reason, permanent=True)
                raise error
            if code != 404 and _job_failed(handle):
                # the job itself failed on fal's side (a 5xx, which fal does not bill) or was
                # cancelled: there is no result to fetch, the next attempt submits anew
                self.job.failed(error.reason, permanent=False)
                raise RetryLater(self.shot.label, f"{error.reason}; fal request {rid} failed on fal's side (not billed)")
            failures = self._again(failures, error, failure, "result fetch: ", "a re-run fetches its result again")
            del failure
        if not isinstance(result, dict):
            raise self._odd(f"its result is a JSON {_json_kind(result)}, not an object")
        video = result.get("video")
        if not isinstance(video, dict):
            keys = ", ".join(sorted(map(str, result))) or "none"
            raise self._odd(f"its result has no video (result keys: {keys})")
        url = video.get("url")
        if not isinstance(url, str) or urlsplit(url).scheme != "https" or not urlsplit(url).netloc:
            what = (
                f"a {_json_kind(url)}"
                if not isinstance(url, str)
                else f"not an https URL ({urlsplit(url).scheme or 'no'} scheme)"
            )
            raise self._odd(f"its video URL is {what}")
        return url

    def _download(self) -> GeneratedClip:
        """Download the clip under the clip's lock, re-checking the store first."""
        key, store = self.record.key, self.backend.store
        with self.job.journal.submit_lock(key):
            current = self.job.journal.read(key)
            if current is not None and current.request_id == self.record.request_id:
                self.job.record = current
            rid, url = self.record.request_id, self.record.video_url
            found = store.find(key)
            if found is not None and self.record.state == "downloaded":  # another run got it meanwhile
                return GeneratedClip(
                    self.shot.id, found, key, self.backend.name, cache_hit=False, request_id=rid, take=self.shot.take
                )
            if self.record.state not in ("completed", "downloaded") or not url:
                return self._dead_end()
            self.emit(ShotEvent(self.shot.label, "downloading", urlsplit(url).netloc, rid))
            try:
                stored = download_clip(
                    url,
                    store,
                    key,
                    allowed_hosts=self.settings.allowed_media_hosts,
                    max_bytes=self.settings.max_download_bytes,
                    expected_seconds=self.shot.seconds,
                    tolerance=self.settings.duration_tolerance,
                    policy=RetryPolicy.downloads(self.settings),
                    timeout=self.settings.download_timeout,
                    on_retry=lambda attempt, why: self.emit(
                        ShotEvent(self.shot.label, "retrying", f"download {attempt}: {why}", rid)
                    ),
                )
            except DownloadError as exc:
                return self._download_failed(exc)
            except SharedStoreError as exc:  # fetched and checked here, but not in the shared store yet
                raise RetryLater(
                    self.shot.label,
                    f"fal request {rid}: its clip is downloaded on this machine but could not be put in the shared "
                    f"store ({exc}); the next attempt puts it there, without paying again",
                ) from None
            self.job.downloaded(stored)
        return GeneratedClip(
            self.shot.id, stored.path, key, self.backend.name, cache_hit=False, request_id=rid, take=self.shot.take
        )

    def _download_failed(self, exc: DownloadError) -> GeneratedClip:
        rid = self.record.request_id
        reason = self.backend.scrub(str(getattr(exc, "reason", None) or exc))
        quarantined = getattr(exc, "quarantined", None)
        if quarantined is not None:
            self.job.quarantined(quarantined, reason)
            raise quarantined_error(self.shot, rid, f": {reason}. It is kept aside at {quarantined}")
        retention = self.settings.media_retention_days * 86400.0
        age = self.job.media_age()
        if age is not None and age > retention:
            why = (
                f"its media still fails {age / 86400:.1f} days after completion, past fal's media retention "
                f"({self.settings.media_retention_days:g} days, SHOTFLOW_MEDIA_RETENTION_DAYS): {reason}"
            )
            self.job.lost(why)
            raise stopped_at(
                self.shot, f"fal request {rid} was paid for but is lost: {why}. Only {forcing(self.shot, 'buys it again')}"
            )
        self.job.noted(f"download failed: {reason}")
        raise GenerationError(
            self.shot.label,
            f"fal request {rid} is done (and paid for) but its clip did not download: {reason}. Its URL is kept "
            "in the job journal: a re-run downloads it again, without paying",
            # a URL refused by a setting (host not allowed, too big) waits for the setting, not a retry
            transient=not getattr(exc, "refused", False),
        )

    # --- errors --------------------------------------------------------------------------------

    def _again(self, failures: int, error: GenerationError, exc: BaseException, doing: str, kept: str) -> int:
        """Count one more failed call of a loop and wait before the next try (the policy's), or
        raise: `error` if it is not transient; that the request is `kept` when the tries are spent,
        or when fal_client already tried the call again itself (one layer retries a failure)."""
        failures += 1
        if not error.transient:
            raise error
        if retried_by_fal_client(exc) or not self.policy.again(failures):
            raise GenerationError(
                self.shot.label, f"{error.reason}; fal request {self.record.request_id} is kept: {kept}", transient=True
            )
        self.emit(ShotEvent(self.shot.label, "retrying", doing + error.reason, self.record.request_id))
        if interrupt.wait(self.policy.wait(failures)):
            raise self._stopped()
        return failures

    def _call_failed(self, exc: BaseException, doing: str, short: str) -> GenerationError:
        """A failed status poll or result fetch as a GenerationError; a 404 is judged by age; an
        answer of an odd shape is an error naming the request (kept re-attachable)."""
        code = status_code(exc)
        if code == 404:
            return self._not_found(short)
        if isinstance(exc, (KeyError, TypeError)) or (isinstance(exc, ValueError) and not isinstance(exc, json.JSONDecodeError)):
            return self._odd(
                f"fal's answer while {doing} was of another shape ({type(exc).__name__}: {self.backend.scrub(str(exc))})"
            )
        error = classify(exc, self.shot.label, self.shot.endpoint, doing, scrub=self.backend.scrub)
        if code is not None and code not in FAL_CLIENT_RETRY_CODES and code < 500 and error.transient:
            error = GenerationError(self.shot.label, error.reason, transient=False)
        return error

    def _known_for(self) -> tuple[str, float]:
        """Since when (a record field) and for how long fal surely still knows this request: its
        result about an hour after completion; a request never seen completed may first wait in
        fal's queue up to the start timeout we sent (without one, up to the media retention) and run."""
        if self.record.completed_at:
            return "completed_at", RESULT_RETENTION
        queued = self.settings.fal_start_timeout or self.settings.media_retention_days * 86400.0
        return "submitted_at", queued + LONGEST_RUN + RESULT_RETENTION

    def _not_found(self, doing: str) -> GenerationError:
        """fal's 404 about a journaled request: a glitch while it may still exist, else lost."""
        rid = self.record.request_id
        since, known_for = self._known_for()
        age = self.job.age(since)
        if age is not None and age < known_for:
            # noted, so that a --force run submits anew instead of waiting on this request
            self.job.noted(f"fal answered 404 while {doing}")
            return GenerationError(
                self.shot.label,
                f"fal answered 404 while {doing} (request {rid}, {since.removesuffix('_at')} {age:.0f} s ago, while "
                f"fal still keeps it); it is kept and the next attempt re-attaches to it",
                transient=True,
            )
        when = since.removesuffix("_at")
        submitted = f"{when} {age / 3600:.1f} h ago" if age is not None else f"{when} at an unknown time"
        why = f"fal no longer knows request {rid} ({submitted}; fal keeps results about {RESULT_RETENTION / 3600:g} h)"
        self.job.lost(why)
        return stopped_at(
            self.shot, f"{why}: it was paid for and is lost. It is not submitted again automatically; {forcing(self.shot)}"
        )

    def _odd(self, what: str) -> GenerationError:
        rid = self.record.request_id
        why = f"fal request {rid}: {what}"
        self.job.noted(why)
        return stopped_at(
            self.shot, f"{why}. The request is kept: a re-run re-attaches to it without paying, {forcing(self.shot)}"
        )

    def _stopped(self) -> Interrupted:
        return Interrupted(
            self.shot.label,
            f"stopped: fal request {self.record.request_id} is paid and still running on fal; "
            "a re-run collects it without paying again",
        )


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
