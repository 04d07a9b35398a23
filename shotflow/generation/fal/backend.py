"""`FalBackend`: decides, for one shot, "store hit, re-attach or submit", and hands it to its Job.

fal bills a job once it accepts it, and keeps running it after the process that submitted it
dies. So `generate` never submits a shot whose earlier request may still deliver, or may have
been billed without anyone knowing its id:

1. the clip store has the clip (not forced) and no forced request waits to be collected: return
   it, no call to fal (a forced request whose run stopped, or whose download failed, is collected
   first: the stored clip is the one it replaces, kept under superseded/);
2. the journal has a live request (`submitted`, `completed`, or `downloaded` with its clip gone
   from the store): re-attach to it (the Job collects it: wait, result, download);
3. the journal says the last submit is `uncertain` (or `intended` by a process that is gone, or a
   state this version does not know): stop the shot, naming when it was sent, that fal may have
   billed it, and `--force SHOT` with the price it re-pays. Never submitted again automatically;
4. `refused`/`failed` for good (a 4xx on the submit, a 422 from the result), `lost`,
   `quarantined`: stop the shot and say what `--force` (or `shotflow accept`) does;
5. otherwise, under the clip's journal lock (and the daily-budget lock), check the stop flag and
   the budget, write the intent, send the submit once (`submit.send_submit`) and journal its
   outcome through the Job. With a shared store the lock is the clip's lease: right before the
   POST the backend checks it still holds it (`Journal.ensure_held`); a lease lost meanwhile
   sends nothing (the intent becomes `refused`, not billed) and the shot is tried again later.

A shot that continues another (continuity) arrives resolved: its body holds frame references
and its key their hashes; one that is not is refused before anything is paid. The body sent is
`continuity.request_body(shot)` (the references replaced by data URIs), made before the intent;
the journal keeps the body hash and the frames' hashes and paths (`frames`), never the data.

`force` is a TOKEN (the flow run's key): a forced generate submits at most once per token. The
intent records the token; a retry with the same token that finds a record carrying it behaves
as not forced (re-attach, store hit, or the uncertain error), so `--force X` covers exactly one
new submit even when a Prefect task retry follows.

The fal key goes to `fal_client.SyncClient(key=...)` only, and is scrubbed (every part of it,
`shotflow.generation.fal.key.secret_parts`) from every message taken from fal.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from typing import Any

import fal_client

from shotflow import interrupt
from shotflow.errors import GenerationError, MissingKeyError, ShotflowError
from shotflow.generation.choose import NO_KEY
from shotflow.generation.continuity import request_body
from shotflow.generation.fal.collect import Collector
from shotflow.generation.fal.errors import Scrubber, blocked_error, forcing, http_error, price, stopped_at, uncertain_of
from shotflow.generation.fal.job import Job, check_cancel
from shotflow.generation.fal.submit import Accepted, Refused, close_client, request_handle, send_submit
from shotflow.generation.retry import RetryLater, RetryPolicy
from shotflow.interrupt import Interrupted
from shotflow.model import GeneratedClip, OnEvent, RequestSlot, ShotEvent, ShotPlan, ignore_events
from shotflow.settings import Settings, get_settings
from shotflow.store.clips import ClipStore
from shotflow.store.journal import LIVE, JobRecord, Journal, LockTimeout
from shotflow.store.lease import LeaseLost


class FalBackend:
    name = "fal"

    def __init__(
        self,
        store: ClipStore,
        *,
        key: str | None = None,
        settings: Settings | None = None,
        journal: Journal | None = None,
        storyboard: str | None = None,
        run_token: str | None = None,
        request_slot: RequestSlot | None = None,
    ):
        """`key` wins over `settings.fal_key`; resolve a Prefect Secret block before calling.

        storyboard: the file (or inline name) of the run, recorded with each request it sends.
        run_token: the run's token, recorded on each intent: a clip this run already generated (its
        early start, an earlier attempt of a task) is reported as generated, not as a store hit.
        How it waits and tries again (poll interval, wait and start timeouts, retries, download
        attempts, duration tolerance, lock timeout) comes from `settings` (shotflow.settings;
        shotflow.generation.retry says which layer retries what).
        request_slot(shot label, emit): held while the shot's request is on fal (from before the
        submit, or the re-attach, until its clip is stored); a store hit takes none. The shell
        gives one that holds a slot of the Prefect server's global `fal-requests` limit.
        """
        self.settings = settings or get_settings()
        if key is None and self.settings.fal_key is not None:
            key = self.settings.fal_key.get_secret_value()
        if not key or not key.strip():
            raise MissingKeyError(NO_KEY)
        key = key.strip()  # a pasted key's trailing newline would be refused by httpx (and shown)
        self.scrub = Scrubber(key)
        self.fal = fal_client.SyncClient(key=key)
        self.store = store
        self.journal = journal or _journal_of(store, self.settings)
        self.storyboard = storyboard
        self.run_token = run_token
        self.request_slot = request_slot

    def __repr__(self) -> str:
        return f"FalBackend(store={str(self.store.root)!r})"

    # --- the Backend interface -----------------------------------------------------------------

    def generate(self, shot: ShotPlan, *, force: str | None = None, on_event: OnEvent = ignore_events) -> GeneratedClip:
        """The shot's clip, paid for at most once (see the module's docstring).

        `force`: the run's token; pays for one new generation per token even when the store has
        the clip, or the last request was refused, uncertain, lost or quarantined."""
        if isinstance(force, bool):  # a bool cannot tell a retry of the forced attempt from a new one
            raise TypeError("FalBackend.generate: force is the run's token (a string) or None, not a bool")
        if not shot.resolved:  # its key needs its frames: refused before anything is paid
            raise GenerationError(
                shot.label, "its first frame does not exist yet (resolve the shot first); nothing was sent", transient=False
            )
        emit = self._emitter(on_event)
        key = ClipStore.key(self.name, shot)
        record = self.journal.read(key)
        hit = self._hit(shot, key, record, force, emit)
        if hit is not None:
            return hit
        # a request in flight holds one of the caller's slots (a server's global limit); a store hit takes none
        with self.request_slot(shot.label, emit) if self.request_slot else nullcontext():
            if self.request_slot is not None:  # another run may have stored it while this one waited for a slot
                record = self.journal.read(key)
                hit = self._hit(shot, key, record, force, emit)
                if hit is not None:
                    return hit
            if _decide(record, _forced(force, record)) == "attach":
                emit(ShotEvent(shot.label, "reattached", _resume_detail(record), record.request_id))
                job = Job(self.journal, record)
            else:
                job = self._submit(shot, key, force, emit)
            try:
                return replace(Collector(job, self, shot, emit).run(), frames=shot.frames)
            except LockTimeout as exc:  # another run holds this clip's record (downloading it, say)
                raise RetryLater(
                    shot.label, f"{exc}; request {job.record.request_id} is kept and the next attempt re-attaches to it"
                ) from None

    def _hit(self, shot: ShotPlan, key: str, record: JobRecord | None, force: str | None, emit) -> GeneratedClip | None:
        """The clip from the store (step 1 of the module's docstring), or None: not stored, forced,
        a retry of a forced attempt, or a forced request to collect first."""
        # a retry of a forced attempt wants that attempt's clip, not the one it replaces
        retry_of_forced = bool(force) and record is not None and record.force_token == force and record.state != "downloaded"
        pending = record is not None and record.replaces_stored  # collected before the clip it replaces
        if _forced(force, record) or retry_of_forced or pending:
            return None
        cached = self.store.find(key)
        if cached is None:
            return None
        rid = record.request_id if record else None
        if record is not None and record.live:  # stopped between storing its clip and journaling it
            self._adopt(record, key)
        if self._generated_in_this_run(record):  # paid for by this run (its early start): not reused
            return GeneratedClip(
                shot.id, cached, key, self.name, cache_hit=False, request_id=rid, frames=shot.frames, take=shot.take
            )
        emit(ShotEvent(shot.label, "cached", "from the clip store"))
        accepted = record.quarantine_reason if record and record.state == "downloaded" else None
        return GeneratedClip(
            shot.id,
            cached,
            key,
            self.name,
            cache_hit=True,
            request_id=rid,
            accepted_despite=accepted,
            frames=shot.frames,
            take=shot.take,
        )

    def _adopt(self, record: JobRecord, key: str) -> None:
        """An unforced live request whose clip is in the store: its run stopped between storing
        the clip and journaling it, so the clip is its own, journaled `downloaded` now (a write
        that fails is left for a later hit: the clip is used either way)."""
        clip = self.store.stored(key)
        if clip is None:
            return
        try:
            Job(self.journal, record).downloaded(clip)
        except Exception:
            pass

    # --- submitting ----------------------------------------------------------------------------

    def _submit(self, shot: ShotPlan, key: str, force: str | None, emit) -> Job:
        """Decide again under the clip's lock (another run may have submitted while we waited),
        then submit, or stop the shot with what the journal says."""
        try:
            with self.journal.submit_lock(key):
                record = self.journal.read(key)
                forced = _forced(force, record)
                if _decide(record, forced) == "attach":
                    emit(ShotEvent(shot.label, "reattached", _resume_detail(record), record.request_id))
                    return Job(self.journal, record)
                if record is not None and record.state == "intended":
                    # we hold the lock, so the process that wrote it is gone: fal may have its submit
                    record = self._gone_writer(record)
                if record is not None and not forced and _blocks(record):
                    raise blocked_error(shot, record)
                if forced and record is not None:
                    emit(ShotEvent(shot.label, "retrying", f"forced: submitting again, paying again ({price(shot.cost)})"))
                # the token stays on every submit of the forced attempt and its retries (a retry after a
                # refusal that billed nothing submits again, still as that forced attempt)
                carried = force is not None and record is not None and record.force_token == force
                return self._submit_locked(shot, key, record, force if forced or carried else None, emit)
        except LockTimeout as exc:
            raise RetryLater(shot.label, str(exc)) from None
        except LeaseLost as exc:  # lost before the intent was written (a shared store): nothing was sent
            raise RetryLater(shot.label, f"{exc}: nothing was sent; the next attempt reads the journal again") from None

    def _gone_writer(self, record: JobRecord) -> JobRecord:
        """An `intended` record read under the clip's lock: its writer died between sending and
        journaling fal's answer (or before sending: nobody can tell), so it is uncertain."""
        job = Job(self.journal, record)
        job.uncertain("the process that sent it ended before fal's answer was journaled (killed, or crashed)")
        return job.record

    def _submit_locked(self, shot: ShotPlan, key: str, prior: JobRecord | None, token: str | None, emit) -> Job:
        if interrupt.stop_requested():
            raise Interrupted(shot.label)
        # the frames' data URIs, read (and checked against their hashes) before the intent: a
        # missing frame stops the shot with nothing journaled and nothing paid
        body = request_body(shot)
        with self._budget():
            self._check_budget(shot)
            job = Job.intend(
                self.journal, shot, key, prior=prior, storyboard=self.storyboard, force_token=token, run_token=self.run_token
            )

        def before_send() -> None:
            if interrupt.stop_requested():
                job.refused("stopped before submitting (Ctrl-C): nothing was sent", permanent=False)
                raise Interrupted(shot.label)
            try:  # a shared store's lease can expire (its renewals could not reach the store)
                self.journal.ensure_held(key)
            except LeaseLost as exc:
                why = f"lease lost before sending: nothing was sent ({exc})"
                try:
                    job.refused(why, permanent=False)
                except ShotflowError:
                    pass  # another worker took the clip over and changed its record: it decides now
                raise RetryLater(shot.label, f"{why}; the next attempt reads the journal again") from None

        outcome = send_submit(
            self.fal,
            shot.endpoint,
            body,
            start_timeout=self.settings.fal_start_timeout,
            policy=RetryPolicy.in_call(self.settings),
            before_send=before_send,
            on_retry=lambda why: emit(ShotEvent(shot.label, "retrying", why)),
            scrub=self.scrub,
        )
        if isinstance(outcome, Accepted):
            try:
                recorded = job.accepted(outcome)
            except Exception as exc:  # a full disk, a shared store out of reach, a lease lost: fal has it, the journal not
                raise self._unjournaled(shot, job, outcome, exc) from None
            if not recorded:  # another worker moved the record on meanwhile (took over a lease this one lost)
                moved = ShotflowError(f"another worker changed the record to '{job.record.state}' before the answer was written")
                raise self._unjournaled(shot, job, outcome, moved) from None
            emit(ShotEvent(shot.label, "submitted", shot.endpoint, outcome.request_id))
            return job
        if isinstance(outcome, Refused):
            if outcome.status is not None and outcome.permanent:
                error = http_error(outcome.status, outcome.detail, shot.label, shot.endpoint, "submitting", scrub=self.scrub)
                error = GenerationError(shot.label, error.reason, transient=False)
            else:
                error = GenerationError(
                    shot.label, f"fal did not take the submit: {outcome.reason}", transient=not outcome.permanent
                )
            job.refused(error.reason, permanent=outcome.permanent)
            raise error
        job.uncertain(f"the submit to {shot.endpoint} may have reached fal: {outcome.reason}")
        raise uncertain_of(job.record, shot)

    def _unjournaled(self, shot: ShotPlan, job: Job, answer: Accepted, exc: BaseException) -> GenerationError:
        """fal took the job but its id could not be journaled: cancel it at a queue-host URL,
        check fal's answer, and fail the shot as uncertain with the id in the message (unless fal
        finished the job and the journal takes its id now: then a run collects it)."""
        rid = answer.request_id
        handle = request_handle(
            self.fal,
            shot.endpoint,
            rid,
            status_url=answer.status_url,
            response_url=answer.response_url,
            cancel_url=answer.cancel_url,
        )
        verdict, _ = check_cancel(handle, self.settings.fal_poll_interval)
        said = {
            "cancelled": "cancelled it (fal confirms)",
            "finished": "it finished before the cancel landed (paid for)",
            "running": "asked fal to cancel it, but fal still reports it running (it may be billed)",
        }[verdict]
        why = f"fal request {rid} could not be recorded in the job journal ({self.scrub(str(exc))}); {said}"
        if verdict == "finished" and self._journal_late(job, answer):
            return GenerationError(
                shot.label, f"{why}. Its id is journaled now: the next attempt collects it, without paying", transient=True
            )
        try:
            job.uncertain(why)
        except Exception:
            pass  # the disk is still full (the store out of reach): the `intended` record reads as uncertain
        return stopped_at(
            shot,
            f"uncertain: {why}. Sent at {job.record.intended_at}; fal may have billed it. It is not submitted again "
            f"automatically; once the journal can be written (space on the disk, the shared store in reach), "
            f"{forcing(shot, 'submits it again and pays again')}",
        )

    @staticmethod
    def _journal_late(job: Job, answer: Accepted) -> bool:
        """Journal a request fal finished (paid) once the journal takes writes again (space freed
        meanwhile), so a run collects it instead of calling it uncertain; False if it cannot."""
        try:
            if not job.accepted(answer):
                return False
        except Exception:
            return False
        try:
            job.completed()
        except Exception:
            pass  # journaled as submitted: the next attempt re-attaches and fal says it completed
        return True

    def _budget(self):
        """The daily-budget lock (a check and the intent it allows are one step), if a budget is set."""
        if self.settings.daily_budget is None:
            return nullcontext()
        from shotflow.store.ledger import budget_lock

        return budget_lock(self.journal)

    def _check_budget(self, shot: ShotPlan) -> None:
        budget = self.settings.daily_budget
        if budget is None:
            return
        from shotflow.store.ledger import check_daily_budget

        check_daily_budget(self.journal, budget, shot.cost, shot=f"shot '{shot.label}'")

    # --- on purpose: cancel, accept (the CLI) ----------------------------------------------------

    def cancel(self, key: str) -> tuple[JobRecord | None, str]:
        """Cancel the live request of clip `key` (`shotflow cancel`), checking fal's answer.

        Returns (the record after, what happened: "cancelled", "finished", "running", "not live")."""
        with self.journal.submit_lock(key):
            record = self.journal.read(key)
            if record is None:
                return None, "not live"
            job = Job(self.journal, record)
            verdict = job.cancel(self, record.shot)
            return job.record, verdict

    def live_keys(self) -> list[str]:
        """Keys of every request fal still runs (`shotflow cancel --all`)."""
        return [r.key for r in self.journal.records() if r.state == "submitted" and r.request_id]

    # --- helpers -------------------------------------------------------------------------------

    def _generated_in_this_run(self, record: JobRecord | None) -> bool:
        return bool(self.run_token) and record is not None and record.state == "downloaded" and record.run_token == self.run_token

    def _emitter(self, on_event: OnEvent):
        def emit(event: ShotEvent) -> None:
            try:
                on_event(replace(event, detail=self.scrub(event.detail)))
            except Exception:  # a broken display must never fail a paid generation
                pass

        return emit

    def close(self) -> None:
        """Close fal_client's HTTP connections, if it opened any. Safe to call twice; a later
        `generate` opens new ones."""
        close_client(self.fal)

    def __enter__(self) -> FalBackend:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def _journal_of(store: ClipStore, settings: Settings) -> Journal:
    """The journal that goes with `store`: the shared store's for a TeamClipStore, else the local one."""
    team = getattr(store, "team", None)
    if team is not None:
        from shotflow.store.teamjournal import TeamJournal

        return TeamJournal(store.root, team, lock_timeout=settings.lock_timeout)
    return Journal(store.root / "jobs", lock_timeout=settings.lock_timeout)


def accept_clip(journal: Journal, store: ClipStore, key: str, file=None) -> JobRecord:
    """`shotflow accept`: move the quarantined clip of `key` (or the user's `file`) into the store
    and mark the request downloaded. Needs no fal key. Raises ShotflowError when there is nothing
    to accept."""
    with journal.submit_lock(key):
        record = journal.read(key)
        if record is None or record.state != "quarantined":
            state = record.state if record else "no record"
            raise ShotflowError(f"clip {key}: nothing quarantined to accept (its request is {state})")
        stored = store.accept(key, file)
        job = Job(journal, record)
        job.accept(stored)
        return job.record


def _forced(force: str | None, record: JobRecord | None) -> bool:
    """Forced, unless this very token already forced the current record (a retry of the forced attempt)."""
    return bool(force) and (record is None or record.force_token != force)


def _decide(record: JobRecord | None, forced: bool) -> str:
    """ "attach" to the journaled request, or "submit" (or stop: decided under the lock)."""
    if record is None or not record.known or record.request_id is None:
        return "submit"
    if record.state in LIVE:
        # a forced run does not re-attach to a request that answered oddly or whose media fails
        return "submit" if forced and record.error else "attach"
    if record.state == "downloaded":  # its clip left the store (or is corrupt): download it again
        return "submit" if forced or not record.video_url else "attach"
    return "submit"


def _blocks(record: JobRecord) -> bool:
    """Whether an unforced submit must stop at this record (anything fal may have billed, or a
    refusal for good); a refusal or failure that was not billed and may pass next time does not."""
    if record.state in ("refused", "failed"):
        return record.permanent
    return True


def _resume_detail(record: JobRecord) -> str:
    if record.state == "submitted":
        return "re-attaching to the request an earlier run submitted"
    if record.video_url:
        return "downloading the finished request's clip again"
    return "fetching the finished request's result"
