"""`shotflow server start|stop|status`: a persistent local Prefect server that `shotflow run`
reuses (no private server started), whose global `fal-requests` limit bounds the run's submits,
and whose API shows the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from fakefal import product_env
from shotflow.tasks.limits import ServerSlots
from waiting import api, wait_for

SHOTFLOW = str(Path(sys.executable).with_name("shotflow"))


def shotflow(*args: str, env: dict, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([SHOTFLOW, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_runs_reuse_the_local_server_and_its_global_limit_bounds_submits(tmp_path, fake_fal, clip_store):
    env = product_env(clip_store)
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), SHOTFLOW_FAL_POLL_INTERVAL="0.1")
    env.pop("PREFECT_API_URL", None)
    sb = tmp_path / "three.yaml"
    sb.write_text(
        "version: 1\noutput: {resolution: 360p, transition: {type: cut}}\nshots:\n"
        + "".join(f"  - {{id: s{i}, prompt: take {i}, model: kling, duration: 5}}\n" for i in range(3))
    )
    assert shotflow("server", "status", env=env, cwd=tmp_path).returncode == 3
    try:
        # the account-wide limit: one fal request in flight, whatever a run's --concurrency
        started = shotflow("server", "start", env={**env, "SHOTFLOW_CONCURRENCY": "1"}, cwd=tmp_path)
        assert started.returncode == 0, started.stdout + started.stderr
        assert "Prefect server started at http://127.0.0.1:" in started.stdout
        state = json.loads((tmp_path / "prefect-home" / "shotflow-server.json").read_text())
        status = shotflow("server", "status", env=env, cwd=tmp_path)
        assert status.returncode == 0 and state["api_url"].removesuffix("/api") in status.stdout

        fake_fal.reset(queue_seconds=0.2, run_seconds=0.6)
        run = shotflow(
            "run", str(sb), "--backend", "fal", "--concurrency", "3", "--out", str(tmp_path / "three.mp4"), env=env, cwd=tmp_path
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "reporting to the local Prefect server at " + state["api_url"].removesuffix("/api") in run.stdout
        assert "starting Prefect" not in run.stdout  # no private server
        assert fake_fal.max_in_flight == 1 and fake_fal.count("submit") == 3
        # the shots were sent before Prefect was imported, each holding a slot taken over the server's REST API
        assert "generating the shots while the flow starts" in run.stdout, run.stdout
        assert "waiting for a slot (of the Prefect server's 'fal-requests' limit)" in run.stdout
        runs = api("POST", f"{state['api_url']}/flow_runs/filter", json={}).json()
        assert [r["state_type"] for r in runs] == ["COMPLETED"]  # the run shows on that server
        # every slot given back, none left to lapse (a minute)
        wait_for("no slot held", lambda: limit(state["api_url"])["active_slots"] == 0, timeout=15)

        # the video gone, the run renders it again from the clip store: no request on fal, so no slot
        # is taken (the only one is held elsewhere meanwhile: a run that took one would wait)
        (tmp_path / "three.mp4").unlink()
        fake_fal.reset(queue_seconds=0.2, run_seconds=0.6)
        elsewhere = ServerSlots(state["api_url"], "fal-requests")
        try:
            with elsewhere("elsewhere", lambda event: None):
                again = shotflow(
                    "run", str(sb), "--backend", "fal", "--out", str(tmp_path / "three.mp4"), env=env, cwd=tmp_path, timeout=300
                )
        finally:
            elsewhere.close()
        assert again.returncode == 0, again.stdout + again.stderr
        assert fake_fal.count("submit") == 0 and "waiting for a slot" not in again.stdout
        assert (tmp_path / "three.mp4").exists()
        wait_for("no slot held", lambda: limit(state["api_url"])["active_slots"] == 0, timeout=15)
        slots_wait_and_stop(state["api_url"])

        # a Ctrl-C while a shot is on fal (sent early, holding the one slot): the run stops, names the
        # paid request, and gives its slot back at once (not when the lease lapses, a minute later)
        sb.write_text(sb.read_text().replace("take 1", "take 1 held"))
        fake_fal.reset(queue_seconds=0.2, run_seconds=0.6)
        fake_fal.hold()
        stopped = subprocess.Popen(
            [SHOTFLOW, "run", str(sb), "--backend", "fal", "--concurrency", "3", "--out", str(tmp_path / "three.mp4")],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        try:
            wait_for("a held request on fal", lambda: fake_fal.count("submit") == 1)
            os.killpg(stopped.pid, signal.SIGINT)
            output = stopped.communicate(timeout=60)[0]
        finally:
            stopped.kill()
            fake_fal.release()
        assert stopped.returncode == 130 and "a re-run collects them without paying again" in output, output
        wait_for("the slot given back", lambda: limit(state["api_url"])["active_slots"] == 0, timeout=20)
        assert fake_fal.count("submit") == 1
    finally:
        stopped = shotflow("server", "stop", env=env, cwd=tmp_path, timeout=120)
    assert "stopped" in stopped.stdout
    assert shotflow("server", "status", env=env, cwd=tmp_path).returncode == 3
    try:
        os.kill(state["pid"], 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive, "the server outlived `shotflow server stop`"


def limit(api_url: str) -> dict:
    return api("GET", f"{api_url}/v2/concurrency_limits/fal-requests").json()


def slots_wait_and_stop(api_url: str) -> None:
    """ServerSlots (the early start's slots) on the real server, its limit 1: a second holder waits
    (and says so) while the slot is held and takes it once given back; a stop ends such a wait
    without a slot; close() gives back a slot still held and takes no more; a limit the server does
    not have bounds nothing; a server that does not answer is not used."""

    from shotflow import interrupt

    slots = ServerSlots(api_url, "fal-requests")
    events, ended = [], []

    def holder(label: str) -> threading.Thread:
        def hold() -> None:
            try:
                with slots(label, events.append):
                    ended.append(label)
            except interrupt.Interrupted as exc:
                ended.append(exc)

        thread = threading.Thread(target=hold)
        thread.start()
        return thread

    try:
        assert slots.answers() and slots.bounded
        with slots("a", events.append):
            assert limit(api_url)["active_slots"] == 1
            waiter = holder("b")
            wait_for("the second holder to wait", lambda: [e.shot for e in events] == ["b"])
            assert events[0].kind == "waiting" and not ended
        waiter.join(60)  # the slot given back here: it takes it
        assert ended == ["b"]

        with slots("c", events.append):
            waiter = holder("d")
            wait_for("the next holder to wait", lambda: [e.shot for e in events] == ["b", "d"])
            interrupt.request_stop()
            waiter.join(30)
        assert isinstance(ended[1], interrupt.Interrupted) and ended[1].shot == "d"
        interrupt.reset()
        wait_for("no slot held", lambda: limit(api_url)["active_slots"] == 0, timeout=15)

        with slots("e", events.append):
            assert limit(api_url)["active_slots"] == 1
            slots.close()  # the run leaves while a holder is still under way: its slot goes back now
            wait_for("the held slot given back", lambda: limit(api_url)["active_slots"] == 0, timeout=15)
        holder("f").join(30)  # and no slot is taken any more
        assert isinstance(ended[2], interrupt.Interrupted) and limit(api_url)["active_slots"] == 0
    finally:
        interrupt.reset()
        slots.close()
    nothing = ServerSlots(api_url, "no-such-limit")
    with nothing("g", events.append):
        pass
    assert nothing.answers() and nothing.bounded is False and len(events) == 2
    nothing.close()
    assert not ServerSlots("http://127.0.0.1:9/api", "fal-requests").answers()
