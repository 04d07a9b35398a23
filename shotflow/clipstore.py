"""Clips stored by content: the key is derived from the backend, the endpoint and the exact body.

Any run of any storyboard that needs the same clip finds it here and pays nothing. A preview
clip and a fal clip of the same body have different keys, so an animatic is never mistaken for
a paid generation.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from shotflow.plan import ShotPlan


class ClipStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.clips = self.root / "clips"
        self.clips.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(backend: str, shot: ShotPlan) -> str:
        return hashlib.sha256(f"{backend}:{shot.body_hash}".encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.clips / f"{key}.mp4"

    def derived(self, key: str, recipe: str, suffix: str = ".mp4") -> Path:
        """Where a file made from clip `key` by `recipe` (e.g. a normalisation) is kept."""
        return self.clips / f"{key}.{recipe}{suffix}"

    def find(self, key: str) -> Path | None:
        path = self.path(key)
        return path if path.is_file() and path.stat().st_size > 0 else None

    def temp_path(self, key: str) -> Path:
        return self.clips / f".{key}.{os.getpid()}.part"

    def put(self, key: str, verified_file: Path, *, keep_previous: bool = True) -> Path:
        """Move a verified file into the store atomically (same file system: a rename).

        A clip already stored under the key (a forced regeneration) is kept in superseded/,
        never deleted: it was paid for, and older manifests name it by its hash. Clips that
        cost nothing (previews) pass keep_previous=False."""
        dest = self.path(key)
        if keep_previous and dest.is_file():
            aside = self.clips / "superseded"
            aside.mkdir(exist_ok=True)
            os.replace(dest, aside / f"{key}.{dest.stat().st_mtime_ns}.mp4")
        os.replace(verified_file, dest)
        return dest
