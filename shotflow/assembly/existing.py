"""An earlier video at the output path: left as it is when the new one has the same bytes, else
kept under a dated name with its sidecars (`keep_earlier`) or replaced, as the output's `existing` says."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from shotflow.errors import AssemblyError
from shotflow.model import SIDECARS
from shotflow.store.digest import file_sha256


def land(tmp: Path, dst: Path, existing: str) -> tuple[str, Path | None]:
    """Move the checked result to `dst`, never silently over an earlier video: one with the
    same bytes is left as it was (an unchanged re-run piles up no copies); a different one is
    renamed with its time, its sidecars with it (`existing` "keep"), or replaced ("replace")."""
    if not dst.exists():
        os.replace(tmp, dst)
        return "none", None
    if _same_bytes(tmp, dst):
        return "identical", None
    if existing == "replace":
        os.replace(tmp, dst)
        return "replaced", None
    kept = keep_earlier(dst)
    os.replace(tmp, dst)
    return "kept", kept


def keep_earlier(video: Path) -> Path:
    """Rename an earlier video and its sidecars (manifest, contact sheet) to NAME.<its mtime, UTC>
    (e.g. film.2026-12-01T10-00-00.mp4, film.2026-12-01T10-00-00.manifest.json); the video's new path."""
    stamp = datetime.fromtimestamp(video.stat().st_mtime, timezone.utc).strftime("%Y-%m-%dT%H-%M-%S")
    for n in range(1, 1000):
        name = stamp if n == 1 else f"{stamp}-{n}"
        moves = [(video, video.with_name(f"{video.stem}.{name}{video.suffix}"))]
        moves += [(video.with_name(f"{video.stem}.{s}"), video.with_name(f"{video.stem}.{name}.{s}")) for s in SIDECARS]
        if not any(new.exists() for _, new in moves):
            break
    else:
        raise AssemblyError(f"{video}: cannot find a free name to keep the earlier video under")
    for old, new in moves[1:]:
        if old.exists():
            os.replace(old, new)
    os.replace(*moves[0])
    return moves[0][1]


def _same_bytes(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    return file_sha256(a) == file_sha256(b)
