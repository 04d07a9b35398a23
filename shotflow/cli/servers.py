"""Commands about Prefect servers and scheduled storyboards: `server start|stop|status` (a
persistent local server every run reuses), `serve` (every scheduled storyboard from this
process) and `deploy` (register them on a server for workers, or write a prefect.yaml)."""

from __future__ import annotations

import _thread
import os
import threading

from shotflow.cli.output import write_file
from shotflow.errors import ShotflowError
from shotflow.settings import get_settings


def cmd_server(args) -> int:
    """A persistent local Prefect server that every `shotflow run` reuses (deployments/localserver.py)."""
    from shotflow.deployments import localserver

    if args.action == "start":
        print(f"shotflow: starting a local Prefect server (state in {localserver.state_file()})...", flush=True)

        def still(seconds: float) -> None:
            print(f"shotflow: still starting Prefect ({seconds:.0f} s; its first start prepares a database)...", flush=True)

        url, started = localserver.start(
            still, limit=get_settings().concurrency, limit_name=get_settings().concurrency_limit_name
        )
        what = "started" if started else "already running"
        print(
            f"shotflow: Prefect server {what} at {url.removesuffix('/api')}; every `shotflow run` reports to it; stop it with: shotflow server stop"
        )
        return 0
    if args.action == "stop":
        print("shotflow: local Prefect server stopped" if localserver.stop() else "shotflow: no local Prefect server was running")
        return 0
    url = localserver.find()
    if url:
        print(f"shotflow: local Prefect server running at {url.removesuffix('/api')} (runs report to it)")
        return 0
    print("shotflow: no local Prefect server running: each run starts a private one (start one with: shotflow server start)")
    return 3


def cmd_serve(args) -> int:
    from shotflow.deployments.storyboards import scheduled_storyboards

    storyboards = scheduled_storyboards(args.pipelines)
    if not storyboards:
        raise ShotflowError(f"no storyboard in {args.pipelines} declares a schedule: nothing to serve")
    for s in storyboards:
        print(f"shotflow: serving {s.name}: {s.path}, {s.board.schedule.describe()}")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "INFO")
    stopping = _Stop()
    server = None
    from shotflow.deployments import localserver

    reusable = None if os.environ.get("PREFECT_API_URL") else localserver.find()
    if reusable:  # `shotflow server start` left one running: serve there, its UI shows everything
        os.environ["PREFECT_API_URL"] = reusable
        print(f"shotflow: Prefect UI at {reusable.removesuffix('/api')} (the local server: shotflow server status)", flush=True)
    elif not os.environ.get("PREFECT_API_URL"):
        from shotflow.deployments.server import PrefectServer

        # the embedded API runs no scheduler: a private server makes the schedules fire
        print(
            "shotflow: starting a private Prefect server on 127.0.0.1 (schedules need one; a first start prepares a database)...",
            flush=True,
        )
        server = PrefectServer(start_timeout=300, with_parent=True).launch()
    try:
        if server:  # waited for inside the try: a Ctrl-C meanwhile still stops it
            server.wait_ready(lambda s: print(f"shotflow: still starting Prefect ({s:.0f} s)...", flush=True))
            os.environ["PREFECT_API_URL"] = server.api_url
            localserver.record(server.api_url, server.process.pid, started_by="shotflow serve")  # runs meanwhile report here
            print(f"shotflow: Prefect UI at {server.ui_url}", flush=True)
        if stopping.is_set():
            return 0
        from prefect import serve
        from shotflow.deployments.storyboards import ensure_concurrency_limit, runner_deployments

        settings = get_settings()
        if ensure_concurrency_limit(settings.concurrency_limit_name, settings.concurrency):
            print(
                f"shotflow: created the global concurrency limit '{settings.concurrency_limit_name}' ({settings.concurrency} fal requests in flight)"
            )
        serve(*runner_deployments(args.pipelines), print_starting_message=True)
    except BaseException:
        # SIGINT/SIGTERM raise KeyboardInterrupt wherever the runner is: inside its async code it
        # can come out wrapped (an exception group, a cancel-scope RuntimeError). A stop is a stop.
        if not stopping.is_set():
            raise
    finally:
        stopping.ended.set()  # no interrupt from here on: the private server is stopped, not left
        if server:
            localserver.forget(server.process.pid)
            server.stop()
        print("shotflow: stopped", flush=True)
    return 0


class _Stop:
    """SIGTERM and SIGINT end `serve` cleanly (a KeyboardInterrupt in the main thread), even when
    the shell started it with SIGINT ignored. Python drops an exception raised while the main thread
    runs a weakref callback or a __del__ ("Exception ignored in ...": seen once, inside an import),
    so until `serve` has ended (`ended`) the interrupt is raised again every `again` seconds (longer
    than Prefect's own shutdown of `serve` takes, which an interrupt would cut short)."""

    def __init__(self, again: float = 5.0):
        import signal

        self.again = again
        self.requested = threading.Event()
        self.ended = threading.Event()
        signal.signal(signal.SIGTERM, self._handler)
        signal.signal(signal.SIGINT, self._handler)

    def is_set(self) -> bool:
        return self.requested.is_set()

    def _handler(self, signum, frame):
        if self.ended.is_set():
            return
        if not self.requested.is_set():
            self.requested.set()
            threading.Thread(target=self._again, args=(signum,), name="shotflow-serve-stop", daemon=True).start()
        raise KeyboardInterrupt

    def _again(self, signum: int) -> None:
        while not self.ended.wait(self.again):
            _thread.interrupt_main(signum)  # runs `_handler` in the main thread, as the signal did


def cmd_deploy(args) -> int:
    from shotflow.deployments.storyboards import deploy, prefect_yaml, team_env

    if args.prefect_yaml:
        write_file(args.prefect_yaml, prefect_yaml(args.pool, args.pipelines, args.limit))
        print(f"shotflow: wrote {args.prefect_yaml}; deploy with: prefect deploy --all")
        return 0

    names = deploy(args.pool, folder=args.pipelines, source=args.source, limit=args.limit)
    for name in names:
        print(f"shotflow: deployed {name} to work pool '{args.pool}'")
    if env := team_env():
        print(f"shotflow: its runs get {', '.join(sorted(env))} (job variables; secrets stay in their Secret block)")
    print(f"shotflow: start a worker with: prefect worker start --pool {args.pool}")
    return 0
