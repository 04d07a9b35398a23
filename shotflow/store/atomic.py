"""Durable, atomic file writes: the only place that knows the temp-file/fsync/rename/fsync dance.

A reader sees the old file or the new one, never a half-written one, and once a function here
returns, the new file survives a power cut: the data is fsynced before the rename and the folder
after it (without the second fsync the rename itself can be lost). A full disk or an exhausted
quota raises `StoreFullError`, one line naming the path, instead of a raw OSError.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from shotflow.errors import ShotflowError

FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


class StoreFullError(ShotflowError):
    """No room left (disk full or quota exceeded) where shotflow had to write `path`."""

    def __init__(self, path: str | os.PathLike, detail: str = ""):
        self.path = str(path)
        self.detail = detail
        super().__init__(
            f"no space left on the device holding {self.path}"
            + (f" ({detail})" if detail else "")
            + "; free some space and run again"
        )

    def __reduce__(self):
        return (StoreFullError, (self.path, self.detail))


def is_full(exc: BaseException) -> bool:
    """True for the OSErrors that mean "no room": ENOSPC, EDQUOT."""
    return isinstance(exc, OSError) and exc.errno in FULL


@contextlib.contextmanager
def full_disk_names(path: str | os.PathLike) -> Iterator[None]:
    """Turn ENOSPC/EDQUOT raised inside the block into StoreFullError naming `path`."""
    try:
        yield
    except OSError as exc:
        if is_full(exc):
            raise StoreFullError(path, exc.strerror or "") from None
        raise


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename or a new file in folder `path` durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        # a few file systems (some network mounts) cannot fsync a folder; nothing more can be done
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, mode: int | None = None) -> Path:
    """Replace `path` with `data` atomically and durably; return the path.

    The temp file is created next to `path` (a rename only is atomic within one file system) and
    removed if anything fails. `mode` (e.g. 0o644) is applied before the rename; by default the
    file is readable by its owner only, as mkstemp makes it, unless it replaces a file whose mode
    is kept.
    """
    path = Path(path)
    with full_disk_names(path):
        if mode is None and path.exists():
            mode = path.stat().st_mode & 0o777
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                if mode is not None:
                    os.fchmod(fh.fileno(), mode)
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        fsync_dir(path.parent)
    return path


def write_text_atomic(path: str | os.PathLike, text: str, *, encoding: str = "utf-8", mode: int | None = None) -> Path:
    """`write_bytes_atomic` for text."""
    return write_bytes_atomic(path, text.encode(encoding), mode=mode)


def move_atomic(src: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Rename `src` over `dest` (same file system) and fsync dest's folder; return dest.

    The caller has fsynced `src`'s data already (a download does before verifying it).
    """
    dest = Path(dest)
    with full_disk_names(dest):
        os.replace(src, dest)
        fsync_dir(dest.parent)
    return dest
