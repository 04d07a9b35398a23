"""Which store this process works in: the local clip store, or SHOTFLOW_STORE shared by many machines.

Every reader and writer of the clip store, the job journal (and so the ledger and the daily
budget) opens them here, so one setting moves them all:

- SHOTFLOW_STORE unset, or a local folder: the clip store and journal in that folder
  (SHOTFLOW_CACHE_DIR), with flocks, as on one machine;
- an object store (`s3://bucket/prefix`): the journal's records and the clips live in the store,
  SHOTFLOW_CACHE_DIR is this machine's cache of it, and a clip's lock is its lease (Redis when
  SHOTFLOW_REDIS_URL is set, else conditional writes in the store; a store that has neither is
  refused before anything is paid: `shotflow.store.coordination`).

One store client and one coordination check per process and store URL.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from shotflow.settings import Settings
from shotflow.store.clips import ClipStore
from shotflow.store.coordination import Coordination, check_coordination
from shotflow.store.journal import Journal
from shotflow.store.shared import SharedStore, StoreLocation, open_store, parse_store

_CHECKING = threading.Lock()


@dataclass(frozen=True)
class Team:
    """A shared store and how its workers keep from paying twice."""

    store: SharedStore
    coordination: Coordination
    lease_ttl: float


def store_location(settings: Settings) -> StoreLocation:
    return parse_store(settings.store, default=settings.cache_dir)


def shared_store(settings: Settings) -> SharedStore | None:
    """The object store SHOTFLOW_STORE names, or None when the store is this machine's folder."""
    if not settings.shared_store:
        return None
    return _open(store_location(settings).url)


def team(settings: Settings) -> Team | None:
    """The shared store with its coordination checked (UnsafeStoreError when no way is safe), or
    None when the store is local."""
    store = shared_store(settings)
    if store is None:
        return None
    with _CHECKING:
        coordination = _coordination(store.location.url, settings.redis_url or None)
    return Team(store, coordination, settings.lease_ttl)


def open_clip_store(settings: Settings) -> ClipStore:
    """The clip store every run of this process reads and writes."""
    shared = team(settings)
    if shared is None:
        return ClipStore(settings.cache_dir)
    from shotflow.store.teamclips import TeamClipStore

    return TeamClipStore(settings.cache_dir, shared)


def clip_store_at(cache_dir: str | os.PathLike, settings: Settings | None = None) -> ClipStore:
    """The clip store in `cache_dir`: the shared store's (cached there) when `cache_dir` is this
    process's cache of SHOTFLOW_STORE, else the local store in that folder."""
    if settings is not None and settings.shared_store and Path(cache_dir) == Path(settings.cache_dir):
        return open_clip_store(settings)
    return ClipStore(Path(cache_dir))


def journal_at(cache_dir: str | os.PathLike, settings: Settings | None = None) -> Journal:
    """The job journal of the clip store in `cache_dir` (see `clip_store_at`)."""
    if settings is not None and settings.shared_store and Path(cache_dir) == Path(settings.cache_dir):
        return open_journal(settings)
    if settings is None:
        return Journal.in_cache(Path(cache_dir))
    return Journal.in_cache(Path(cache_dir), lock_timeout=settings.lock_timeout)


def open_journal(settings: Settings) -> Journal:
    """The job journal every run of this process reads and writes."""
    shared = team(settings)
    if shared is None:
        return Journal.in_cache(settings.cache_dir, lock_timeout=settings.lock_timeout)
    from shotflow.store.teamjournal import TeamJournal

    return TeamJournal(settings.cache_dir, shared, lock_timeout=settings.lock_timeout)


@lru_cache(maxsize=4)
def _open(url: str) -> SharedStore:
    return open_store(parse_store(url, default=None))  # type: ignore[arg-type]


@lru_cache(maxsize=4)
def _coordination(url: str, redis_url: str | None) -> Coordination:
    return check_coordination(_open(url), redis_url=redis_url)
