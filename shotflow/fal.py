"""fal.ai text-to-video through fal's queue, paying at most once for each clip.

fal bills a job once it accepts it, and keeps running it after the process that submitted it
dies. So `FalBackend.generate` never submits a shot whose earlier request may still deliver:

1. the clip store has the clip (and `force` is off): return it, no call to fal;
2. the job journal has a live request for this clip: re-attach to it by request id (status poll,
   or fetch its result again, or download its stored video URL again);
3. otherwise, under the journal's lock for this clip, submit, and write the request id and URLs
   to the journal before anything else; then poll, fetch the result, download right away
   (fal keeps results about an hour), verify, store, and mark the journal `downloaded`.

Errors come out as `GenerationError(transient=...)`: 429, 5xx, timeouts, lost connections and
damaged downloads are transient (a retry re-attaches through the journal, so it never pays
twice); a 422 (fal's detail list, e.g. a content-policy refusal), 401/403 and an unknown endpoint
are permanent, and the message names the shot and fal's reason. A 422 is remembered in the
journal: the same body is not sent (and paid for) again unless `force` is set.

Waiting is bounded twice. `wait_timeout` bounds one call: past it the request is left running
and kept in the journal, and a transient error lets the caller retry, which re-attaches (nothing
is lost, nothing paid twice). `give_up_after` bounds the request itself, counted from its
submission: past it the request is cancelled (PUT cancel), because the next run will submit the
shot again and an abandoned job that still finished would then be paid for twice. A request
that completed before the cancel landed is used, since it is paid for.

The fal key goes to `fal_client.SyncClient(key=...)` only. It is scrubbed from every message
taken from fal, and never written to the journal, an event or an exception.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import fal_client
import httpx
from fal_client import Completed, FalClientError, FalClientHTTPError, InProgress, Queued

from shotflow.backend import GeneratedClip, OnEvent, ShotEvent, ignore_events
from shotflow.clipstore import ClipStore
from shotflow.download import download_clip
from shotflow.errors import DownloadError, GenerationError, MissingKeyError
from shotflow.journal import Journal, JobRecord, JournalError, LockTimeout, now
from shotflow.plan import ShotPlan
from shotflow.settings import Settings, get_settings

NO_KEY = (
    "no fal key: set FAL_KEY (or SHOTFLOW_FAL_KEY_BLOCK to the name of a Prefect Secret block "
    "holding it), or use --backend preview for an offline animatic that costs nothing"
)
# what went wrong while talking to fal, as GenerationError carries it
_FAL_ERRORS = (FalClientError, httpx.HTTPError, ValueError, KeyError, TypeError)


class FalBackend:
    name = "fal"

    def __init__(
        self,
        store: ClipStore,
        *,
        key: str | None = None,
        settings: Settings | None = None,
        journal: Journal | None = None,
        poll_interval: float = 1.0,
        wait_timeout: float | None = 600.0,
        give_up_after: float | None = 3 * 3600.0,
        start_timeout: float | None = 3600.0,
        retries: int = 4,
        retry_backoff: float = 1.0,
        download_attempts: int = 4,
        duration_tolerance: float = 1.0,
        lock_timeout: float = 300.0,
    ):
        """`key` wins over `settings.fal_key`; resolve a Prefect Secret block before calling.

        poll_interval: seconds between status polls. wait_timeout: how long one `generate` call
        waits for a request before raising a transient error (the request keeps running and is
        re-attached). give_up_after: age of a request after which it is cancelled. start_timeout:
        sent to fal as X-Fal-Request-Timeout, so a job that cannot start within it is dropped
        unbilled by fal, and so fal_client never re-sends a submit whose answer timed out.
        retries/retry_backoff: in-call retries of status polls and result fetches.
        """
        self.settings = settings or get_settings()
        if key is None and self.settings.fal_key is not None:
            key = self.settings.fal_key.get_secret_value()
        if not key or not key.strip():
            raise MissingKeyError(NO_KEY)
        if start_timeout is not None and start_timeout <= 1:
            raise ValueError("start_timeout must be more than 1 second (fal's minimum)")
        # the key and, for an id:secret key, each half: scrubbed from whatever fal sends back
        self._secrets = tuple(sorted({key, *(p for p in key.split(":") if len(p) >= 6)}, key=len, reverse=True))
        self._fal = fal_client.SyncClient(key=key)
        self.store = store
        self.journal = journal or Journal(store.root / "jobs")
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout
        self.give_up_after = give_up_after
        self.start_timeout = start_timeout
        self.retries = retries
        self.retry_backoff = retry_backoff
        self.download_attempts = download_attempts
        self.duration_tolerance = duration_tolerance
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"FalBackend(store={str(self.store.root)!r})"

    # --- the Backend interface -----------------------------------------------------------------

    def generate(self, shot: ShotPlan, *, force: bool = False, on_event: OnEvent = ignore_events) -> GeneratedClip:
        """The shot's clip, paid for at most once; see the module's docstring for the steps.

        `force` pays for a new generation even when the store has the clip (or fal refused this
        body before), but still re-attaches to a request in flight that nobody has received yet,
        so a retried forced generation does not pay twice either.
        """
        emit = self._emitter(on_event)
        key = ClipStore.key(self.name, shot)
        if not force:
            cached = self.store.find(key)
            if cached is not None:
                emit(ShotEvent(shot.id, "cached", "from the clip store"))
                return GeneratedClip(shot.id, cached, key, self.name, cache_hit=True, request_id=self._known_request(key))
        record = self.journal.read(key)
        if _resumable(record, force):
            emit(ShotEvent(shot.id, "reattached", _resume_detail(record), record.request_id))
        else:
            record = self._submit(shot, key, force, emit)
        return self._finish(shot, key, record, emit)

    # --- submitting ----------------------------------------------------------------------------

    def _submit(self, shot: ShotPlan, key: str, force: bool, emit) -> JobRecord:
        """Submit under the clip's lock, unless another run did it first; journal it at once."""
        try:
            with self.journal.submit_lock(key, timeout=self.lock_timeout):
                record, submitted = self._submit_locked(shot, key, force, emit)
        except LockTimeout as exc:
            raise GenerationError(shot.id, str(exc), transient=True) from None
        if submitted:
            emit(ShotEvent(shot.id, "submitted", shot.endpoint, record.request_id))
        else:
            emit(ShotEvent(shot.id, "reattached", _resume_detail(record), record.request_id))
        return record

    def _submit_locked(self, shot: ShotPlan, key: str, force: bool, emit) -> tuple[JobRecord, bool]:
        record = self.journal.read(key)  # again: another run may have submitted while we waited
        if _resumable(record, force):
            return record, False
        if record is not None and record.state == "failed" and record.permanent and not force:
            raise GenerationError(
                shot.id,
                f"{record.error} (remembered from fal request {record.request_id or '-'}; "
                "the same request would be refused and paid for again: change the shot, or force it)",
                transient=False,
            )
        if record is not None and record.state == "submitting":
            emit(ShotEvent(shot.id, "retrying", "an earlier submit was cut off before fal answered; submitting again"))
        intent = JobRecord(
            key=key,
            shot=shot.id,
            endpoint=shot.endpoint,
            body_hash=shot.body_hash,
            state="submitting",
            seconds=shot.seconds,
            attempts=(record.attempts if record else 0) + 1,
            previous=_history(record),
            created_at=record.created_at if record else now(),
        )
        self.journal.write(intent)
        handle, failure = None, None
        try:
            handle = self._fal.submit(shot.endpoint, shot.body, start_timeout=self.start_timeout)
        except _FAL_ERRORS as exc:
            failure = exc
        if failure is not None:
            error, code = self._classify(failure, shot, "submitting"), _status_code(failure)
            del failure
            if code is not None:
                # fal answered, so it does not have the job; a 422 is fal refusing this very body
                self.journal.write(replace(intent, state="failed", error=error.reason, permanent=code == 422))
            # else: no answer (a timeout, a cut connection): fal may have the job; the record stays
            # `submitting`, and the next attempt says so when it submits again
            raise error
        submitted = replace(
            intent,
            state="submitted",
            request_id=handle.request_id,
            status_url=handle.status_url,
            response_url=handle.response_url,
            cancel_url=handle.cancel_url,
            submitted_at=now(),
        )
        try:
            return self.journal.write(submitted), True
        except OSError as exc:
            # a job nobody can re-attach to would be paid for and lost: stop it while we still can
            try:
                handle.cancel()
            except _FAL_ERRORS:
                pass
            raise GenerationError(
                shot.id,
                f"could not record fal request {handle.request_id} in the job journal ({exc}); cancelled it",
                transient=True,
            ) from None

    # --- after submission ----------------------------------------------------------------------

    def _finish(self, shot: ShotPlan, key: str, record: JobRecord, emit) -> GeneratedClip:
        rid = record.request_id
        handle = self._fal.get_handle(shot.endpoint, rid)
        if record.state == "submitted":
            self._wait(shot, key, record, handle, emit)
            record = replace(record, state="completed")
            self.journal.update(key, rid, state="completed", completed_at=now())
        if not record.video_url:
            url = self._fetch_result(shot, key, rid, handle, emit)
            record = replace(record, video_url=url)
            self.journal.update(key, rid, video_url=url)
        path = self._download(shot, key, record, emit)
        self.journal.update(key, rid, state="downloaded", downloaded_at=now(), error=None)
        return GeneratedClip(shot.id, path, key, self.name, cache_hit=False, request_id=rid)

    def _wait(self, shot: ShotPlan, key: str, record: JobRecord, handle, emit) -> Completed:
        rid = record.request_id
        deadline = None if self.wait_timeout is None else time.monotonic() + self.wait_timeout
        failures, position, running, logs_seen = 0, None, False, 0
        while True:
            status, failure = None, None
            try:
                status = handle.status(with_logs=True)
            except _FAL_ERRORS as exc:
                failure = exc
            if failure is not None:
                error, code = self._classify(failure, shot, f"polling request {rid}"), _status_code(failure)
                del failure
                if code == 404:
                    raise self._lost(shot, key, rid, "fal does not know this request any more")
                failures += 1
                if not error.transient or failures > self.retries:
                    raise error
                emit(ShotEvent(shot.id, "retrying", error.reason, rid))
                time.sleep(self._backoff(failures))
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
                logs = status.logs or []
                for entry in logs[logs_seen:]:
                    message = entry.get("message", "") if isinstance(entry, dict) else str(entry)
                    emit(ShotEvent(shot.id, "log", message, rid))
                logs_seen = max(logs_seen, len(logs))
                if isinstance(status, Completed):
                    return status
            # only a request seen unfinished is given up on: a finished one is paid for, whatever its age
            age = record.age()
            if self.give_up_after is not None and age is not None and age > self.give_up_after:
                return self._give_up(shot, key, record, handle, emit)
            if deadline is not None and time.monotonic() > deadline:
                state = "queued" if isinstance(status, Queued) else "running"
                raise GenerationError(
                    shot.id,
                    f"fal request {rid} is still {state} after {self.wait_timeout:g} s; it keeps running "
                    "and the next attempt re-attaches to it (nothing is paid twice)",
                    transient=True,
                )
            time.sleep(self.poll_interval)

    def _give_up(self, shot: ShotPlan, key: str, record: JobRecord, handle, emit) -> Completed:
        rid = record.request_id
        cancel_code, cancelled = None, True
        try:
            handle.cancel()
        except _FAL_ERRORS as exc:
            # e.g. 400: fal will not cancel it because it just finished; the status says how it ended
            cancel_code, cancelled = _status_code(exc), False
        try:
            status = handle.status(with_logs=False)
        except _FAL_ERRORS:
            status = None
        if isinstance(status, Completed) and not status.error:
            return status  # it finished before the cancel landed: it is paid for, so use it
        if not cancelled and not isinstance(status, Completed):
            # still live and not cancelled: forgetting it now could mean paying for it and its successor
            raise GenerationError(
                shot.id,
                f"gave up on fal request {rid} but could not cancel it (answer {cancel_code or 'none'}); "
                "it is kept and the next attempt tries again",
                transient=True,
            )
        reason = f"no result {record.age():.1f} s after submission; cancelled it, so it cannot be paid for on top of its successor"
        self.journal.update(key, rid, state="failed", error=reason, permanent=False)
        emit(ShotEvent(shot.id, "retrying", f"gave up on request {rid}: {reason}", rid))
        raise GenerationError(
            shot.id,
            f"gave up on fal request {rid}: {reason} (give_up_after={self.give_up_after:g} s); "
            "the next run submits the shot again",
            transient=False,
        )

    def _fetch_result(self, shot: ShotPlan, key: str, rid: str, handle, emit) -> str:
        """The video URL of a completed request, fetched by id; a failed fetch is retried, never resubmitted."""
        failures = 0
        while True:
            result, failure = None, None
            try:
                result = handle.get(interval=self.poll_interval)
            except _FAL_ERRORS as exc:
                failure = exc
            if failure is None:
                break
            error, code = self._classify(failure, shot, f"fetching the result of request {rid}"), _status_code(failure)
            del failure
            if code == 404:
                raise self._lost(shot, key, rid, "fal no longer has its result (results are kept about an hour)")
            if code == 422:  # fal refused this body: remember it, so it is not paid for again
                self.journal.update(key, rid, state="failed", error=error.reason, permanent=True)
                raise error
            if _job_failed(handle):
                # the job itself failed on fal's side (a 5xx, which fal does not bill) or was
                # cancelled: there is no result to fetch, the next attempt submits anew
                self.journal.update(key, rid, state="failed", error=error.reason, permanent=False)
                raise error
            if not error.transient:
                raise error
            failures += 1
            if failures > self.retries:
                raise GenerationError(
                    shot.id,
                    f"{error.reason}; request {rid} is done and kept: the next attempt fetches its result again",
                    transient=True,
                )
            emit(ShotEvent(shot.id, "retrying", f"result fetch: {error.reason}", rid))
            time.sleep(self._backoff(failures))
        url = _video_url(result)
        if not url:
            reason = f"fal request {rid} completed without a video URL (result keys: {', '.join(sorted(result or {})) or 'none'})"
            self.journal.update(key, rid, state="failed", error=reason, permanent=True)
            raise GenerationError(shot.id, reason, transient=False)
        return url

    def _download(self, shot: ShotPlan, key: str, record: JobRecord, emit):
        rid, url = record.request_id, record.video_url
        emit(ShotEvent(shot.id, "downloading", urlsplit(url).netloc, rid))
        try:
            return download_clip(
                url,
                self.store,
                key,
                allowed_hosts=self.settings.allowed_media_hosts,
                max_bytes=self.settings.max_download_bytes,
                expected_seconds=shot.seconds,
                tolerance=self.duration_tolerance,
                attempts=self.download_attempts,
                backoff=self.retry_backoff,
                on_retry=lambda attempt, why: emit(ShotEvent(shot.id, "retrying", f"download {attempt}: {why}", rid)),
            )
        except DownloadError as exc:
            message, transient = str(exc), exc.transient
        raise GenerationError(
            shot.id,
            f"fal request {rid} is done (and paid for) but its clip did not download: {message}. "
            "Its URL is kept in the job journal: the next attempt downloads it again, without paying",
            transient=transient,
        )

    # --- helpers -------------------------------------------------------------------------------

    def _lost(self, shot: ShotPlan, key: str, rid: str, why: str) -> GenerationError:
        self.journal.update(key, rid, state="failed", error=why, permanent=False)
        return GenerationError(shot.id, f"fal request {rid}: {why}; the next attempt submits the shot again", transient=True)

    def _classify(self, exc: BaseException, shot: ShotPlan, doing: str) -> GenerationError:
        return classify(exc, shot, doing, scrub=self._scrub)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[fal key]")
        return text

    def _emitter(self, on_event: OnEvent):
        def emit(event: ShotEvent) -> None:
            try:
                on_event(replace(event, detail=self._scrub(event.detail)))
            except Exception:  # a broken display must never fail a paid generation
                pass

        return emit

    def _backoff(self, failures: int) -> float:
        return min(self.retry_backoff * 2 ** (failures - 1), 30.0)

    def _known_request(self, key: str) -> str | None:
        try:
            record = self.journal.read(key)
        except JournalError:
            return None
        return record.request_id if record else None

    def close(self) -> None:
        """Close fal_client's HTTP connections, if it opened any."""
        client = self._fal.__dict__.get("_client")  # a cached_property of SyncClient
        if client is not None:
            client.close()


def classify(exc: BaseException, shot: ShotPlan, doing: str, *, scrub=lambda text: text) -> GenerationError:
    """What a failed call to fal means for the shot: transient (retry) or permanent."""
    if isinstance(exc, FalClientHTTPError):
        code = exc.status_code
        reason = scrub(fal_reason(exc.message))
        if code in (401, 403):
            return GenerationError(
                shot.id, f"fal rejected the API key ({code}: {reason}) while {doing}; check FAL_KEY", transient=False
            )
        if code == 404 and doing == "submitting":
            return GenerationError(
                shot.id, f"fal has no endpoint '{shot.endpoint}' (404: {reason}); check the model name", transient=False
            )
        if code == 422:
            return GenerationError(shot.id, f"fal refused the request to {shot.endpoint} (422): {reason}", transient=False)
        transient = code in (408, 409, 429) or code >= 500
        return GenerationError(shot.id, f"fal answered {code} while {doing} ({shot.endpoint}): {reason}", transient=transient)
    if isinstance(exc, httpx.TimeoutException):
        return GenerationError(shot.id, f"timed out while {doing} ({shot.endpoint})", transient=True)
    if isinstance(exc, httpx.HTTPError):
        return GenerationError(shot.id, f"could not reach fal while {doing}: {type(exc).__name__}: {scrub(str(exc))}", transient=True)
    if isinstance(exc, FalClientError):
        return GenerationError(shot.id, f"fal_client failed while {doing}: {scrub(str(exc))}", transient=True)
    return GenerationError(shot.id, f"unexpected answer from fal while {doing}: {type(exc).__name__}: {scrub(str(exc))}", transient=True)


def fal_reason(detail: Any) -> str:
    """fal's `detail`, readable: a 422's list of {loc, msg, type} becomes `field: msg [type]; ...`."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                text = f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", ""))
                if item.get("type"):
                    text += f" [{item['type']}]"
                parts.append(text)
            else:
                parts.append(str(item))
        return "; ".join(parts) or "no reason given"
    if isinstance(detail, dict):
        return fal_reason([detail])
    return str(detail).strip() or "no reason given"


def _status_code(exc: BaseException) -> int | None:
    return exc.status_code if isinstance(exc, FalClientHTTPError) else None


def _job_failed(handle) -> bool:
    """Whether fal reports the request as completed with an error (the job failed, not the fetch)."""
    try:
        status = handle.status(with_logs=False)
    except _FAL_ERRORS:
        return False
    return isinstance(status, Completed) and bool(status.error)


def _video_url(result: Any) -> str | None:
    video = result.get("video") if isinstance(result, dict) else None
    url = video.get("url") if isinstance(video, dict) else None
    return url if isinstance(url, str) and url else None


def _resumable(record: JobRecord | None, force: bool) -> bool:
    """A request to re-attach to: one fal has and that nobody has received yet (or, without
    `force`, one already downloaded whose clip left the store)."""
    if record is None or record.request_id is None:
        return False
    if record.state in ("submitted", "completed"):
        return True
    return record.state == "downloaded" and not force and bool(record.video_url)


def _resume_detail(record: JobRecord) -> str:
    if record.state == "submitted":
        return "re-attaching to the request an earlier run submitted"
    if record.video_url:
        return "downloading the finished request's clip again"
    return "fetching the finished request's result"


def _history(record: JobRecord | None) -> tuple[dict[str, Any], ...]:
    if record is None:
        return ()
    if record.request_id is None:
        return record.previous
    entry = {"request_id": record.request_id, "state": record.state, "error": record.error, "at": record.updated_at}
    return (*record.previous, entry)

