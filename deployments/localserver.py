"""A persistent local Prefect server that every `shotflow run` reuses: `shotflow server start|stop|status`.

Without one, each run starts a private Prefect server and waits for it (seconds, and on a fresh
PREFECT_HOME up to a minute): that wait sits before the first shot is sent. `shotflow server
start` starts `prefect server start` (UI included) on 127.0.0.1 in its own session, so it outlives
the command and a Ctrl-C in the terminal never reaches it, creates the global `fal-requests`
concurrency limit on it, and records it in `$PREFECT_HOME/shotflow-server.json` (pid, address,
log). `shotflow run` reads that file before importing Prefect (`find`): when the server it names
is alive and answers /health within a second, the run reports to it (its runs show in that UI,
and the global limit bounds its submits); a stale file is removed and the run starts its own.
`shotflow serve` may record its server the same way (`record`), so runs reuse it too.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

STATE_NAME = "shotflow-server.json"


def prefect_home() -> Path:
    """Prefect's home folder, as Prefect resolves it by default (without importing Prefect)."""
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


def state_file() -> Path:
    return prefect_home() / STATE_NAME


def record(api_url: str, pid: int, *, log: str | None = None, started_by: str = "shotflow server start") -> Path:
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"api_url": api_url, "pid": pid, "log": log, "started_by": started_by}, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def read() -> dict | None:
    try:
        state = json.loads(state_file().read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get("api_url") and isinstance(state.get("pid"), int) else None


def forget(pid: int | None = None) -> None:
    """Remove the record (only if it still names `pid`, when given)."""
    state = read()
    if state is None or pid is None or state.get("pid") == pid:
        state_file().unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def healthy(api_url: str, timeout: float = 1.0) -> bool:
    import httpx

    try:
        return httpx.get(f"{api_url.rstrip('/')}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def find(timeout: float = 1.0) -> str | None:
    """The API address of the recorded local server if it is alive and answers; else None (a
    record of a server that is gone is removed)."""
    state = read()
    if state is None:
        return None
    if not _alive(state["pid"]):
        forget(state["pid"])
        return None
    return state["api_url"] if healthy(state["api_url"], timeout) else None


def start(progress=None, limit: int = 4, limit_name: str = "fal-requests") -> tuple[str, bool]:
    """Start the persistent server (or find the running one); (API address, started now)."""
    from shotflow.deployments.server import PrefectServer

    running = find()
    if running:
        return running, False
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    server = PrefectServer(log=home / "shotflow-server.log", start_timeout=300).launch()
    try:
        server.wait_ready(progress)
        env = {**os.environ, "PREFECT_API_URL": server.api_url}
        _create_limit(env, limit_name, limit)
    except BaseException:
        server.stop()
        raise
    record(server.api_url, server.process.pid, log=str(server.log))
    return server.api_url, True


def _create_limit(env: dict, name: str, limit: int) -> None:
    """The global limit on fal requests in flight, created on the new server (in a child
    process, so this one's Prefect settings stay untouched)."""
    import subprocess
    import sys

    code = (
        f"from shotflow.deployments.storyboards import ensure_concurrency_limit; ensure_concurrency_limit({name!r}, {int(limit)})"
    )
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], env=env, cwd=root, check=True, timeout=120, capture_output=True)


def stop(grace: float = 15) -> bool:
    """Stop the recorded server (its whole process group); False when none was running."""
    state = read()
    if state is None:
        return False
    pid = state["pid"]
    if not _alive(pid):
        forget(pid)
        return False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _alive(pid):
            try:  # our child only when this process started it; else just watch it go
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.1)
        if not _alive(pid):
            break
    forget(pid)
    return True
