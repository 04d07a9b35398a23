"""`shotflow server start|stop|status`: a persistent local Prefect server that `shotflow run`
reuses (no private server started), whose global `fal-requests` limit bounds the run's submits,
and whose API shows the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fakefal import product_env
from waiting import api

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
        runs = api("POST", f"{state['api_url']}/flow_runs/filter", json={}).json()
        assert [r["state_type"] for r in runs] == ["COMPLETED"]  # the run shows on that server
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
