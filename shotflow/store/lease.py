"""A clip's lease: at most one worker, on any machine, is about to submit a given clip.

A worker takes the clip's lease before it reads the shared journal and sends the paid POST, and
holds it until the request's id is journaled. Two ways, one interface (`Lease`, a context manager):

- `StoreLease`, conditional writes in the shared store: the record `leases/<clip>.json` is
  created only if absent (S3 `If-None-Match: *`), renewed only if unchanged (`If-Match` on the
  etag the holder wrote last), and released by writing it as released, again only if unchanged.
  Taking over an expired or released record is itself an `If-Match` write on the etag the taker
  read, so of two takers exactly one wins.
- `RedisLease`, a redis-py `Lock` (`SET NX PX`) named after the store and the clip, renewed with
  `extend(ttl, replace_ttl=True)`; its token names the holder. (`prefect-redis`'s
  `RedisLockManager` has no renewal, so it does not fit a wait that can outlast any TTL.)

While held, a thread renews the lease every third of its TTL. A renewal that finds the lease taken,
or that cannot reach the store for most of a TTL, marks the lease lost: `lost` turns true,
`on_lost(reason)` is called, and `ensure()` raises `LeaseLost`, which the caller checks right
before it submits, so a worker that lost its lease stops without paying.

When the holder dies (SIGKILL, power cut, a lost machine), nothing renews the lease, and it expires
`ttl` seconds after its last renewal: Redis drops the key by the server's clock; a store lease is
taken over once the taker has seen the same record unchanged for `ttl + clock_skew` seconds of
its own (monotonic) time. No wall clock decides (a holder whose clock lags would look expired
while it still renews; the record's `expires_at` is for people), so a takeover waits at most
that long after the taker first looks, and never hurries past a live holder's renewals. The new holder then reads the shared journal:
the dead holder's intent record (written before its POST) makes the shot `uncertain` under the
money-safety rules (/work/notes/issue9-design.md), so it is never sent again without `--force`.
This module only decides who may submit: the journal of a shared store takes a clip's lease as the
clip's lock (shotflow.store.teamjournal), and the backend checks it right before the paid POST.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone

from shotflow.store.coordination import Coordination
from shotflow.store.shared import ConditionFailed, SharedStore, SharedStoreError, check_key

TTL = 30.0  # seconds a lease lives without a renewal
# the holder counts its lease lost once this share of the TTL has passed since its last renewal
# was sent, so it stops before a taker may (ttl + clock_skew after that renewal reached the store)
HOLD = 0.8


class LeaseBusy(SharedStoreError):
    """Another worker holds the clip's lease (it is submitting or waiting on it)."""

    def __init__(self, clip: str, holder: str, until: str):
        self.clip, self.holder, self.until = clip, holder, until
        super().__init__(f"clip {clip}: being submitted by {holder} (its lease runs until {until}); not sent again here")


class LeaseLost(SharedStoreError):
    """This worker no longer holds the clip's lease: it must not submit."""


def holder_name() -> str:
    """Who holds a lease, as others see it: host, process and a unique tail."""
    return f"{socket.gethostname()}:pid {os.getpid()}:{uuid.uuid4().hex[:12]}"


def _utc(seconds_from_now: float = 0.0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds_from_now)).isoformat(timespec="milliseconds")


class Lease(ABC):
    """Hold `clip`'s lease in a `with` block; wait up to `wait` seconds for it, else LeaseBusy."""

    def __init__(
        self, clip: str, *, ttl: float = TTL, wait: float = 0.0, poll: float = 0.25, on_lost: Callable[[str], None] | None = None
    ):
        if ttl <= 0:
            raise ValueError("a lease's ttl is a positive number of seconds")
        self.clip, self.ttl, self.wait, self.poll, self.on_lost = clip, ttl, wait, poll, on_lost
        self.holder = holder_name()
        self.renewals = 0
        self.reason: str | None = None
        self._lost = threading.Event()
        self._losing = threading.Lock()
        self._renewed: float | None = None  # monotonic time the last successful write was sent
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = ("another worker", "unknown")

    # --- what each kind does -------------------------------------------------------------------

    @abstractmethod
    def _try_acquire(self) -> bool:
        """Take the lease if free (or expired); False if someone else holds it (set self._busy)."""

    @abstractmethod
    def _renew(self) -> None:
        """Push the expiry `ttl` ahead; LeaseLost if someone else holds it now."""

    @abstractmethod
    def _release(self) -> None:
        """Give the lease up (only if still ours)."""

    # --- the shared part -----------------------------------------------------------------------

    @property
    def lost(self) -> bool:
        """True once the lease is lost, or once it has gone unrenewed for most of its TTL (a renewal
        stuck on a slow store counts as lost before anyone else may take the lease over)."""
        if not self._lost.is_set() and self._renewed is not None and time.monotonic() - self._renewed >= self.ttl * HOLD:
            self._lose(f"not renewed for {time.monotonic() - self._renewed:.1f} s")
        return self._lost.is_set()

    def ensure(self) -> None:
        """Raise LeaseLost unless the lease is still held: call right before submitting."""
        if self.lost:
            raise LeaseLost(f"clip {self.clip}: lease lost ({self.reason}); not submitting")

    def __enter__(self) -> Lease:
        if self._renewed is not None:
            raise RuntimeError(f"clip {self.clip}: a Lease is taken once; make a new one")
        deadline = time.monotonic() + self.wait
        while True:
            # the clock starts before the write: the record's expiry (or Redis's TTL) starts later
            started = time.monotonic()
            if self._try_acquire():
                break
            if time.monotonic() >= deadline:
                raise LeaseBusy(self.clip, *self._busy)
            time.sleep(min(self.poll, max(0.0, deadline - time.monotonic())))
        self._renewed = started
        self._thread = threading.Thread(target=self._keep, name=f"lease {self.clip}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if not self.lost:
            try:
                self._release()
            except (LeaseLost, SharedStoreError):
                pass  # it expires by itself; whoever takes it next re-reads the journal

    def _keep(self) -> None:
        delay = self.ttl / 3
        while not self._stop.wait(delay) and not self._lost.is_set():
            started = time.monotonic()
            try:
                self._renew()
                self._renewed, delay = started, self.ttl / 3
                self.renewals += 1
            except LeaseLost as exc:
                return self._lose(str(exc))
            except Exception as exc:  # the store or Redis unreachable: try again soon, until it is too late
                if self.lost:
                    self.reason = f"{self.reason}: {exc}"
                    return
                delay = self.ttl / 12

    def _lose(self, reason: str) -> None:
        with self._losing:
            if self._lost.is_set():
                return
            self.reason = reason
            self._lost.set()
        if self.on_lost is not None:
            self.on_lost(reason)


@dataclass
class LeaseRecord:
    """The JSON of `leases/<clip>.json`."""

    clip: str
    holder: str
    ttl: float
    acquired_at: str
    expires_at: str
    released: bool = False
    schema: int = 1

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @staticmethod
    def decode(data: bytes) -> LeaseRecord | None:
        try:
            raw = json.loads(data)
            return LeaseRecord(
                str(raw["clip"]),
                str(raw["holder"]),
                float(raw["ttl"]),
                str(raw["acquired_at"]),
                str(raw["expires_at"]),
                released=raw["released"] is True,
            )
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: held, until seen unchanged for a whole TTL


class StoreLease(Lease):
    """A lease kept as a record in a store that honours conditional writes."""

    def __init__(self, store: SharedStore, clip: str, *, clock_skew: float = 5.0, **options):
        super().__init__(clip, **options)
        self.store, self.clock_skew = store, clock_skew
        self.key = check_key(f"leases/{clip}.json")
        self.etag: str | None = None
        self.record: LeaseRecord | None = None
        self._seen: tuple[str, float] | None = None  # (etag, when first seen): the clock-free expiry

    def _mine(self, acquired_at: str | None = None) -> LeaseRecord:
        now = _utc()
        return LeaseRecord(self.clip, self.holder, self.ttl, acquired_at or now, _utc(self.ttl))

    def _adopt(self) -> bool:
        """After a lost condition: was it our own write whose answer never came (a retried PUT)?"""
        current = self.store.get_bytes(self.key)
        record = LeaseRecord.decode(current.data) if current else None
        if current and record and record.holder == self.holder and not record.released:
            self.etag, self.record = current.etag, record
            return True
        if record is not None:
            self._busy = (record.holder, record.expires_at)
        return False

    def _expired(self, record: LeaseRecord | None, etag: str) -> bool:
        if record is not None and record.released:
            return True
        now = time.monotonic()
        if self._seen is None or self._seen[0] != etag:
            self._seen = (etag, now)
        ttl = record.ttl if record is not None else self.ttl
        # only this worker's own clock: a holder whose wall clock lags would otherwise look expired
        # while it still renews (its `expires_at` is for people reading the record)
        return now - self._seen[1] >= ttl + self.clock_skew

    def _try_acquire(self) -> bool:
        current = self.store.get_bytes(self.key)
        mine = self._mine()
        try:
            if current is None:
                self.etag = self.store.put_bytes_if_absent(self.key, mine.encode())
            else:
                record = LeaseRecord.decode(current.data)
                if not self._expired(record, current.etag):
                    self._busy = (record.holder, record.expires_at) if record else ("an unreadable lease record", "unknown")
                    return False
                self.etag = self.store.put_bytes_if_match(self.key, mine.encode(), current.etag)
        except ConditionFailed:
            return self._adopt()
        self.record = mine
        return True

    def _renew(self) -> None:
        assert self.record is not None and self.etag is not None
        renewed = self._mine(self.record.acquired_at)
        try:
            self.etag = self.store.put_bytes_if_match(self.key, renewed.encode(), self.etag)
            self.record = renewed
        except ConditionFailed:
            if not self._adopt():
                raise LeaseLost(f"clip {self.clip}: taken over by {self._busy[0]}") from None

    def _release(self) -> None:
        assert self.record is not None and self.etag is not None
        released = LeaseRecord(self.clip, self.holder, self.ttl, self.record.acquired_at, _utc(), released=True)
        try:
            self.store.put_bytes_if_match(self.key, released.encode(), self.etag)
        except ConditionFailed:
            pass  # taken over after it expired: nothing of ours to give up


class RedisLease(Lease):
    """A lease kept as a redis-py Lock on the Redis server every worker reaches."""

    def __init__(self, redis_url: str, namespace: str, clip: str, *, client=None, **options):
        super().__init__(clip, **options)
        try:
            import redis
            from redis.lock import Lock
        except ImportError:
            raise SharedStoreError("SHOTFLOW_REDIS_URL needs the redis package: pip install 'shotflow[team]'") from None
        self._errors = redis.exceptions
        self.client = client or redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
        self.name = f"shotflow:{namespace}:lease:{clip}"
        # thread_local=False: the renewal thread must see the token the acquiring thread got
        self.lock = Lock(self.client, self.name, timeout=self.ttl, thread_local=False)

    def _try_acquire(self) -> bool:
        try:
            if self.lock.acquire(blocking=False, token=self.holder):
                return True
            holder, left = self.client.get(self.name), self.client.pttl(self.name)
        except self._errors.RedisError as exc:
            raise SharedStoreError(f"clip {self.clip}: Redis lock {self.name} unreachable: {exc}") from None
        until = _utc(left / 1000) if isinstance(left, int) and left > 0 else "unknown"
        self._busy = (holder.decode(errors="replace") if isinstance(holder, bytes) else str(holder or "another worker"), until)
        return False

    def _renew(self) -> None:
        try:
            self.lock.extend(self.ttl, replace_ttl=True)
        except self._errors.LockError as exc:  # LockNotOwnedError: expired, maybe taken
            raise LeaseLost(f"clip {self.clip}: Redis lock {self.name} no longer ours ({exc})") from None

    def _release(self) -> None:
        try:
            self.lock.release()
        except self._errors.LockError:
            pass  # expired already


def lease_for(clip: str, *, store: SharedStore, coordination: Coordination, **options) -> Lease:
    """The lease of `clip` the way this store's workers coordinate (see shotflow.store.coordination)."""
    if coordination.mode == "redis":
        assert coordination.redis_url is not None
        return RedisLease(coordination.redis_url, store.location.url, clip, **options)
    return StoreLease(store, clip, **options)
