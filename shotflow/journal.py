"""A durable record of every fal request shotflow pays for, one JSON file per clip-store key.

fal's queue keeps running (and billing) a job after the process that submitted it dies, so the
request id is written here the moment fal hands it out: a retried task, a re-run after a crash or
a second run of the same storyboard re-attaches to that request instead of paying for another.

Layout: `<cache_dir>/jobs/<key>.json` (written to a temporary file, fsynced, renamed over the old
one, then the directory fsynced) and `<key>.lock`, an empty file that `submit_lock` holds an
exclusive `flock` on while one process decides whether to submit and records what it submitted,
and that `update` holds around its read-modify-write, so two processes (or threads) updating
the same record never lose each other's change. The lock is re-entrant within a thread: an
`update` made while the same thread holds `submit_lock` for that key does not wait for itself.
The kernel drops that lock when its holder exits, even on SIGKILL, so there are no stale locks
to break. (flock: Linux and macOS, local disks or NFS with lock support.)

A record holds the shot id, endpoint, body hash, the request's URLs, the result's video URL, the
state, timestamps and how many times this key was submitted; never the body, never the key.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Literal

from shotflow.errors import ShotflowError

JobState = Literal["submitting", "submitted", "completed", "failed", "downloaded"]
SCHEMA = 1

# the (journal directory, key) locks each thread holds: `_locked` is re-entrant per thread, since
# a second flock of the same file on another descriptor would wait for ourselves
_HELD = threading.local()
# how far a request has come; an update never moves a record backwards for the same request
_PROGRESS = {"submitting": 0, "submitted": 1, "completed": 2, "downloaded": 3, "failed": 3}


class JournalError(ShotflowError):
    """A journal file that cannot be read."""


class LockTimeout(JournalError):
    """Another run held a clip's submit lock for longer than we would wait."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class JobRecord:
    """What shotflow knows about the latest fal request for one clip-store key.

    states: `submitting` (a POST is under way or was cut off: fal may or may not have the job),
    `submitted` (fal gave a request id; the job is live), `completed` (fal says done; `video_url`
    is set once the result was fetched), `downloaded` (the clip is in the store), `failed`
    (`error` says why; `permanent` failures are fal refusing this exact body, e.g. a 422).
    """

    key: str
    shot: str
    endpoint: str
    body_hash: str
    state: JobState
    seconds: float | None = None
    request_id: str | None = None
    status_url: str | None = None
    response_url: str | None = None
    cancel_url: str | None = None
    video_url: str | None = None
    error: str | None = None
    permanent: bool = False
    attempts: int = 0  # how many times this key was submitted to fal
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)
    submitted_at: str | None = None
    completed_at: str | None = None
    downloaded_at: str | None = None
    # earlier requests for this key: request id, state, error (an audit trail of what was paid for)
    previous: tuple[dict[str, Any], ...] = ()
    schema: int = SCHEMA

    @property
    def live(self) -> bool:
        """fal has (or had) the job and it has not failed: re-attach, never submit again."""
        return self.request_id is not None and self.state in ("submitted", "completed", "downloaded")

    def age(self) -> float | None:
        """Seconds since fal accepted the request."""
        if not self.submitted_at:
            return None
        return (datetime.now(timezone.utc) - datetime.fromisoformat(self.submitted_at)).total_seconds()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["previous"] = list(self.previous)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRecord:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["previous"] = tuple(values.get("previous") or ())
        return cls(**values)


class Journal:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    @classmethod
    def in_cache(cls, cache_dir: Path) -> Journal:
        return cls(Path(cache_dir) / "jobs")

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def read(self, key: str) -> JobRecord | None:
        path = self.path(key)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return JobRecord.from_json(json.loads(text))
        except (ValueError, TypeError) as exc:
            # never guess: treating it as absent could pay for a clip a second time
            raise JournalError(
                f"{path}: unreadable job record ({exc}); it may name a fal request already paid for. "
                "Inspect it, then delete it to let shotflow submit this shot again"
            ) from None

    def write(self, record: JobRecord) -> JobRecord:
        """Durably replace the record of `record.key`: tmp file, fsync, rename, fsync the directory."""
        record = replace(record, updated_at=now())
        data = json.dumps(record.to_json(), indent=2, sort_keys=True).encode()
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{record.key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path(record.key))
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        _fsync_dir(self.root)
        return record

    def update(
        self, key: str, request_id: str | None, *, lock_timeout: float = 300.0, **changes: Any
    ) -> JobRecord | None:
        """Apply `changes` to the record of `key` if it still describes `request_id`.

        Two runs polling the same request both write here; a slower one must not move the
        record back (say from downloaded to completed), nor touch a newer request's record.
        Returns the record as written, or the current one when the update was stale. The
        read-modify-write holds the key's lock (the one `submit_lock` takes), so it is atomic
        across threads and processes; LockTimeout after `lock_timeout` seconds.

        `failed` never replaces `downloaded` (a late error of a slower poller), unless the change
        says `media_gone=True`: the download of that very clip was refused for good.
        """
        with self._locked(key, timeout=lock_timeout):
            return self._update_locked(key, request_id, **changes)

    def _update_locked(self, key: str, request_id: str | None, *, media_gone: bool = False, **changes: Any) -> JobRecord | None:
        current = self.read(key)
        if current is None or current.request_id != request_id:
            return current
        state = changes.get("state", current.state)
        if state != "failed" and _PROGRESS[state] < _PROGRESS[current.state]:
            return current
        if current.state == "downloaded" and state == "failed" and not media_gone:
            return current
        return self.write(replace(current, **changes))

    def records(self) -> Iterator[JobRecord]:
        for path in sorted(self.root.glob("*.json")):
            record = self.read(path.stem)
            if record is not None:
                yield record

    @contextmanager
    def submit_lock(self, key: str, *, timeout: float = 300.0, poll: float = 0.05) -> Iterator[None]:
        """Hold the exclusive lock of `key` (across threads and processes) while deciding to submit.

        Waits up to `timeout` seconds for another holder (a run submitting the same clip, or an
        update of its record); raises LockTimeout after that.
        """
        with self._locked(key, timeout=timeout, poll=poll):
            yield

    @contextmanager
    def _locked(self, key: str, *, timeout: float, poll: float = 0.02) -> Iterator[None]:
        """The flock on `<key>.lock`; a thread that already holds it just goes on."""
        held: set[tuple[str, str]] = _HELD.__dict__.setdefault("keys", set())
        token = (str(self.root.resolve()), key)
        if token in held:
            yield
            return
        fd = os.open(self.root / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"another run has held the lock of clip {key} for over {timeout:.0f} s")
                time.sleep(poll)
            held.add(token)
            try:
                yield
            finally:
                held.discard(token)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
