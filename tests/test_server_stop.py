"""PrefectServer.stop_soon: the end of a run does not wait for its private server to exit, and
leaves none behind (a detached reaper SIGKILLs one that ignores SIGTERM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from shotflow.deployments.server import PrefectServer

IGNORES_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(120)"


def child(code: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout.readline().strip() == b"ready"
    return proc


def gone(proc: subprocess.Popen, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return True
        time.sleep(0.05)
    return False


def test_a_server_that_stops_on_sigterm_is_gone():
    server = PrefectServer()
    server.process = child("import time; print('ready', flush=True); time.sleep(120)")
    try:
        server.stop_soon(wait=5)
        assert server.process.returncode == -signal.SIGTERM
    finally:
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGKILL)


def test_a_server_still_stopping_is_not_waited_for_and_is_killed_by_the_reaper():
    server = PrefectServer()
    server.process = child(IGNORES_TERM)
    try:
        server.stop_soon(wait=0, grace=0.5)
        assert server.process.poll() is None  # returned at once, the server still running
        assert gone(server.process, within=20), "the reaper left the server running"
        assert server.process.returncode == -signal.SIGKILL
    finally:
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGKILL)


def test_stopping_a_server_that_already_exited_does_nothing():
    server = PrefectServer()
    server.stop_soon()  # never launched
    server.process = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    server.process.wait(timeout=30)
    server.stop_soon()
