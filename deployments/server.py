"""A Prefect server as a child process: `prefect server start` on 127.0.0.1, with bounded waits.

`shotflow serve` uses it when no PREFECT_API_URL is set, because Prefect's embedded API runs no
scheduler (schedules would never fire); the deployment tests use it to stand up a real server.
The child gets its own process group, and `stop()` escalates from SIGTERM to SIGKILL.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from shotflow.errors import ShotflowError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prefect_exe() -> str:
    return str(Path(sys.executable).with_name("prefect"))


class PrefectServer:
    def __init__(self, *, port: int | None = None, env: dict[str, str] | None = None, log: Path | None = None, start_timeout: float = 90):
        self.port = port or free_port()
        self.env = {**os.environ, **(env or {})}
        self.env.setdefault("DO_NOT_TRACK", "1")
        self.env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        self.env.pop("PREFECT_API_URL", None)
        for secret in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET"):  # the server never needs them
            self.env.pop(secret, None)
        self.log = log
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "PrefectServer":
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [prefect_exe(), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ShotflowError(f"prefect server exited with code {self.process.returncode} while starting" + (f"; see {self.log}" if self.log else ""))
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise ShotflowError(f"prefect server did not answer on {self.api_url} within {self.start_timeout:.0f} s")

    def stop(self, grace: float = 15) -> None:
        if not self.process or self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> "PrefectServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
