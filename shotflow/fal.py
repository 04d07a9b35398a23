"""fal.ai text-to-video through fal's queue, paying at most once for each clip.

fal bills a job once it accepts it, and keeps running it after the process that submitted it
dies. So `FalBackend.generate` never submits a shot whose earlier request may still deliver:

1. the clip store has the clip (and `force` is off): return it, no call to fal;
2. the job journal has a live request for this clip: re-attach to it (status poll, or fetch its
   result again, or download its stored video URL again) at the status/result/cancel URLs fal
   gave when it accepted it (by id when they are missing or not on fal's queue host);
3. otherwise, under the journal's lock for this clip, submit, and write the request id and URLs
   to the journal before anything else; then poll, fetch the result, download right away
   (fal keeps results about an hour), verify, store, and mark the journal `downloaded`.

The submit POST is sent once. fal_client's `submit` re-sends it after any transport error, also
after fal accepted the job and only its answer was lost, which pays for a job nobody hears of;
so it is sent through fal_client's own httpx client (its auth and URLs) without that loop. Only
answers that say fal did not take the job (408, 429, a connection never made) are asked again.
A lost or unreadable answer leaves the record `submitting` (fal may have the job and bill it,
and has no idempotency key) and is a permanent error for the run, so no automatic retry pays
again; a re-run submits again, saying so. Status polls, result fetches and cancels keep
fal_client's own retries.

Errors come out as `GenerationError(transient=...)`: 429, 5xx, timeouts, lost connections and
damaged downloads are transient (a retry re-attaches through the journal, so it never pays
twice); a 422 (fal's detail list, e.g. a content-policy refusal), 401/403 and an unknown endpoint
are permanent, and the message names the shot and fal's reason. A 422 is remembered in the
journal: the same body is not sent (and paid for) again unless `force` is set.

A 404 about a journaled request submitted less than RESULT_RETENTION (an hour) ago is a glitch:
the request is kept and the error transient. An older one is lost: marked failed, with a
permanent error so that no automatic retry pays for it again; the next run submits anew. A clip
whose media cannot be fetched any more (gone, a host not allowed, over the size cap) is paid for
but a dead end: the request is marked failed and the next run (or a forced one) pays for a new
one, as the message says.

Waiting is bounded twice. `wait_timeout` bounds one call: past it the request is left running
and kept in the journal, and a transient error lets the caller retry, which re-attaches (nothing
is lost, nothing paid twice). `give_up_after` bounds the request itself, counted from its
submission: past it the request is cancelled (PUT cancel), because the next run will submit the
shot again and an abandoned job that still finished would then be paid for twice. fal's answer
to a cancel only means it was asked for, so the status is checked a few times: a request that
completed anyway is used (it is paid for), a cancelled one is marked failed, and one still
running is kept (transient error; the next attempt re-attaches).

The fal key goes to `fal_client.SyncClient(key=...)` only. It is scrubbed from every message
taken from fal, and never written to the journal, an event or an exception. `close()` (or
`with FalBackend(...) as backend:`) closes fal_client's connections.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import fal_client
import httpx
from fal_client import Completed, FalClientError, FalClientHTTPError, InProgress, Queued, SyncRequestHandle
from fal_client.client import QUEUE_URL_FORMAT

from shotflow.backend import GeneratedClip, OnEvent, ShotEvent, ignore_events
from shotflow.backends import NO_KEY
from shotflow.clipstore import ClipStore
from shotflow.generation.fal.download import download_clip
from shotflow.errors import DownloadError, GenerationError, MissingKeyError
from shotflow.journal import Journal, JobRecord, JournalError, LockTimeout, now
from shotflow.plan import ShotPlan
from shotflow.settings import Settings, get_settings

# what went wrong while talking to fal, as GenerationError carries it
_FAL_ERRORS = (FalClientError, httpx.HTTPError, ValueError, KeyError, TypeError)
# fal keeps a request (and its result) about an hour after it completes: one submitted less than
# this long ago cannot have expired, so a 404 about it is a glitch to wait out, not a lost job
RESULT_RETENTION = 3600.0
# status polls after a cancel was accepted, waiting for fal to say how the request ended
CANCEL_CHECKS = 5
# submit answers that say fal did not take the job and to come back later: asked again in the call
_SUBMIT_RETRY_CODES = (408, 429)
# transport errors raised before the submit left this machine: fal cannot have the job
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
_TIMEOUT_HEADER = "X-Fal-Request-Timeout"  # fal_client._headers.REQUEST_TIMEOUT_HEADER


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
        unbilled by fal. retries/retry_backoff: in-call retries of status polls, result fetches
        and submits that fal answered with 408/429 (a submit whose answer was lost is never
        sent again in the call). lock_timeout: how long to wait for another run holding this
        clip's journal lock.
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
            emit(ShotEvent(shot.id, "retrying", "an earlier submit was cut off before fal answered (fal may bill that one too); submitting again"))
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
        handle, failure, lost = None, None, None
        try:
            handle = self._post_submit(shot, emit)
        except _LostAnswer as exc:
            lost = str(exc)
        except _FAL_ERRORS as exc:
            failure = exc
        if failure is not None:
            # fal answered (or never got the POST), so it does not have the job; a 422 is fal
            # refusing this very body
            error, code = self._classify(failure, shot, "submitting"), _status_code(failure)
            del failure
            self.journal.write(replace(intent, state="failed", error=error.reason, permanent=code == 422))
            raise error
        if lost is not None:
            reason = (
                f"the submit to {shot.endpoint} was cut off before fal's answer arrived ({self._scrub(lost)}): "
                "fal may have accepted the job, and if so it runs and is billed"
            )
            # the record stays `submitting`: nobody knows the request id, so nobody can re-attach
            self.journal.write(replace(intent, error=reason))
            raise GenerationError(
                shot.id,
                f"{reason}. It is not submitted again in this run (fal has no idempotency key, so a second "
                "submit could be a second bill); a re-run submits the shot again, and fal may bill the "
                "lost one too (check fal's dashboard for a request you did not get)",
                transient=False,
            )
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

    def _post_submit(self, shot: ShotPlan, emit) -> SyncRequestHandle:
        """POST the submit, each time exactly once, and build fal_client's handle from the answer.

        Not `SyncClient.submit`: its retry loop sends the POST again after any transport error,
        including a connection lost after fal accepted the job, which pays for a second job whose
        first one nobody ever hears of. This sends it through the same httpx client (fal's auth,
        backup-domain transport) to the same URL fal_client would use. An answer that says fal did
        not take the job (408, 429) is asked again a few times; a lost or unreadable answer raises
        _LostAnswer, since fal may have the job.
        """
        client = self._fal._client  # fal_client's authenticated httpx client (a cached_property)
        url = QUEUE_URL_FORMAT + shot.endpoint
        headers = {} if self.start_timeout is None else {_TIMEOUT_HEADER: str(float(self.start_timeout))}
        failures = 0
        while True:
            try:
                response = client.post(url, json=shot.body, headers=headers, timeout=self._fal.default_timeout)
            except _NOT_SENT:
                raise  # the request never left: fal has no job, the caller may submit again
            except httpx.TransportError as exc:
                raise _LostAnswer(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from None
            if response.status_code in _SUBMIT_RETRY_CODES and failures < self.retries:
                failures += 1
                emit(ShotEvent(shot.id, "retrying", f"fal answered {response.status_code} to the submit; asking again"))
                time.sleep(self._backoff(failures))
                continue
            break
        _raise_for_status(response)
        try:
            data = response.json()
            return SyncRequestHandle(
                request_id=data["request_id"],
                response_url=data["response_url"],
                status_url=data["status_url"],
                cancel_url=data["cancel_url"],
                client=client,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise _LostAnswer(
                f"fal answered {response.status_code} without a usable request id ({type(exc).__name__}: {exc})"
            ) from None

    # --- after submission ----------------------------------------------------------------------

    def _finish(self, shot: ShotPlan, key: str, record: JobRecord, emit) -> GeneratedClip:
        rid = record.request_id
        handle = self._handle(shot, record)
        if record.state == "submitted":
            self._wait(shot, key, record, handle, emit)
            record = replace(record, state="completed")
            self._update(shot, key, rid, state="completed", completed_at=now())
        if not record.video_url:
            url = self._fetch_result(shot, key, record, handle, emit)
            record = replace(record, video_url=url)
            self._update(shot, key, rid, video_url=url)
        path = self._download(shot, key, record, emit).path
        self._update(shot, key, rid, state="downloaded", downloaded_at=now(), error=None)
        return GeneratedClip(shot.id, path, key, self.name, cache_hit=False, request_id=rid)

    def _handle(self, shot: ShotPlan, record: JobRecord) -> SyncRequestHandle:
        """fal_client's handle of a journaled request, at the URLs fal gave when it accepted it.

        Those URLs keep a namespace or subpath that the by-id form drops; they are only used when
        they point at fal's queue host over https (the key travels with every request), otherwise
        the request is reached by id.
        """
        urls = (record.status_url, record.response_url, record.cancel_url)
        queue = urlsplit(QUEUE_URL_FORMAT).netloc
        if all(urls) and all(urlsplit(u).scheme == "https" and urlsplit(u).netloc == queue for u in urls):
            return SyncRequestHandle(
                request_id=record.request_id,
                status_url=record.status_url,
                response_url=record.response_url,
                cancel_url=record.cancel_url,
                client=self._fal._client,
            )
        return self._fal.get_handle(shot.endpoint, record.request_id)

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
                    error = self._not_found(shot, key, record, "polling it")
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
        """Cancel a request older than give_up_after, and forget it only once fal says it ended.

        fal's 202 to a cancel only means cancellation was requested: a job already running may
        still finish (and bill). So the status is asked a few times: a result is used, a
        cancelled (or failed) job is marked failed, and one still running is kept.
        """
        rid = record.request_id
        cancel_code, cancelled = None, True
        try:
            handle.cancel()
        except _FAL_ERRORS as exc:
            # e.g. 400: fal will not cancel it because it just finished; the status says how it ended
            cancel_code, cancelled = _status_code(exc), False
        status = None
        for check in range(CANCEL_CHECKS if cancelled else 1):
            if check:
                time.sleep(self.poll_interval)
            try:
                status = handle.status(with_logs=False)
            except _FAL_ERRORS:
                status = None
                continue
            if isinstance(status, Completed):
                break
        if isinstance(status, Completed) and not status.error:
            return status  # it finished before the cancel landed: it is paid for, so use it
        if not isinstance(status, Completed):
            # still live (or unknown): forgetting it now could mean paying for it and its successor
            if cancelled:
                why = "fal accepted the cancel but still reports it " + (
                    "queued" if isinstance(status, Queued) else "running" if status is not None else "(status unknown)"
                )
            else:
                why = f"could not cancel it (answer {cancel_code or 'none'})"
            raise GenerationError(
                shot.id,
                f"gave up on fal request {rid} but {why}; it may still finish and be billed, so it is kept "
                "and the next attempt re-attaches to it (and uses it if it finished)",
                transient=True,
            )
        reason = f"no result {record.age():.1f} s after submission; cancelled it, so it cannot be paid for on top of its successor"
        self._update(shot, key, rid, state="failed", error=reason, permanent=False)
        emit(ShotEvent(shot.id, "retrying", f"gave up on request {rid}: {reason}", rid))
        raise GenerationError(
            shot.id,
            f"gave up on fal request {rid}: {reason} (give_up_after={self.give_up_after:g} s); "
            "the next run submits the shot again",
            transient=False,
        )

    def _fetch_result(self, shot: ShotPlan, key: str, record: JobRecord, handle, emit) -> str:
        """The video URL of a completed request, fetched by id; a failed fetch is retried, never resubmitted."""
        rid = record.request_id
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
                error = self._not_found(shot, key, record, "fetching its result")
            elif code == 422:  # fal refused this body: remember it, so it is not paid for again
                self._update(shot, key, rid, state="failed", error=error.reason, permanent=True)
                raise error
            elif _job_failed(handle):
                # the job itself failed on fal's side (a 5xx, which fal does not bill) or was
                # cancelled: there is no result to fetch, the next attempt submits anew
                self._update(shot, key, rid, state="failed", error=error.reason, permanent=False)
                raise error
            if not error.transient:
                raise error
            failures += 1
            if failures > self.retries:
                raise GenerationError(
                    shot.id,
                    f"{error.reason}; request {rid} is kept: the next attempt fetches its result again",
                    transient=True,
                )
            emit(ShotEvent(shot.id, "retrying", f"result fetch: {error.reason}", rid))
            time.sleep(self._backoff(failures))
        url = _video_url(result)
        if not url:
            reason = f"fal request {rid} completed without a video URL (result keys: {', '.join(sorted(result or {})) or 'none'})"
            self._update(shot, key, rid, state="failed", error=reason, permanent=True)
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
        if not transient:
            # gone, refused or too big: fetching it again cannot help, and re-attaching to this
            # request would hit the same wall on every run. Forget it (not as fal refusing the
            # body: a new request of the same body is fine), so the next run pays for a new one.
            reason = f"paid for, but its media is gone: {message}"
            self._update(shot, key, rid, state="failed", error=reason, permanent=False, media_gone=True)
            raise GenerationError(
                shot.id,
                f"fal request {rid} is done and paid for, but its media is gone: {message}. It is forgotten: "
                f"the next run (or `--force {shot.id}`) submits the shot again and pays for a new clip",
                transient=False,
            )
        raise GenerationError(
            shot.id,
            f"fal request {rid} is done (and paid for) but its clip did not download: {message}. "
            "Its URL is kept in the job journal: the next attempt downloads it again, without paying",
            transient=True,
        )

    # --- helpers -------------------------------------------------------------------------------

    def _not_found(self, shot: ShotPlan, key: str, record: JobRecord, doing: str) -> GenerationError:
        """What fal's 404 about a journaled request means: a glitch while it may still exist, else lost.

        A request submitted less than RESULT_RETENTION ago cannot have expired, so it is kept
        and the error is transient (the next attempt re-attaches). An older one is marked failed;
        the error is permanent so an automatic retry does not pay again, and the next run
        submits the shot anew.
        """
        rid, age = record.request_id, record.age()
        if age is not None and age < RESULT_RETENTION:
            return GenerationError(
                shot.id,
                f"fal answered 404 while {doing} (request {rid}, submitted {age:.0f} s ago, well within the "
                f"~{RESULT_RETENTION / 3600:g} h fal keeps requests); it is kept and the next attempt re-attaches to it",
                transient=True,
            )
        submitted = f"submitted {age / 3600:.1f} h ago" if age is not None else "submitted at an unknown time"
        why = f"fal no longer knows request {rid} ({submitted}; fal keeps results about {RESULT_RETENTION / 3600:g} h)"
        self._update(shot, key, rid, state="failed", error=why, permanent=False)
        return GenerationError(
            shot.id,
            f"{why}: marked lost. It is not submitted again by this run's retries, so it cannot be paid for "
            "twice here; the next run submits the shot again",
            transient=False,
        )

    def _update(self, shot: ShotPlan, key: str, rid: str | None, **changes: Any) -> None:
        """Journal.update, with the clip's lock held by another run for too long made transient."""
        try:
            self.journal.update(key, rid, lock_timeout=self.lock_timeout, **changes)
        except LockTimeout as exc:
            raise GenerationError(
                shot.id, f"{exc}; request {rid} is kept and the next attempt re-attaches to it", transient=True
            ) from None

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
        """Close fal_client's HTTP connections, if it opened any. Safe to call twice; a later
        `generate` opens new ones."""
        client = self._fal.__dict__.pop("_client", None)  # a cached_property of SyncClient
        if client is not None:
            client.close()

    def __enter__(self) -> FalBackend:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


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


class _LostAnswer(Exception):
    """A submit whose answer never arrived (or could not be read): fal may have the job."""


def _raise_for_status(response: httpx.Response) -> None:
    """FalClientHTTPError for a non-2xx answer, as fal_client raises it (detail, error type)."""
    if response.is_success:
        return
    message: Any = response.text
    error_type = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = body.get("detail", response.text)
        error_type = body.get("error_type")
    raise FalClientHTTPError(
        message,
        response.status_code,
        dict(response.headers),
        response=response,
        error_type=error_type or response.headers.get("x-fal-error-type"),
    )


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
    if record.request_id is None and record.state != "submitting":
        return record.previous  # fal refused the submit: nothing was paid for
    # a `submitting` record is a submit whose answer was lost: fal may have billed it, unnamed
    entry = {"request_id": record.request_id, "state": record.state, "error": record.error, "at": record.updated_at}
    if record.video_url:
        entry["video_url"] = record.video_url
    return (*record.previous, entry)

