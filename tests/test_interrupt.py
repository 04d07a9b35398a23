"""The stop flag (shotflow.interrupt), Ctrl-C/SIGTERM on the real CLI's process group, and the private
Prefect server a run starts (its own session, a bounded start that says what it waits for)."""

from __future__ import annotations

import functools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import pickle  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import fakefal  # first: points fal_client and httpx at the fake server
import httpx  # noqa: E402
import pytest  # noqa: E402
import waiting  # noqa: E402
from shotflow.deployments.server import PrefectServer  # noqa: E402

from shotflow import interrupt  # noqa: E402
from shotflow.errors import GenerationError, ShotflowError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_the_stop_flag_is_raised_and_cleared():
    interrupt.reset()
    assert not interrupt.stop_requested()
    interrupt.request_stop()
    assert interrupt.stop_requested()
    assert interrupt.wait(5)  # returns at once once stopped
    interrupt.reset()
    assert not interrupt.stop_requested()
    assert not interrupt.wait(0)


def test_interrupted_is_a_permanent_generation_error_that_pickles():
    err = interrupt.Interrupted("opening")
    assert isinstance(err, GenerationError)
    assert not err.transient
    assert "opening" in str(err) and "nothing paid" in str(err)
    copy = pickle.loads(pickle.dumps(err))
    assert isinstance(copy, interrupt.Interrupted)
    assert str(copy) == str(err) and copy.transient is False


# --- Ctrl-C and SIGTERM on the real CLI's process group ----------------------------------------

N = 4
BOARD = "version: 1\ntitle: Stop\nshots:\n" + "".join(
    f"  - {{id: s{i}, prompt: 'stop shot {i}', model: pika, duration: 5}}\n" for i in range(N)
)


# these runs hold fal's jobs and signal them: poll more often than the shared default
wait_for = functools.partial(waiting.wait_for, interval=0.1)


def journaled_requests(cache: Path) -> dict[str, str]:
    """shot -> request id of every request the journal knows an id of."""
    found = {}
    for path in sorted((cache / "jobs").glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("request_id"):
            found[record["shot"]] = record["request_id"]
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with waiting.prefect_server(tmp_path_factory.mktemp("prefect-home"), api_only=True, start_timeout=300) as srv:
        yield srv


class Run:
    """`shotflow run` in its own session, as a terminal would have it (the signal goes to the group)."""

    def __init__(self, tmp_path: Path, env: dict[str, str], *extra: str):
        board = tmp_path / "stop.yaml"
        board.write_text(BOARD)
        self.out, self.err = tmp_path / f"stdout-{time.monotonic_ns()}", tmp_path / f"stderr-{time.monotonic_ns()}"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "shotflow.cli", "run", str(board), "--out", str(tmp_path / "stop.mp4"), *extra],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def signal(self, sig) -> None:
        os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"shotflow run did not exit within {timeout:.0f} s\n{self.output()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)


def run_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = fakefal.product_env(tmp_path / "cache")
    env.pop("PREFECT_API_URL", None)
    return env | {"SHOTFLOW_FAL_POLL_INTERVAL": "0.1", **extra}


def server_environ(port: str) -> bytes:
    """The environment of the `prefect server start` listening on `port` (Linux /proc)."""
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if b"server" in argv and b"start" in argv and port.encode() in argv:
                return (proc / "environ").read_bytes()
        except OSError:
            continue
    pytest.fail(f"no prefect server process listens on port {port}")


def flow_runs(server) -> list[dict]:
    return waiting.api("POST", f"{server.api_url}/flow_runs/filter", json={"sort": "EXPECTED_START_TIME_ASC"}).json()


def flow_running(api_url: str) -> bool:
    try:
        r = httpx.post(f"{api_url}/flow_runs/filter", json={}, timeout=5)
        return any(run["state"]["type"] == "RUNNING" for run in r.json())
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return False


def test_ctrl_c_stops_paying_ends_cancelled_and_a_rerun_pays_nothing_new(fake_fal, tmp_path, server):
    cache = tmp_path / "cache"
    env = run_env(tmp_path, PREFECT_API_URL=server.api_url, PREFECT_HOME=str(tmp_path / "client-home"))
    fake_fal.hold()  # jobs stay in progress: the Ctrl-C lands while two are paid and running
    first = Run(tmp_path, env, "--concurrency", "2")
    try:
        wait_for("two journaled submits", lambda: len(journaled_requests(cache)) == 2, diagnostics=first.output)
        assert fake_fal.count("submit") == 2
        accepted = journaled_requests(cache)
        # sent before the flow run (the early start, each holding a slot of the server's limit): the
        # Ctrl-C comes once the flow runs and waits on them
        wait_for("the flow run", lambda: flow_running(server.api_url), diagnostics=first.output)
        first.signal(signal.SIGINT)
        code = first.wait(timeout=30)  # fal holds both jobs: an exit at all means it did not wait for them
    finally:
        first.kill()
    text = first.output()
    assert code == 130, text
    # still running on fal (held, not cancelled): the run exited without waiting for them
    assert all(fake_fal.phase(fake_fal.jobs[request])[0] != "COMPLETED" for request in accepted.values())
    assert "Traceback" not in text
    assert "a re-run collects them without paying again" in text
    for shot, request in accepted.items():
        assert f"'{shot}' (fal request {request}" in text, text
    assert fake_fal.count("submit") == 2, "a shot was submitted after Ctrl-C"
    assert journaled_requests(cache) == accepted  # still journaled, still re-attachable

    (run,) = flow_runs(server)
    assert run["state"]["type"] == "CANCELLED", run["state"]
    assert "re-run collects them without paying again" in run["state"]["message"]

    fake_fal.release()
    second = Run(tmp_path, env, "--concurrency", "2")
    try:
        code = second.wait(timeout=240)
    finally:
        second.kill()
    assert code == 0, second.output()
    assert fake_fal.count("submit") == N  # the two accepted ones re-attached, the two others sent once
    assert set(fake_fal.billed.values()) == {1}, fake_fal.billed
    assert [r["state"]["type"] for r in flow_runs(server)] == ["CANCELLED", "COMPLETED"]


def test_a_second_ctrl_c_exits_at_once(fake_fal, tmp_path, server):
    cache = tmp_path / "cache"
    env = run_env(tmp_path, PREFECT_API_URL=server.api_url, PREFECT_HOME=str(tmp_path / "client-home"))
    fake_fal.hold()
    run = Run(tmp_path, env, "--concurrency", "1")
    try:
        wait_for("a journaled submit", lambda: len(journaled_requests(cache)) == 1, diagnostics=run.output)
        wait_for("the flow run", lambda: flow_running(server.api_url), diagnostics=run.output)
        run.signal(signal.SIGINT)
        time.sleep(0.3)
        run.signal(signal.SIGINT)
        code = run.wait(timeout=30)
    finally:
        run.kill()
        fake_fal.release()
    # the second Ctrl-C's own exit (os._exit), not the end of the first one's stop
    assert code == 130 and "stopped at once; paid requests stay journaled" in run.output(), run.output()
    assert "Traceback" not in run.output()
    assert fake_fal.count("submit") == 1


def test_sigterm_stops_a_run_on_its_private_prefect_server_and_stops_that_server(fake_fal, tmp_path):
    cache = tmp_path / "cache"
    env = run_env(tmp_path, PREFECT_HOME=str(tmp_path / "prefect-home"))
    fake_fal.hold()
    run = Run(tmp_path, env, "--concurrency", "2")
    try:
        wait_for("two journaled submits", lambda: len(journaled_requests(cache)) == 2, timeout=240, diagnostics=run.output)
        # the early start submits before Prefect is ready: the SIGTERM is meant for the running flow
        ready = wait_for(
            "Prefect ready",
            lambda: re.search(r"Prefect ready at (http://127\.0\.0\.1:(\d+)/api)", run.output()),
            timeout=240,
            diagnostics=run.output,
        )
        wait_for("the running flow run", lambda: flow_running(ready.group(1)), timeout=120, interval=0.25, diagnostics=run.output)
        environ = server_environ(ready.group(2))
        assert b"PREFECT_HOME=" in environ and b"FAL_KEY" not in environ and fakefal.KEY.split(":")[1].encode() not in environ
        run.signal(signal.SIGTERM)
        t0 = time.monotonic()
        code = run.wait(timeout=60)
        took = time.monotonic() - t0
    finally:
        run.kill()
        fake_fal.release()
    text = run.output()
    # fal holds both jobs until the end: a run that ends at all did not wait for them (the bound only
    # keeps a hang from passing; the stop's own waits, a grace and the server's exit, vary with load)
    assert code == 130 and took < 45, f"{code} after {took:.1f} s\n{text}"
    assert "Traceback" not in text and "a re-run collects them without paying again" in text
    assert fake_fal.count("submit") == 2
    with pytest.raises(httpx.HTTPError):  # the private server is gone with the run
        httpx.get(f"{ready.group(1)}/health", timeout=2)


def test_ctrl_c_while_prefect_starts_exits_and_leaves_no_server_behind(tmp_path):
    env = run_env(tmp_path, PREFECT_HOME=str(tmp_path / "prefect-home"))
    env.pop("FAL_KEY")
    run = Run(tmp_path, env, "--backend", "preview")
    try:
        starting = wait_for(
            "the private server's address",
            lambda: re.search(r"a private server at (http://127\.0\.0\.1:\d+)", run.output()),
            diagnostics=run.output,
        )
        run.signal(signal.SIGINT)
        code = run.wait(timeout=60)
    finally:
        run.kill()
    text = run.output()
    assert code == 130 and "Traceback" not in text, text
    assert "shotflow: interrupted" in text and "Prefect ready" not in text
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{starting.group(1)}/api/health", timeout=2)


def test_a_server_that_does_not_answer_in_time_is_stopped_and_its_log_named(tmp_path):
    log = tmp_path / "server.log"
    waited = []
    srv = PrefectServer(env={"PREFECT_HOME": str(tmp_path / "home")}, log=log, api_only=True, start_timeout=1.5)
    with pytest.raises(ShotflowError, match=rf"did not answer on {re.escape(srv.api_url)} within 2 s; see {re.escape(str(log))}"):
        srv.start(progress=waited.append, every=0.5)
    assert waited and all(0.5 <= s < 1.6 for s in waited)  # it said it was still waiting
    assert srv.process.poll() is not None  # and stopped what it started


def test_a_ctrl_c_before_the_flow_whose_interrupt_python_dropped_still_stops_the_run():
    """Python drops an exception raised inside a weakref callback ("Exception ignored in"): a
    Ctrl-C whose KeyboardInterrupt landed there must not let the flow start (and pay) anyway."""
    import weakref

    from shotflow.cli.flowrun import Signals, run_flow

    signals = Signals()

    class Thing:
        pass

    thing = Thing()
    ref = weakref.ref(thing, lambda _: signals(signal.SIGINT, None))
    del thing  # the handler's KeyboardInterrupt is dropped here
    assert ref() is None and interrupt.stop_requested()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_flow(None, "http://127.0.0.1:9/api", {}, signals)  # stops before anything starts
    finally:
        interrupt.reset()
