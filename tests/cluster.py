"""A team's cluster on one machine: the harness of tests/test_cluster.py and `make cluster-demo`.

`Cluster(folder)` starts, each in its own process group and stopped on leaving (bounded waits):
a real `prefect server start` (its own PREFECT_HOME), Debian's redis-server with a password, moto's
S3 (tests/teamservers.py) with the bucket `shotflow-team`, the fake fal server (tests/fakefal.py,
in this process: it counts what fal would bill), a Prefect Secret block holding the team's secrets
(the AWS keys, the Redis URL with its password, the fal key), the process work pool
`shotflow-team` with the `fal-requests` limit and a deployment per storyboard of
tests/fixtures/cluster/ (made by `shotflow deploy`, as an operator would: the store, the lease TTL,
the S3 endpoint and the Secret block's name reach the workers as job variables), and two
`prefect worker start` processes, "machines" with their own HOME, PREFECT_HOME and
SHOTFLOW_CACHE_DIR, whose environment holds no secret and no store setting.

`kill_machine(name)` is a machine dying: SIGKILL to the worker's process group and to the group of
every process it started (Prefect starts each flow run's process in a session of its own).

    python tests/cluster.py up      # make cluster-demo: start it all, render the three storyboards,
                                    # print where the videos are; it keeps running (pid file)
    python tests/cluster.py down    # make cluster-down: stop everything `up` started
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # run as a script (make cluster-demo): the tests' helpers are beside it
    sys.path.insert(0, str(HERE))

import fakefal  # noqa: E402
import teamservers  # noqa: E402
from waiting import api, stop_group, tail, wait_for  # noqa: E402

ROOT = HERE.parent
BOARDS = HERE / "fixtures" / "cluster"
POOL = "shotflow-team"
BUCKET = "shotflow-team"
SECRETS_BLOCK = "shotflow-team-secrets"
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED", "CANCELLING")
# what a machine's environment must not inherit from this process: the team's settings come from
# the deployment's job variables, its secrets from the Secret block
NOT_INHERITED = (
    "PREFECT_API_URL",
    "PREFECT_API_KEY",
    "FAL_KEY",
    "FAL_KEY_ID",
    "FAL_KEY_SECRET",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "SHOTFLOW_STORE",
    "SHOTFLOW_REDIS_URL",
    "SHOTFLOW_LEASE_TTL",
    "SHOTFLOW_SECRETS_BLOCK",
    "SHOTFLOW_FAL_KEY_BLOCK",
    "SHOTFLOW_CACHE_DIR",
)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    env.update(DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false", **extra)
    return env


@contextmanager
def redis_with_password(folder: Path, password: str):
    """redis-server on a free 127.0.0.1 port that asks for `password`: yields its URL (with it)."""
    import redis

    port = teamservers.free_port()
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    args = [teamservers.redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(folder), "--requirepass", password]

    def pong() -> bool:
        try:
            return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    with teamservers._server(args, folder / "redis.log", pong, f"redis-server on 127.0.0.1:{port}"):
        yield url


@dataclass
class Machine:
    """One worker's machine: its folder (HOME), its cache, its log and its worker process."""

    name: str
    folder: Path
    process: subprocess.Popen | None = None

    @property
    def cache(self) -> Path:
        return self.folder / "cache"

    @property
    def log(self) -> Path:
        return self.folder / "worker.log"


def _children() -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        found.setdefault(ppid, []).append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    """Every process under `pid` (children, their children...), from /proc."""
    children, found, todo = _children(), [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


class Cluster:
    def __init__(
        self,
        folder: Path,
        *,
        limit: int = 2,
        lease_ttl: int = 10,
        worker_limit: int = 2,
        machines=("a", "b"),
        shared: bool = True,
        ui: bool = False,
    ):
        """`shared=False` (bench_team's baseline): the same cluster, but the deployments carry no
        store, so each machine keeps its clips and journal in its own cache (one machine's setup)."""
        self.folder = Path(folder)
        self.shared = shared
        self.ui = ui
        self.limit = limit
        self.lease_ttl = lease_ttl
        self.worker_limit = worker_limit
        self.machines = {name: Machine(name, self.folder / f"machine-{name}") for name in machines}
        self.stack = ExitStack()
        self.fake: fakefal.FakeFal | None = None
        self.server = None
        self.s3 = ""
        self.redis_url = ""

    # --- start and stop ------------------------------------------------------------------------

    def __enter__(self) -> "Cluster":
        try:
            self.start()
        except BaseException:
            self.stack.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stack.close()

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fake = fakefal.ensure_server()  # before anything here imports fal_client
        self.fake.reset(queue_seconds=0.5, run_seconds=1.5)
        for sub in ("s3", "redis", "prefect-home", "deployer-home"):
            (self.folder / sub).mkdir(exist_ok=True)
        self.s3 = self.stack.enter_context(teamservers.s3_server(self.folder / "s3"))
        teamservers.s3_client(self.s3).create_bucket(Bucket=BUCKET)
        self.redis_url = self.stack.enter_context(redis_with_password(self.folder / "redis", "team-redis-pw"))
        self.server = self.stack.enter_context(self._prefect_server())
        self._secret_block()
        self._deploy()
        for machine in self.machines.values():
            self.start_worker(machine.name)

    @contextmanager
    def _prefect_server(self):
        from shotflow.deployments.server import PrefectServer

        log = self.folder / "prefect-server.log"
        env = {
            "PREFECT_HOME": str(self.folder / "prefect-home"),
            # SQLite, as the tests allow (a team's server uses PostgreSQL): two workers' flows write at
            # once, so give a locked database time, and spare it the services nothing here needs (the
            # storyboards' schedules are inactive; a rescheduled run is not late)
            "PREFECT_SERVER_DATABASE_TIMEOUT": "60",
            "PREFECT_SERVER_DATABASE_CONNECTION_TIMEOUT": "60",
            "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_ENABLED": "false",
        }
        if not self.ui:
            env["PREFECT_SERVER_UI_ENABLED"] = "false"
        server = PrefectServer(env=env, log=log, start_timeout=300)
        try:
            server.start()
            yield server
        finally:
            server.stop()

    @property
    def api_url(self) -> str:
        return self.server.api_url

    @property
    def store_url(self) -> str:
        return f"s3://{BUCKET}/team"

    def deployer_env(self) -> dict[str, str]:
        """Where `shotflow deploy` runs: the operator's shell, with the team's settings (the Redis URL
        with its password too: deploy leaves it to the Secret block)."""
        if not self.shared:
            return clean_env(PREFECT_API_URL=self.api_url, PREFECT_HOME=str(self.folder / "deployer-home"))
        return clean_env(
            PREFECT_API_URL=self.api_url,
            PREFECT_HOME=str(self.folder / "deployer-home"),
            SHOTFLOW_STORE=self.store_url,
            SHOTFLOW_REDIS_URL=self.redis_url,
            SHOTFLOW_LEASE_TTL=str(self.lease_ttl),
            SHOTFLOW_SECRETS_BLOCK=SECRETS_BLOCK,
            AWS_ENDPOINT_URL_S3=self.s3,
            AWS_REGION=teamservers.CREDENTIALS["AWS_REGION"],
        )

    def secrets(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": teamservers.CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": teamservers.CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "SHOTFLOW_REDIS_URL": self.redis_url,
            "FAL_KEY": fakefal.KEY,
        }

    def _secret_block(self) -> None:
        code = (
            "import json, sys\nfrom prefect.blocks.system import Secret\n"
            "Secret(value=json.loads(sys.stdin.read())).save(sys.argv[1], overwrite=True)\n"
        )
        self._run([sys.executable, "-c", code, SECRETS_BLOCK], "the Secret block", stdin=json.dumps(self.secrets()))

    def _deploy(self) -> None:
        shotflow = str(Path(sys.executable).with_name("shotflow"))
        argv = [shotflow, "deploy", "--pool", POOL, "--pipelines", str(BOARDS), "--source", str(ROOT), "--limit", str(self.limit)]
        self.deploy_output = self._run(argv, "shotflow deploy")

    def _run(self, argv: list[str], what: str, stdin: str | None = None) -> str:
        r = subprocess.run(argv, cwd=ROOT, env=self.deployer_env(), input=stdin, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"{what} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        return r.stdout

    def worker_env(self, machine: Machine) -> dict[str, str]:
        home = machine.folder / "home"
        return clean_env(
            HOME=str(home),
            PREFECT_HOME=str(home / ".prefect"),
            PREFECT_API_URL=self.api_url,
            PREFECT_WORKER_QUERY_SECONDS="2",
            PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="INFO",
            SHOTFLOW_CACHE_DIR=str(machine.cache),
            # the fake fal server's media host (its queue host and CA come from this process's
            # environment, set by fakefal.ensure_server), and quick polls
            SHOTFLOW_MEDIA_HOSTS="127.0.0.1",
            SHOTFLOW_FAL_POLL_INTERVAL="0.2",
            SHOTFLOW_FAL_RETRY_BACKOFF="0.1",
        )

    def start_worker(self, name: str) -> Machine:
        machine = self.machines[name]
        (machine.folder / "home").mkdir(parents=True, exist_ok=True)
        argv = [str(Path(sys.executable).with_name("prefect")), "worker", "start", "--pool", POOL]
        argv += ["--name", f"machine-{name}", "--limit", str(self.worker_limit)]
        with open(machine.log, "ab") as log:
            machine.process = subprocess.Popen(
                argv,
                cwd=machine.folder,
                env=self.worker_env(machine),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.stack.callback(self.stop_machine, name)
        return machine

    def stop_machine(self, name: str) -> None:
        """SIGTERM the worker (bounded), then SIGKILL whatever it started that is still there."""
        machine = self.machines[name]
        if machine.process is None:
            return
        below = descendants(machine.process.pid)
        stop_group(machine.process, grace=20)
        self._kill_groups(below)

    def kill_machine(self, name: str) -> list[int]:
        """The machine dies: SIGKILL to the worker's group and to every process group under it."""
        machine = self.machines[name]
        below = descendants(machine.process.pid)
        groups = self._kill_groups([machine.process.pid, *below])
        machine.process.wait(timeout=30)
        return groups

    @staticmethod
    def _kill_groups(pids: list[int]) -> list[int]:
        groups = set()
        for pid in pids:
            try:
                groups.add(os.getpgid(pid))
            except ProcessLookupError:
                pass
        for group in groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return sorted(groups)

    # --- the API -------------------------------------------------------------------------------

    def call(self, method: str, path: str, **kw):
        # a busy SQLite server can be slow to answer on a loaded machine: bounded, but generous
        return api(method, f"{self.api_url}{path}", timeout=240, **kw).json()

    def deployments(self) -> dict[str, dict]:
        return {d["name"]: d for d in self.call("POST", "/deployments/filter", json={})}

    def submit(self, names: list[str], parameters: dict | None = None, out: Path | None = None) -> dict[str, str]:
        """A flow run of each named deployment, created at once (as a UI's Run or `prefect
        deployment run` does): {deployment name: flow run id}."""
        found = self.deployments()
        runs = {}
        for name in names:
            params = dict(parameters or {})
            if out is not None:
                params["out"] = str(out / f"{name}.mp4")
            runs[name] = self.call("POST", f"/deployments/{found[name]['id']}/create_flow_run", json={"parameters": params})["id"]
        return runs

    def flow_run(self, run_id: str) -> dict:
        return self.call("GET", f"/flow_runs/{run_id}")

    def state(self, run_id: str) -> dict:
        return self.flow_run(run_id)["state"]

    def reschedule(self, run_id: str) -> dict:
        """Set a run back to Scheduled (forced: it is still Running for the server), so that a
        worker of its pool runs it again: what the operator's automation does on Crashed runs."""
        return self.call(
            "POST", f"/flow_runs/{run_id}/set_state", json={"state": {"type": "SCHEDULED", "name": "Scheduled"}, "force": True}
        )

    def machine_of(self, run_id: str) -> str | None:
        """The machine whose worker started the flow run's process (None while no process has it)."""
        for name, machine in self.machines.items():
            if machine.process is None or machine.process.poll() is not None:
                continue
            for pid in descendants(machine.process.pid):
                if _environ(pid).get("PREFECT__FLOW_RUN_ID") == run_id:
                    return name
        return None

    def wait_finished(self, run_ids, timeout: float = 900) -> dict[str, dict]:
        def finished():
            states = {r: self.state(r) for r in run_ids}
            return states if all(s["type"] in FINAL for s in states.values()) else None

        return wait_for(f"runs {sorted(run_ids)} to finish", finished, timeout, interval=2, diagnostics=self.diagnostics)

    def artifacts(self, run_id: str) -> list[dict]:
        return self.call("POST", "/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}})

    def urls(self, run_id: str) -> list[str]:
        """The store's presigned links the run's artifacts show (on the S3 endpoint)."""
        found = []
        for artifact in self.artifacts(run_id):
            text = json.dumps(artifact.get("data"))
            found += re.findall(re.escape(self.s3) + r"/[^\s\"'<>)\]\\]+", text)
        return sorted(set(u.replace("\\u0026", "&").replace("&amp;", "&") for u in found))

    def bucket_keys(self) -> list[str]:
        client = teamservers.s3_client(self.s3)
        keys = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return sorted(keys)

    def diagnostics(self) -> str:
        parts = [tail(m.log, 30) for m in self.machines.values()]
        return "\n".join(parts + [tail(self.folder / "prefect-server.log", 10)])


# --- make cluster-demo / cluster-down ---------------------------------------------------------------

DEMO = ROOT / ".shotflow" / "cluster"
PIDFILE = DEMO / "cluster.pid"


def _demo_serve() -> None:
    """The background process of `up`: the cluster, the three renders, then wait for SIGTERM."""

    def stop(*_):  # unwinds the cluster's ExitStack wherever this process is: everything is stopped
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    summary = DEMO / "summary.txt"
    with Cluster(DEMO / "run", ui=True) as cluster:
        runs = cluster.submit(sorted(cluster.deployments()), {"backend": "fal"})
        states = cluster.wait_finished(list(runs.values()))
        lines = [f"Prefect UI: {cluster.server.ui_url}  (work pool {POOL}, store {cluster.store_url} on {cluster.s3})"]
        for name, run_id in runs.items():
            lines.append(f"{name}: {states[run_id]['type']}")
            lines += [f"  {url}" for url in cluster.urls(run_id)]
        billed = cluster.fake.billed
        lines.append(f"fake fal: {len(billed)} distinct requests, billed {sum(billed.values())} times in all")
        lines.append(
            f"in the bucket: {', '.join(k for k in cluster.bucket_keys() if k.startswith('team/outputs/')) or 'no outputs'}"
        )
        summary.write_text("\n".join(lines) + "\n")
        while True:
            time.sleep(1)


def demo_up(timeout: float = 900) -> int:
    if PIDFILE.exists():
        print(f"a cluster is already running (pid file {PIDFILE}): make cluster-down first")
        return 1
    DEMO.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(DEMO / "run", ignore_errors=True)  # the last demo's servers' state and logs
    summary = DEMO / "summary.txt"
    summary.unlink(missing_ok=True)
    log = DEMO / "cluster.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, __file__, "serve"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    PIDFILE.write_text(f"{proc.pid}\n")
    print(f"starting the cluster (pid {proc.pid}, log {log}): a Prefect server, Redis, S3, fake fal, two workers ...")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not summary.exists() and proc.poll() is None:
        time.sleep(1)
    if not summary.exists():
        print(f"the cluster did not render the three storyboards (see {log}):\n{tail(log)}")
        demo_down()
        return 1
    print(summary.read_text(), end="")
    print(f"left running (pid file {PIDFILE}); stop it with: make cluster-down")
    return 0


def demo_down() -> int:
    try:
        pid = int(PIDFILE.read_text())
    except (OSError, ValueError):
        print("no cluster is running")
        return 0
    below = descendants(pid)
    for sig, wait in ((signal.SIGTERM, 120), (signal.SIGKILL, 5)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.2)
    Cluster._kill_groups(below)  # what a stuck stop left behind
    PIDFILE.unlink(missing_ok=True)
    print("cluster stopped")
    return 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "serve":
        _demo_serve()
    elif command in ("up", "down"):
        sys.exit(demo_up() if command == "up" else demo_down())
    else:
        sys.exit("usage: python tests/cluster.py up|down")
