"""Putting what the assembly makes at its destination.

Every file it writes (a normalised clip, a piece, a soundtrack, the final video, the contact
sheet) is written to a temporary file beside its destination and renamed over it only once
complete (`replacing`; the rename is store.atomic's), so a reader never finds half a file (a
sidecar drawn while the join runs waits under a `temporary_name` until the video has landed). The
final video never lands silently over an earlier, different one (`land`): one with the same
bytes is left as it is, else it is kept under a dated name with its sidecars (`keep_earlier`) or
replaced, as the output's `existing` says.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from shotflow.errors import AssemblyError
from shotflow.model import SIDECARS
from shotflow.store.atomic import move_atomic
from shotflow.store.digest import file_sha256


def temporary_name(dst: Path) -> Path:
    """A hidden, unused name in `dst`'s folder (a rename within a folder is atomic)."""
    return dst.with_name(f".{dst.name}.{os.getpid()}.{os.urandom(4).hex()}.part")


@contextlib.contextmanager
def temporary_beside(dst: Path) -> Iterator[Path]:
    """A `temporary_name` for `dst`, removed on leaving if it is still there."""
    tmp = temporary_name(dst)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def replacing(dst: Path) -> Iterator[Path]:
    """A temporary path beside `dst` for a writer (ffmpeg, PIL) to fill: renamed over `dst` when
    the block ends cleanly, removed when it raises (`dst` is then left as it was)."""
    with temporary_beside(dst) as tmp:
        yield tmp
        move_atomic(tmp, dst)


def land(tmp: Path, dst: Path, existing: str) -> tuple[str, Path | None]:
    """Move the checked result to `dst`, never silently over an earlier video: one with the
    same bytes is left as it was (an unchanged re-run piles up no copies); a different one is
    renamed with its time, its sidecars with it (`existing` "keep"), or replaced ("replace")."""
    if not dst.exists():
        move_atomic(tmp, dst)
        return "none", None
    if _same_bytes(tmp, dst):
        return "identical", None
    if existing == "replace":
        move_atomic(tmp, dst)
        return "replaced", None
    kept = keep_earlier(dst)
    move_atomic(tmp, dst)
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
            move_atomic(old, new)
    move_atomic(*moves[0])
    return moves[0][1]


def _same_bytes(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    return file_sha256(a) == file_sha256(b)
