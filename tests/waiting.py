"""Bounded waits for tests that start real processes: poll something observable until it holds,
and fail saying what was awaited (with the process's own log) instead of hanging; stop a process
group with a bounded wait; a real Prefect server for a test module."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest


def wait_for(what: str, check, timeout: float = 120, interval: float = 0.5, diagnostics=lambda: ""):
    """`check()`'s first truthy value, polled every `interval` s for at most `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{diagnostics()}")


BUSY = (429, 502, 503)  # what a loaded Prefect server answers while SQLite is busy; its own client retries these


def api(method: str, url: str, timeout: float = 60, **kwargs):
    """One call to a Prefect server's REST API, retried like Prefect's client retries it: a busy
    answer (429/502/503) or a dropped connection is tried again for at most `timeout` s; any other
    answer is returned, checked with raise_for_status."""
    import httpx

    deadline = time.monotonic() + timeout
    delay = 0.5
    while True:
        try:
            answer = httpx.request(method, url, timeout=30, **kwargs)
            if answer.status_code not in BUSY:
                return answer.raise_for_status()
            problem = f"{answer.status_code} {answer.text[:200]}"
        except httpx.TransportError as e:
            problem = repr(e)
        if time.monotonic() + delay > deadline:
            pytest.fail(f"{method} {url}: Prefect still answered {problem} after {timeout:.0f} s")
        time.sleep(delay)
        delay = min(delay * 2, 5)


def tail(path: Path, n: int = 40) -> str:
    """The last `n` lines of a process's log under its name, for a failure message ('' if unreadable)."""
    try:
        return f"--- {path.name} ---\n" + "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def stop_group(proc: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 20) -> int | None:
    """Stop a process started in its own session: `sig` to its group, SIGKILL if it still runs
    `grace` s later; its exit code (None if even SIGKILL did not end it within 5 s)."""
    for s, wait in ((sig, grace), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            return proc.returncode
        try:
            os.killpg(proc.pid, s)
        except ProcessLookupError:
            break
        try:
            return proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return proc.poll()


@contextmanager
def prefect_server(home: Path, **options):
    """A real `prefect server start` (shotflow's PrefectServer with `options`) whose PREFECT_HOME
    and log are in `home`: a start that fails fails the test with the server's log; stopped after."""
    from shotflow.deployments.server import PrefectServer

    log = home / "server.log"
    server = PrefectServer(env={"PREFECT_HOME": str(home)}, log=log, **options)
    try:
        try:
            server.start()
        except Exception as exc:
            pytest.fail(f"prefect server did not start: {exc}\n{tail(log)}")
        yield server
    finally:
        server.stop()


@contextmanager
def shotflow_serve(pipelines: Path, cwd: Path, env: dict, log_path: Path, timeout: float = 180):
    """`shotflow serve --pipelines PIPELINES` running (its output in `log_path`): yields the Prefect UI
    address it printed; stopped (its whole process group) on leaving."""
    shotflow = str(Path(sys.executable).with_name("shotflow"))
    with open(log_path, "wb") as log:
        serve = subprocess.Popen(
            [shotflow, "serve", "--pipelines", str(pipelines)],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        printed = wait_for(
            "serve to print the UI address",
            lambda: re.search(r"Prefect UI at (http://\S+)", log_path.read_text()),
            timeout,
            diagnostics=lambda: tail(log_path),
        )
        yield printed.group(1)
    finally:
        stop_group(serve, grace=30)
