"""The clip store of a store many machines share (SHOTFLOW_STORE=s3://...): clips in the store, and
this machine's clip store (SHOTFLOW_CACHE_DIR) as their cache.

- `clips/<key>.mp4` in the shared store is the clip of `key` (its sha256 recorded with it and
  checked on every fetch: shotflow.store.shared). The local `ClipStore` in the cache dir keeps the
  copies this machine uses (assembly reads clips through it).
- `find`/`stored`: the local copy when the shared store holds the same clip (or nothing: a clip
  whose upload failed, or cached before the store was shared, is uploaded then); else the shared
  store's clip, fetched into the cache (`objects/sha256/...`), checked, and put into the local
  store (a different local copy goes to its superseded/, as a forced regeneration's would).
- `put` (a verified download, an accepted clip, a preview): the local put, then the upload, checked,
  BEFORE it returns: the journal's `downloaded` (written after) is only ever true when the shared
  store has the clip. A put that replaces another clip in the shared store (a forced regeneration)
  first copies the old one to `superseded/<key>.<ns>.mp4` in the store: it was paid for.
- Stays local: quarantine (a download that failed verification, kept aside on the machine that
  fetched it, for `shotflow accept` there), corrupt/ copies, and files derived from a clip
  (normalisations, sounds): caches, made again from the clip for free.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from shotflow.store.clips import ClipStore, StoredClip
from shotflow.store.shared import ObjectInfo

if TYPE_CHECKING:
    from shotflow.store.team import Team


class TeamClipStore(ClipStore):
    """Clips in the shared store, cached in `cache_dir`; see the module's docstring."""

    def __init__(self, cache_dir: Path, team: Team):
        super().__init__(cache_dir)
        self.team = team
        self.shared = team.store

    def __repr__(self) -> str:
        return f"TeamClipStore({self.shared.location.url!r}, cache={str(self.root)!r})"

    @staticmethod
    def object_key(key: str) -> str:
        return f"clips/{key}.mp4"

    def url_of(self, key: str) -> str:
        """Where the clip of `key` lives in the shared store (for messages)."""
        return self.shared.location.url_of(self.object_key(key))

    # --- reading ---------------------------------------------------------------------------------

    def find(self, key: str) -> Path | None:
        found = self.stored(key)
        return found.path if found is not None else None

    def stored(self, key: str) -> StoredClip | None:
        local = super().stored(key)
        info = self.shared.stat(self.object_key(key))
        if local is not None:
            if info is None:  # its upload failed, or it was cached before the store was shared
                self._publish(key, local, keep_previous=False)
                return local
            if (info.size, info.sha256) == (local.size, local.sha256):
                return local
            # the shared store holds another clip for the key: a forced regeneration elsewhere; it wins
        if info is None:
            return None
        return self._adopt(key, info)

    def locate(self, key: str) -> Path | None:
        return self.find(key)

    def _adopt(self, key: str, info: ObjectInfo) -> StoredClip:
        """The shared store's clip of `key`, fetched (checked against its sha256) and put into the
        local store."""
        cached = self.shared.get_file(self.object_key(key), self.root)
        staged = self.clips / f".{key}.{os.getpid()}.{threading.get_ident()}.fetched.part"
        try:
            try:
                os.link(cached, staged)  # the same bytes, no second copy on disk
            except OSError:
                shutil.copyfile(cached, staged)
            return super().put(key, staged, keep_previous=True)
        finally:
            with contextlib.suppress(FileNotFoundError):
                staged.unlink()

    # --- writing ---------------------------------------------------------------------------------

    def put(self, key: str, verified_file: Path, *, keep_previous: bool = True) -> StoredClip:
        """The local put (see ClipStore.put), then the upload to the shared store, checked, before
        returning. A different clip the shared store held for the key is first copied to
        `superseded/` there, unless `keep_previous` is False (a preview's clip costs nothing)."""
        stored = super().put(key, verified_file, keep_previous=keep_previous)
        self._publish(key, stored, keep_previous=keep_previous)
        return stored

    def _publish(self, key: str, clip: StoredClip, *, keep_previous: bool) -> None:
        name = self.object_key(key)
        current = self.shared.stat(name)
        if current is not None and (current.size, current.sha256) == (clip.size, clip.sha256):
            return  # another machine uploaded the same clip
        if current is not None and keep_previous and current.sha256 is not None:
            old = self.shared.get_file(name, self.root)
            self.shared.put_file(old, f"superseded/{key}.{time.time_ns()}.mp4", sha256=current.sha256)
        self.shared.put_file(clip.path, name, sha256=clip.sha256)
