"""The render flow of one `shotflow run` on a Prefect API: which API (configured, the local
server, or a private one started here), the flow's own thread, the live display fed by the
shot events, and Ctrl-C/SIGTERM (the first stops paying and waiting, a second exits at once)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Callable

from shotflow import interrupt
from shotflow.cli.summary import print_summary, run_report
from shotflow.errors import ShotflowError
from shotflow.generation import events
from shotflow.model import Plan
from shotflow.report.display import ShotDisplay

PREFECT_START_TIMEOUT = 300.0


def open_prefect_api(meanwhile: Callable[[], object] = lambda: None):
    """The Prefect API this run reports to: the configured one (checked first), else a private
    server in its own session, which a Ctrl-C in the terminal never reaches. `meanwhile()` is
    called before this process imports Prefect (a private server: once it is launched)."""
    from shotflow.deployments.server import PrefectServer, check_api

    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        check_api(configured)
        meanwhile()
        return None, configured
    from shotflow.deployments import localserver

    reusable = localserver.find()  # `shotflow server start` (or `serve`) left one running
    if reusable:
        print(
            f"shotflow: reporting to the local Prefect server at {reusable.removesuffix('/api')} (shotflow server status)",
            flush=True,
        )
        meanwhile()
        return None, reusable
    server = PrefectServer(
        api_only=True, start_timeout=PREFECT_START_TIMEOUT, log=PrefectServer.temporary_log(), with_parent=True
    ).launch()
    print(
        f"shotflow: starting Prefect: a private server at {server.ui_url} for this run "
        "(its first start prepares a database: up to a minute on a busy machine)...",
        flush=True,
    )
    try:
        meanwhile()
        # a Prefect profile or prefect.toml may name a server too (read while ours starts)
        from prefect.settings import get_current_settings

        configured = get_current_settings().api.url
        if configured:
            server.stop()
            server.remove_log()
            check_api(configured)
            return None, configured

        def still(seconds: float) -> None:
            print(f"shotflow: still preparing Prefect's database ({seconds:.0f} s)...", flush=True)

        server.wait_ready(still)
        # the per-run limits apply; a private server holds no account-wide concurrency limit
        os.environ["SHOTFLOW_PRIVATE_PREFECT_API"] = server.api_url
        print(f"shotflow: Prefect ready at {server.api_url} after {time.monotonic() - server.started:.0f} s", flush=True)
        return server, server.api_url
    except BaseException as exc:
        server.stop()
        if not isinstance(exc, ShotflowError):  # a failed start names its log: that one is kept
            server.remove_log()
        raise


class FlowThread(threading.Thread):
    """Runs the flow off the main thread, so signals reach shotflow's handler, not the flow."""

    def __init__(self, api_url: str, parameters: dict, *, private: bool = False):
        super().__init__(name="shotflow-flow", daemon=True)
        self.api_url = api_url
        self.parameters = parameters
        self.private = private
        self.state = None
        self.error: BaseException | None = None

    def run(self) -> None:
        from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
        from shotflow.flows.render import render_storyboard

        updates = {PREFECT_API_URL: self.api_url}
        if self.private:
            # heartbeats tell a lasting server that a run still lives; a private server ends with
            # the run, and the flow's end joins the heartbeat thread mid-sleep (up to 1 s)
            updates[PREFECT_FLOWS_HEARTBEAT_FREQUENCY] = None
        try:
            with temporary_settings(updates=updates):
                self.state = render_storyboard(**self.parameters, return_state=True)
        except BaseException as exc:  # handed to the main thread, which reports it
            self.error = exc


class Signals:
    """Ctrl-C/SIGTERM. Before the flow starts: stop now (KeyboardInterrupt: nothing was sent).
    While it runs: the first stops paying and waiting, a second exits at once."""

    def __init__(self):
        self.server = None
        self.flow_running = False
        self.count = 0
        self.stopped_before_flow = False
        self.previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False

    def __call__(self, signum, frame) -> None:
        if not self.flow_running:
            interrupt.request_stop()  # the early start's generations stop too (flows/earlystart.py)
            self.stopped_before_flow = True  # Python may drop the raise (inside a weakref callback): see run_flow
            raise KeyboardInterrupt
        self.count += 1
        interrupt.request_stop()
        if self.count > 1:
            if self.server:
                self.server.kill_now()
            os.write(2, b"\nshotflow: stopped at once; paid requests stay journaled: a re-run collects them\n")
            os._exit(130)


def run_flow(plan: Plan, api_url: str, parameters: dict, signals: Signals, report: dict | None = None, early=None) -> int:
    from shotflow.flows.render import render_storyboard  # noqa: F401  (here, not in the thread: import errors surface as usual)

    if signals.stopped_before_flow:  # a Ctrl-C whose KeyboardInterrupt Python dropped: still a stop
        raise KeyboardInterrupt
    interrupt.reset()
    runner = FlowThread(api_url, parameters, private=signals.server is not None)
    stopped_at = None
    with early.shown() if early else ShotDisplay(plan, backend=parameters.get("backend")) as display:
        unsubscribe = events.subscribe(display)
        try:
            signals.flow_running = True
            runner.start()
            while runner.is_alive():
                runner.join(0.2)
                if signals.count and stopped_at is None:
                    stopped_at = time.monotonic()
                    print("\nshotflow: stopping: no new shot is sent to fal (Ctrl-C again to quit at once)...", flush=True)
                if stopped_at is not None and time.monotonic() - stopped_at > interrupt.STOP_GRACE_SECONDS:
                    break
        finally:
            unsubscribe()
    if stopped_at is not None or interrupt.stop_requested():
        report_stop(display)
        if runner.is_alive():  # a shot still in a wait that does not see the stop: not waited for
            review = sys.modules.get("shotflow.flows.review")  # loaded by the flow only when it reviews
            if review and review.abandon_pause(
                "stopped with Ctrl-C while waiting at the review: nothing more was paid", runner.api_url
            ):
                print("shotflow: the run waiting at the review is cancelled on the Prefect server.", file=sys.stderr)
            drain_prefect_workers()
            if signals.server:
                signals.server.stop()
                signals.server.remove_log()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        return 130
    if runner.error is not None:
        raise runner.error
    if runner.state.is_cancelled():  # from the UI or the API
        raise ShotflowError(f"the flow run was cancelled: {runner.state.message or 'no reason given'}")
    result = runner.state.result()
    from shotflow.report.manifest import read_manifest

    result = {**result, "manifest_data": read_manifest(result["manifest"])}
    print_summary(result, up_to_date=False)
    if report is not None:
        report.update(run_report(result, up_to_date=False))
    return 0


def report_stop(display: ShotDisplay) -> None:
    running = display.on_fal()
    if running:
        shots = ", ".join(f"'{shot}' (fal request {request}, {label})" for shot, request, label in running)
        print(
            f"shotflow: stopped. Paid and still running on fal: {shots}; a re-run collects them without paying again.",
            file=sys.stderr,
        )
    else:
        print("shotflow: stopped. No paid request is left running on fal.", file=sys.stderr)


def drain_prefect_workers() -> None:
    """Send Prefect's buffered logs and events while its server is still up."""
    if "prefect" not in sys.modules:
        return
    try:
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=3)
        EventsWorker.drain_all(timeout=3)
    except Exception:  # only an effort before the server goes away
        pass
