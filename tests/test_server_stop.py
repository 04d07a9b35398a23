"""PrefectServer.stop and stop_soon: the end of a run does not wait for its private server to exit,
and leaves none behind (a detached reaper SIGKILLs one that ignores SIGTERM); `stop` waits, and
escalates to SIGKILL itself. A server launched `with_parent` (a run's private server) ends when the
process that launched it is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from shotflow.deployments.server import PrefectServer

SLEEPS = "import time; print('ready', flush=True); time.sleep(120)"
IGNORES_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(120)"


@pytest.fixture
def server_running():
    """`server_running(code)`: a PrefectServer whose process is `python -c code` in its own session
    (ready once it printed 'ready'); whatever still runs at the end is SIGKILLed."""
    servers: list[PrefectServer] = []

    def start(code: str) -> PrefectServer:
        server = PrefectServer()
        server.process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
        servers.append(server)
        assert server.process.stdout.readline().strip() == b"ready"
        return server

    yield start
    for server in servers:
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.stdout.close()


def gone(proc: subprocess.Popen, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return True
        time.sleep(0.05)
    return False


def test_a_server_that_stops_on_sigterm_is_gone(server_running):
    server = server_running(SLEEPS)
    server.stop_soon(wait=5)
    assert server.process.returncode == -signal.SIGTERM


def test_a_server_still_stopping_is_not_waited_for_and_is_killed_by_the_reaper(server_running):
    server = server_running(IGNORES_TERM)
    server.stop_soon(wait=0, grace=0.5)
    assert server.process.poll() is None  # returned at once, the server still running
    assert gone(server.process, within=20), "the reaper left the server running"
    assert server.process.returncode == -signal.SIGKILL


def test_stop_waits_and_escalates_to_sigkill(server_running):
    server = server_running(IGNORES_TERM)
    server.stop(grace=0.5)
    assert server.process.returncode == -signal.SIGKILL  # returned only once the server was gone


def test_stopping_a_server_that_already_exited_does_nothing():
    server = PrefectServer()
    server.stop_soon()  # never launched
    server.stop()
    server.kill_now()
    server.process = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    server.process.wait(timeout=30)
    server.stop_soon()
    server.stop()
    server.kill_now()
    assert server.process.returncode == 0


# a process that launches a stand-in server `with_parent`, says its pid, and waits to be killed
LAUNCHER = """
import sys, time
from shotflow.deployments.server import PrefectServer

class Sleeper(PrefectServer):
    def command(self):
        return [sys.executable, "-c", "import time; time.sleep(120)"]

server = Sleeper(with_parent=True).launch()
print(server.process.pid, flush=True)
time.sleep(120)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_server_launched_with_its_parent_ends_when_the_parent_is_killed():
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE, start_new_session=True)
    try:
        server_pid = int(launcher.stdout.readline())
        time.sleep(0.5)  # the guard has set its death signal and exec'd the server
        assert alive(server_pid)
        launcher.kill()  # SIGKILL: nothing of the launcher runs to stop its server
        launcher.wait(10)
        deadline = time.monotonic() + 20
        while alive(server_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(server_pid), "the server outlived the process that launched it"
    finally:
        for kill in (lambda: os.killpg(launcher.pid, signal.SIGKILL), lambda: os.kill(server_pid, signal.SIGKILL)):
            try:
                kill()
            except (ProcessLookupError, NameError):
                pass
        launcher.stdout.close()
