"""A Prefect server as a child process: `prefect server start` on 127.0.0.1, with bounded waits.

`shotflow serve` uses it when no PREFECT_API_URL is set, because Prefect's embedded API runs no
scheduler (schedules would never fire); `shotflow run` uses one (without UI or scheduler) instead
of Prefect's embedded server, which starts in the terminal's process group (so Ctrl-C killed it
before the run's final state was written) and gives a fresh database only 20 s to prepare; the
deployment tests use it to stand up a real server. The child gets its own session, so a Ctrl-C
in the terminal never reaches it, and `stop()` escalates from SIGTERM to SIGKILL. A server that
belongs to one process (`with_parent=True`: a run's private server, `shotflow serve`'s) is also
sent SIGTERM by the kernel when that process dies, even by SIGKILL (Linux's PR_SET_PDEATHSIG,
set by a two-line guard that then execs Prefect), so a killed run leaves no server behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import httpx

from shotflow.errors import ShotflowError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prefect_exe() -> str:
    return str(Path(sys.executable).with_name("prefect"))


def check_api(url: str, timeout: float = 5) -> None:
    """Raise a two-line ShotflowError unless a Prefect API answers at `url` (PREFECT_API_URL)."""
    advice = "start that server (prefect server start), or unset PREFECT_API_URL and shotflow starts a private one for the run"
    try:
        answer = httpx.get(f"{url.rstrip('/')}/health", timeout=timeout)
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        raise ShotflowError(f"PREFECT_API_URL is {url}, but no Prefect server answers there ({reason}):\n  {advice}") from None
    if answer.status_code == 404 or answer.status_code >= 500:
        raise ShotflowError(
            f"PREFECT_API_URL is {url}, but it answers {answer.status_code} at /health, not as a Prefect API does:\n  {advice}"
        )


# Run as `python -c _DIE_WITH_PARENT PARENT_PID COMMAND...`: ask the kernel for a SIGTERM when the
# parent dies (PR_SET_PDEATHSIG = 1; Linux only, elsewhere the guard just execs), give up if it died
# already, then become COMMAND (the setting survives exec). Popen runs in the parent's main thread,
# whose end is the process's end.
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "try:\n    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"
    "except (OSError, AttributeError):\n    pass\n"
    "if os.getppid() != int(sys.argv[1]):\n    sys.exit(0)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


class PrefectServer:
    def __init__(
        self,
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
        log: Path | None = None,
        start_timeout: float = 90,
        api_only: bool = False,
        with_parent: bool = False,
    ):
        self.port = port or free_port()
        self.env = {**os.environ, **(env or {})}
        self.env.setdefault("DO_NOT_TRACK", "1")
        self.env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        if api_only:  # one run's private server: nobody browses it, nothing is scheduled on it
            self.env.update(
                PREFECT_SERVER_UI_ENABLED="false",
                PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",
                PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED="false",
            )
        self.env.pop("PREFECT_API_URL", None)
        # The UI asks /ui-settings where its API is; unset, Prefect answers port 4200 (its default,
        # not ours), and the page loads but shows nothing. Point it, and every link, at this port.
        self.env.update(
            PREFECT_SERVER_API_HOST="127.0.0.1",
            PREFECT_SERVER_API_PORT=str(self.port),
            PREFECT_UI_API_URL=self.api_url,
            PREFECT_SERVER_UI_API_URL=self.api_url,
            PREFECT_UI_URL=self.ui_url,
        )
        for secret in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET"):  # the server never needs them
            self.env.pop(secret, None)
        self.log = log
        self.with_parent = with_parent
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        self.started = 0.0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, progress: Callable[[float], None] | None = None, every: float = 10) -> "PrefectServer":
        """Launch the server and wait until it answers; `progress(elapsed)` is called every `every` s."""
        return self.launch().wait_ready(progress, every)

    def command(self) -> list[str]:
        return [prefect_exe(), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]

    def launch(self) -> "PrefectServer":
        """Start the process without waiting for it (the caller can do other work meanwhile)."""
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        command = self.command()
        if self.with_parent:
            command = [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *command]
        try:
            self.process = subprocess.Popen(
                command,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            if self.log:
                out.close()
        self.started = time.monotonic()
        return self

    def wait_ready(self, progress: Callable[[float], None] | None = None, every: float = 10) -> "PrefectServer":
        """Bounded wait for /health; stops the server and raises ShotflowError if it never answers."""
        assert self.process is not None, "launch() first"
        deadline = self.started + self.start_timeout
        next_report = self.started + every
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise ShotflowError(
                        f"prefect server exited with code {self.process.returncode} while starting"
                        + (f"; see {self.log}" if self.log else "")
                    )
                try:
                    if client.get(f"{self.api_url}/health").status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                now = time.monotonic()
                if progress and now >= next_report:
                    progress(now - self.started)
                    next_report += every
                time.sleep(0.25)
        self.stop()
        raise ShotflowError(
            f"prefect server did not answer on {self.api_url} within {self.start_timeout:.0f} s"
            + (f"; see {self.log}" if self.log else "")
        )

    @staticmethod
    def temporary_log() -> Path:
        fd, name = tempfile.mkstemp(prefix="shotflow-prefect-server-", suffix=".log")
        os.close(fd)
        return Path(name)

    def remove_log(self) -> None:
        """Forget the log of a server that started and stopped as expected."""
        if self.log:
            self.log.unlink(missing_ok=True)

    def _running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _signal_group(self, sig: int) -> bool:
        """Send `sig` to the server's process group (it leads its own session); False if the group is gone."""
        try:
            os.killpg(self.process.pid, sig)
            return True
        except ProcessLookupError:
            return False

    def _exits_within(self, seconds: float) -> bool:
        try:
            self.process.wait(timeout=seconds)
            return True
        except subprocess.TimeoutExpired:
            return False

    def kill_now(self) -> None:
        """For an immediate exit: signal the server's group without waiting for it."""
        if self._running():
            self._signal_group(signal.SIGTERM)

    def stop(self, grace: float = 15) -> None:
        """SIGTERM the server's group, and SIGKILL it if it still runs `grace` s later."""
        if not self._running():
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
            if not self._signal_group(sig) or self._exits_within(wait):
                return

    def stop_soon(self, wait: float = 0.0, grace: float = 15) -> None:
        """`stop` without waiting for the exit: SIGTERM the server's group, wait at most `wait` s,
        and leave a server still stopping to a detached reaper (a shell in its own session) that
        SIGKILLs the group if it still runs `grace` s later. For the end of a run whose final
        state is written: nothing is left to wait for, and no server is left behind."""
        if not self._running() or not self._signal_group(signal.SIGTERM) or self._exits_within(wait):
            return
        pgid = self.process.pid  # the server leads its own session, so its group
        ticks = max(1, round(grace * 10))
        reaper = (
            f"i=0; while kill -s 0 -- -{pgid} 2>/dev/null && [ $i -lt {ticks} ]; do sleep 0.1; i=$((i+1)); done; "
            f"kill -s KILL -- -{pgid} 2>/dev/null; exit 0"
        )
        subprocess.Popen(
            ["/bin/sh", "-c", reaper],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def __enter__(self) -> "PrefectServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
