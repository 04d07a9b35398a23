"""The job journal of a store many machines share (SHOTFLOW_STORE=s3://...): records in the store,
each clip's lock its lease.

The records are the objects `jobs/<key>.json` of the shared store, the same JSON as the local
journal's files (shotflow.store.journal). What keeps two machines from paying twice for one body:

- the lock of a clip (`submit_lock`, held while deciding to submit, sending, journaling the answer,
  downloading) is the clip's lease (`shotflow.store.lease`: Redis, or conditional writes in the
  store), re-entrant within a thread like the flock it replaces. A lease another worker holds past
  the wait is `LockTimeout` (the backend turns it into "try again later"). The daily budget's lock
  is the lease of `daily-budget`, so one budget holds across every worker of the store;
- a record is written only if it is still the version this worker read (or wrote) under the lease,
  or only if absent when there was none (S3 If-Match / If-None-Match): never a blind overwrite. A
  write that loses is a JournalError naming the clip and the record's URL. A store without
  conditional writes runs only with Redis leases (shotflow.store.coordination), and its records
  are then written plainly under the Redis lock;
- `ensure_held(key)` raises LeaseLost when this thread's lease of the clip was lost (expired while
  its renewals could not reach the store, or taken over): the backend calls it right before the
  paid POST, so a worker that lost its lease sends nothing.

A worker that dies holding a lease stops renewing it; `lease_ttl` later another worker takes it
and reads the record under it: an `intended` one is uncertain (the money-safety rules,
unchanged), a `submitted` one is re-attached, paying nothing.

`root` stays a local folder (`<cache_dir>/jobs`) for what needs one; `path(key)` is the record's
store URL, for messages. `shotflow gc` refuses a shared store (shotflow.store.gc).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from shotflow.settings import LOCK_TIMEOUT
from shotflow.store.journal import JobRecord, Journal, JournalError, LockTimeout, encode_record, parse_record
from shotflow.store.lease import Lease, LeaseBusy, LeaseLost, lease_for
from shotflow.store.shared import ConditionFailed, SharedStoreError

if TYPE_CHECKING:
    from shotflow.store.team import Team

PREFIX = "jobs/"
# the leases each thread holds, by (store URL, clip): the lock is re-entrant per thread
_HELD = threading.local()
READERS = 8  # records read at once by `records()` (the ledger, the daily budget)


class TeamJournal(Journal):
    """The journal in a shared store; see the module's docstring."""

    def __init__(self, cache_dir: Path, team: Team, *, lock_timeout: float = LOCK_TIMEOUT):
        super().__init__(Path(cache_dir) / "jobs", lock_timeout=lock_timeout)
        self.team = team
        self.store = team.store
        # the etag of each record as this worker last read it under its lease, or wrote it
        self._etags: dict[str, str] = {}
        self._etags_lock = threading.Lock()
        self._leases: dict[str, Lease] = {}  # held now, by clip (any thread): `held`
        self._conditional = team.coordination.capabilities.conditional_writes

    def __repr__(self) -> str:
        return f"TeamJournal({self.store.location.url_of(PREFIX)!r})"

    @staticmethod
    def object_key(key: str) -> str:
        return f"{PREFIX}{key}.json"

    def path(self, key: str) -> str:  # type: ignore[override]
        """The record's URL in the store (what messages name)."""
        return self.store.location.url_of(self.object_key(key))

    # --- records ---------------------------------------------------------------------------------

    def read(self, key: str) -> JobRecord | None:
        got = self.store.get_bytes(self.object_key(key))
        lease = self._mine().get(self._token(key))
        if lease is not None and not lease.lost:  # the version the next write of this holder must still find
            with self._etags_lock:
                if got is None:
                    self._etags.pop(key, None)
                else:
                    self._etags[key] = got.etag
        if got is None:
            return None
        return parse_record(self.path(key), got.data)

    def write(self, record: JobRecord) -> JobRecord:
        """Write the record of `record.key` only if the store still holds the version this worker
        last read or wrote (only if absent when it knew none): JournalError if another worker
        changed it meanwhile, and nothing is overwritten."""
        record, data = encode_record(record)
        name = self.object_key(record.key)
        lease = self._mine().get(self._token(record.key))
        if lease is not None:
            lease.ensure()  # LeaseLost: another worker may hold it now; it decides
        with self._etags_lock:
            etag = self._etags.get(record.key)
        try:
            if not self._conditional:  # Redis leases on a store without conditions (coordination)
                written = self.store.put_bytes(name, data)
            elif etag is None:
                written = self.store.put_bytes_if_absent(name, data)
            else:
                written = self.store.put_bytes_if_match(name, data, etag)
        except ConditionFailed:
            current = self.store.get_bytes(name)
            if current is not None and current.data == data:  # our own write, landed before a retry of it
                with self._etags_lock:
                    self._etags[record.key] = current.etag
                return record
            with self._etags_lock:
                self._etags.pop(record.key, None)
            sent = "; nothing was sent for it" if record.state == "intended" else ""
            raise JournalError(
                f"{self.path(record.key)}: another worker changed the record of clip {record.key} (shot "
                f"'{record.shot}') since this worker read it; it was not overwritten{sent}"
            ) from None
        with self._etags_lock:
            self._etags[record.key] = written
        return record

    def records(self) -> Iterator[JobRecord]:
        names = [k[len(PREFIX) : -len(".json")] for k in self.store.list(PREFIX) if k.endswith(".json")]
        names = [n for n in names if n and "/" not in n]
        if not names:
            return
        with ThreadPoolExecutor(min(READERS, len(names))) as pool:
            for record in pool.map(self.read, names):
                if record is not None:
                    yield record

    # --- leases ----------------------------------------------------------------------------------

    def held(self, key: str) -> Lease | None:
        """The lease of `key` a thread of this journal holds now, if any."""
        return self._leases.get(key)

    def ensure_held(self, key: str) -> None:
        lease = self._mine().get(self._token(key))
        if lease is None:
            raise LeaseLost(f"clip {key}: this worker does not hold its lease; not submitting")
        lease.ensure()

    def _token(self, key: str) -> tuple[str, str]:
        return (self.store.location.url, key)

    @staticmethod
    def _mine() -> dict[tuple[str, str], Lease]:
        return _HELD.__dict__.setdefault("leases", {})

    @contextmanager
    def _locked(self, key: str, *, timeout: float, poll: float = 0.05) -> Iterator[None]:
        """The clip's lease, waited for up to `timeout` seconds; a thread that holds it just goes on."""
        mine, token = self._mine(), self._token(key)
        if token in mine:
            yield
            return
        lease = lease_for(
            key,
            store=self.store,
            coordination=self.team.coordination,
            ttl=self.team.lease_ttl,
            wait=timeout,
            poll=max(poll, 0.1),
        )
        try:
            lease.__enter__()
        except LeaseBusy as busy:
            raise LockTimeout(f"clip {key}: another worker ({busy.holder}) has held its lease for over {timeout:.0f} s") from None
        except SharedStoreError as exc:
            raise LockTimeout(f"clip {key}: its lease could not be taken ({exc})") from None
        mine[token] = lease
        self._leases[key] = lease
        try:
            yield
        finally:
            del mine[token]
            self._leases.pop(key, None)
            with self._etags_lock:
                self._etags.pop(key, None)  # the next holder reads it again first
            lease.__exit__(None, None, None)
