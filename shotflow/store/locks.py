"""The one file lock of the cache: an exclusive `flock` on a lock file, across threads and processes.

Used by the clip store (`clips/.locks/<key>.lock`), the job journal (`jobs/<key>.lock`) and the
frames of continuing shots (`frames/.locks/<name>.lock`). flock belongs to an open file, so each
call opens its own descriptor: two threads of one process exclude each other as two processes
do, and a thread that takes the same lock twice waits for itself (the journal, which needs that,
keeps its own per-thread note of what it holds). The kernel drops the lock when its holder exits,
even on SIGKILL, so there are no stale locks to break. The lock file is empty and stays behind.
(flock: Linux and macOS, local disks or NFS with lock support.)
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def flocked(
    path: Path, *, timeout: float | None = None, poll: float = 0.02, timed_out: Callable[[], Exception] | None = None
) -> Iterator[None]:
    """Hold the exclusive flock of the file `path` (made, with its folder, if missing).

    Without `timeout`, wait as long as it takes. With one, try every `poll` seconds and after
    `timeout` seconds raise `timed_out()` (a TimeoutError naming `path` by default).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            _flock_within(fd, path, timeout, poll, timed_out)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _flock_within(fd: int, path: Path, timeout: float, poll: float, timed_out: Callable[[], Exception] | None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
        if time.monotonic() >= deadline:
            raise timed_out() if timed_out else TimeoutError(f"{path}: held by another run for over {timeout:.0f} s")
        time.sleep(poll)
