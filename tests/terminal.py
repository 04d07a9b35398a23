"""A shotflow command on a pseudo-terminal, for the tests of what it asks a person (consent to pay
again, the review gates): its stdin, stdout and stderr are the terminal; the test reads what it
printed, waits for a prompt and types answers."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path


class Terminal:
    """`shotflow ARGS` with a pseudo-terminal as its stdin, stdout and stderr."""

    def __init__(self, args: list[str], cwd: Path, env: dict):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shotflow.cli", *args], cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
            start_new_session=True,
        )  # fmt: skip
        os.close(slave)
        self.seen = b""

    def expect(self, text: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.seen and time.monotonic() < deadline and self.proc.poll() is None:
            self._read(0.5)
        assert text.encode() in self.seen, self.seen.decode(errors="replace")[-3000:]

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def answer(self, text: str) -> None:
        self.type(text.encode() + b"\n")

    def wait(self, timeout: float = 240) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.5)
        assert self.proc.poll() is not None, "still running:\n" + self.text[-3000:]
        code = self.proc.wait(timeout=5)
        while self._read(0.2):
            pass
        return code

    def _read(self, timeout: float) -> bool:
        if not select.select([self.master], [], [], timeout)[0]:
            return False
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # the other end is closed
            return False
        self.seen += chunk
        return bool(chunk)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        os.close(self.master)

    @property
    def text(self) -> str:
        return self.seen.decode(errors="replace")


def answer_once(args: list[str], keys: bytes, cwd: Path, env: dict, *, prompt: str = "[y/N]", timeout: float = 120):
    """`shotflow ARGS` on a terminal, answering its one question (`prompt`) with `keys`: (exit code, all it printed)."""
    term = Terminal(args, cwd, env)
    try:
        term.expect(prompt, timeout)
        term.type(keys)
        return term.wait(timeout), term.text
    finally:
        term.close()
