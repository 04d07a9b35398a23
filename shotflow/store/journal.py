"""The job journal: a durable record of every fal request shotflow pays for, one JSON file per clip.

fal's queue keeps running (and billing) a job after the process that submitted it dies, so the
intent is written here BEFORE the submit is sent and the request id the moment fal hands it out:
a retried task, a re-run after a crash or a second run of the same storyboard re-attaches to
that request instead of paying for another, and a crash between sending and journaling leaves
an `intended` record (read as `uncertain`) instead of nothing.

This module owns the records (schema 2), reading them (with the schema-1 migration) and the
per-clip locks. It decides nothing about fal: `shotflow.generation.fal.job.Job` is the only
code that writes records, through its state transitions.

Layout: `<cache_dir>/jobs/<key>.json`, written by `shotflow.store.atomic.write_bytes_atomic`
(tmp, fsync, rename, fsync the folder), and `<key>.lock`, an empty file whose exclusive `flock`
is held while one process decides whether to submit, records what it submitted, updates the
record or downloads the clip (`shotflow.store.locks.flocked`). The lock is re-entrant within a
thread. The kernel drops it when its holder exits, even on SIGKILL, so there are no stale locks
to break. With a shared store (SHOTFLOW_STORE=s3://...) the records live in the store and the lock
is the clip's lease: `shotflow.store.teamjournal.TeamJournal`, opened by `shotflow.store.team`.

A record holds the shot id, endpoint, body hash, the request's URLs, the result's video URL, the
state, UTC timestamps, the storyboard and estimated cost of the run that sent it, and the
history of earlier requests of the same clip (`previous`, what the ledger lists), and for a shot
that continues another the frames it was sent with (`frames`: hash and stored path); never the
body (nor a frame's data), never the key.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from shotflow.errors import ShotflowError
from shotflow.settings import LOCK_TIMEOUT
from shotflow.store.atomic import StoreFullError, is_full, write_bytes_atomic
from shotflow.store.locks import flocked

if TYPE_CHECKING:
    from shotflow.model import FrameInput

SCHEMA = 2
# the ledger's names. `intended` is written before the POST; read by a process that holds the
# clip's lock (so its writer is gone) it means `uncertain`.
STATES = ("intended", "uncertain", "submitted", "completed", "downloaded", "refused", "failed", "lost", "quarantined")
# fal has the request and nobody has its clip yet: re-attach, never submit again
LIVE = frozenset({"submitted", "completed"})
# how the error of a request cancelled with `shotflow cancel` starts: fal may have billed it (a job
# already running when cancelled may have run on), so the ledger and the budget count it
CANCELLED_ON_REQUEST = "cancelled on request"
# the fields of one request kept in `previous` (the ledger reads these names)
HISTORY_FIELDS = (
    "request_id", "state", "endpoint", "shot", "storyboard", "estimated_cost_usd", "intended_at",
    "submitted_at", "completed_at", "finished_at", "error", "video_url", "permanent", "force_token",
)  # fmt: skip

# the (journal directory, key) locks each thread holds: `_locked` is re-entrant per thread, since
# a second flock of the same file on another descriptor would wait for ourselves
_HELD = threading.local()


class JournalError(ShotflowError):
    """A journal file that cannot be read or written."""


class LockTimeout(JournalError):
    """Another run held a clip's lock for longer than we would wait."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def parse_utc(stamp: Any) -> datetime | None:
    """A record's time (a UTC ISO-8601 string; one without a zone is read as UTC), None if absent
    or unreadable."""
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class JobRecord:
    """What shotflow knows about the latest fal request for one clip-store key (see STATES).

    `state` is kept as written: a state this version does not know (written by a newer one) is
    not mapped to anything; `known` says whether it is one of STATES.
    """

    key: str
    shot: str  # the shot's id (the take is `take`)
    endpoint: str
    body_hash: str
    state: str
    seconds: float | None = None
    request_id: str | None = None
    status_url: str | None = None
    response_url: str | None = None
    cancel_url: str | None = None
    video_url: str | None = None
    error: str | None = None
    permanent: bool = False
    attempts: int = 0  # how many times this key was sent to fal
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)
    intended_at: str | None = None
    submitted_at: str | None = None
    completed_at: str | None = None
    downloaded_at: str | None = None
    # set when the request reaches the end of its road: refused, failed, lost, downloaded, quarantined
    finished_at: str | None = None
    storyboard: str | None = None  # the run that sent it; None for records older than schema 2
    estimated_cost_usd: str | None = None  # a decimal string, None when unknown
    force_token: str | None = None  # the run token that forced this submit
    run_token: str | None = None  # the run that sent it (a clip it downloaded is "generated" in that run, not reused)
    clip_sha256: str | None = None
    clip_bytes: int | None = None
    quarantine_path: str | None = None
    quarantine_reason: str | None = None
    # continuity: the frames the request was sent with, {field, sha256, path, origin} each (never the data)
    frames: tuple[dict[str, Any], ...] = ()
    take: int = 1  # which take of the shot (takes: N in the storyboard, shotflow reroll)
    # earlier requests for this key (HISTORY_FIELDS each): what was paid for, for the ledger
    previous: tuple[dict[str, Any], ...] = ()
    schema: int = SCHEMA

    @property
    def known(self) -> bool:
        return self.state in STATES

    @property
    def live(self) -> bool:
        """fal has the job and nobody has its clip yet: re-attach, never submit again."""
        return self.request_id is not None and self.state in LIVE

    @property
    def replaces_stored(self) -> bool:
        """A forced request not collected yet (its run stopped, or its download failed): it is
        collected before the clip it replaces is used, and the video made of that clip is stale.
        (An unforced live request whose clip is stored was stopped between storing and journaling
        it: the stored clip is its own.)"""
        return self.live and self.force_token is not None

    def history_entry(self) -> dict[str, Any]:
        """This request as one entry of a later record's `previous`."""
        return {name: getattr(self, name) for name in HISTORY_FIELDS}

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["previous"] = list(self.previous)
        data["frames"] = list(self.frames)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRecord:
        data = migrate(data)
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["previous"] = tuple(p for p in (values.get("previous") or ()) if isinstance(p, dict))
        values["frames"] = tuple(f for f in (values.get("frames") or ()) if isinstance(f, dict))
        return cls(**values)


def frame_note(frame: FrameInput) -> dict[str, Any]:
    """A `shotflow.model.FrameInput` as a record keeps it: its field, hash, stored path and origin."""
    return {"field": frame.field, "sha256": frame.sha256, "path": frame.path, "origin": frame.origin}


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """A record of an older schema as schema 2 (in memory; written as 2 at its next transition).

    Schema 1: `submitting` (an answer lost, or a crash mid-submit) -> `uncertain`; `failed`
    without a request id (fal refused the submit) -> `refused`; `failed` because its media was
    gone, with a video URL -> `completed` (the download is tried again within the retention);
    other `failed` -> `failed`. Its history entries get the same mapping of their states.
    """
    if int(data.get("schema") or 1) >= SCHEMA:
        return data
    data = dict(data)
    state = data.get("state")
    if state == "submitting":
        data["state"] = "uncertain"
        data.setdefault("intended_at", data.get("updated_at"))
    elif state == "failed" and data.get("request_id") is None:
        data["state"] = "refused"
        data.setdefault("finished_at", data.get("updated_at"))
    elif state == "failed" and data.get("video_url") and "media is gone" in str(data.get("error") or ""):
        data["state"] = "completed"
    elif state == "failed":
        data.setdefault("finished_at", data.get("updated_at"))
    data["previous"] = [_migrate_entry(p) for p in data.get("previous") or () if isinstance(p, dict)]
    data["schema"] = SCHEMA
    return data


def _migrate_entry(entry: dict[str, Any]) -> dict[str, Any]:
    entry = dict(entry)
    if entry.get("state") == "submitting":
        entry["state"] = "uncertain"
        entry.setdefault("intended_at", entry.get("at"))
    elif entry.get("state") == "failed" and entry.get("request_id") is None:
        entry["state"] = "refused"
    entry.setdefault("finished_at", entry.get("at"))
    return entry


class Journal:
    def __init__(self, root: Path, *, lock_timeout: float = LOCK_TIMEOUT):
        """`lock_timeout`: how long to wait for another run holding a clip's lock
        (Settings.lock_timeout, SHOTFLOW_LOCK_TIMEOUT)."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock_timeout = lock_timeout

    @classmethod
    def in_cache(cls, cache_dir: Path, *, lock_timeout: float = LOCK_TIMEOUT) -> Journal:
        return cls(Path(cache_dir) / "jobs", lock_timeout=lock_timeout)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def read(self, key: str) -> JobRecord | None:
        path = self.path(key)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return parse_record(path, text)

    def write(self, record: JobRecord) -> JobRecord:
        """Durably replace the record of `record.key` (Job's transitions are the only callers).

        Disk full: StoreFullError naming the journal file."""
        record, data = encode_record(record)
        path = self.path(record.key)
        try:
            write_bytes_atomic(path, data)
        except OSError as exc:
            if is_full(exc):
                raise StoreFullError(path, exc.strerror or "") from None
            raise
        return record

    def update(
        self, key: str, request_id: str | None, /, *, expect: Collection[str], lock_timeout: float | None = None, **changes: Any
    ) -> JobRecord | None:
        """Apply `changes` to the record of `key` if it still describes `request_id` in a state of
        `expect`; return the record as written, or the current one when the update was stale.

        Two runs working on the same request both write here; a slower one must not move the
        record back (say from downloaded to completed), nor touch a newer request's record. The
        read-modify-write holds the key's lock, so it is atomic across threads and processes;
        LockTimeout after `lock_timeout` seconds (the journal's own by default).
        """
        with self._locked(key, timeout=self.lock_timeout if lock_timeout is None else lock_timeout):
            current = self.read(key)
            if current is None or current.request_id != request_id or current.state not in expect:
                return current
            return self.write(replace(current, **changes))

    def records(self) -> Iterator[JobRecord]:
        for path in sorted(self.root.glob("*.json")):
            record = self.read(path.stem)
            if record is not None:
                yield record

    @contextmanager
    def submit_lock(self, key: str, *, timeout: float | None = None, poll: float = 0.05) -> Iterator[None]:
        """Hold the exclusive lock of `key` (across threads and processes): while deciding to
        submit, while writing its record, while downloading its clip.

        Waits up to `timeout` seconds (the journal's own by default) for another holder; raises
        LockTimeout after that.
        """
        with self._locked(key, timeout=self.lock_timeout if timeout is None else timeout, poll=poll):
            yield

    lock = submit_lock

    def ensure_held(self, key: str) -> None:
        """Raise (LeaseLost, a ShotflowError) if this thread no longer holds the lock of `key`: called
        right before a paid POST. A flock cannot be lost while its holder lives, so here it never
        raises; a shared store's lease can expire (shotflow.store.teamjournal)."""

    @contextmanager
    def _locked(self, key: str, *, timeout: float, poll: float = 0.02) -> Iterator[None]:
        """The flock on `<key>.lock`; a thread that already holds it just goes on."""
        held: set[tuple[str, str]] = _HELD.__dict__.setdefault("keys", set())
        token = (str(self.root.resolve()), key)
        if token in held:
            yield
            return

        def timed_out() -> LockTimeout:
            return LockTimeout(f"another run has held the lock of clip {key} for over {timeout:.0f} s")

        with flocked(self.root / f"{key}.lock", timeout=timeout, poll=poll, timed_out=timed_out):
            held.add(token)
            try:
                yield
            finally:
                held.discard(token)


def parse_record(path: Any, text: str | bytes) -> JobRecord:
    """A record from its JSON; JournalError naming `path` (a file, or a store URL) if it cannot be read."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _unreadable(path, exc) from None
    if not isinstance(data, dict):
        raise _unreadable(path, f"it holds a JSON {type(data).__name__}, not an object")
    try:
        return JobRecord.from_json(data)
    except (ValueError, TypeError) as exc:
        raise _unreadable(path, exc) from None


def encode_record(record: JobRecord) -> tuple[JobRecord, bytes]:
    """The record as it is written (stamped now, schema 2) and its JSON."""
    record = replace(record, updated_at=now(), schema=SCHEMA)
    return record, json.dumps(record.to_json(), indent=2, sort_keys=True).encode()


def _unreadable(path: Any, why: Any) -> JournalError:
    # never guess: treating it as absent could pay for a clip a second time
    return JournalError(
        f"{path}: unreadable job record ({why}); it may name a fal request already paid for. "
        "Inspect it, then delete it to let shotflow submit this shot again"
    )
