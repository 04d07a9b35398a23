"""A new user's very first run: a fresh HOME and PREFECT_HOME, the README's demo command, and
another process keeping a core busy (a laptop with a browser open). It must succeed, and say
what it is doing while Prefect prepares its database."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# the demo renders four 720p animatics on a busy 2-core machine: well over a minute
pytestmark = pytest.mark.slow


def test_the_first_run_from_a_fresh_home_succeeds_next_to_a_busy_core(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    shutil.copytree(ROOT / "pipelines", work / "pipelines")
    env = {
        k: v
        for k, v in os.environ.items()
        # nothing a new user would have: no Prefect settings, no clip store, no key
        if not k.startswith(("PREFECT_", "SHOTFLOW_", "FAL_"))
    }
    env.update(HOME=str(home), PREFECT_HOME=str(home / ".prefect"), DO_NOT_TRACK="1")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
    try:
        run = subprocess.run(
            [str(Path(sys.executable).with_name("shotflow")), "run", "pipelines/demo.yaml", "--backend", "preview"],
            cwd=work, env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    finally:
        os.killpg(busy.pid, signal.SIGKILL)
        busy.wait(timeout=10)
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    assert "Traceback" not in run.stderr and "Timed out" not in out + run.stderr
    # it says what it waits for, from the start of the wait, and how long it took
    assert "shotflow: starting Prefect: a private server at http://127.0.0.1:" in out
    assert "its first start prepares a database" in out
    ready = re.search(r"shotflow: Prefect ready at \S+ after (\d+) s", out)
    assert ready, out
    if int(ready.group(1)) >= 11:  # a wait longer than ten seconds is reported every ten
        assert "shotflow: still preparing Prefect's database (10 s)..." in out
    assert (work / "out" / "neon-tokyo.mp4").stat().st_size > 0
    assert "video:" in out and "neon-tokyo.mp4 (22.50 s)" in out
    assert (home / ".prefect" / "prefect.db").is_file()  # the run used the fresh home
