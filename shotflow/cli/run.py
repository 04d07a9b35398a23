"""`shotflow run`: read the storyboard, answer an unchanged storyboard from its manifest, else
preflight it (shotflow/preflight.py: --force's ids, --max-cost, everything a paid run needs) and
start the early generations and the render flow (shotflow/cli/flowrun.py). With --json, stdout
gets one JSON object at the end.

`run` imports the flow lazily and says what it is doing from its first second, since Prefect's
embedded start alone takes seconds.

`--force SHOT` generates again, and pays for, the shots that continue SHOT (`from:`): they are
listed with their prices and, on a terminal, the user is asked (by the preflight, once nothing
else stops the run); `--force-descendants` consents ahead; with no terminal and no flag the run
is refused before anything is paid.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys

from shotflow.flows.earlystart import EarlyStart

from shotflow import interrupt
from shotflow.cli.flowrun import Signals, drain_prefect_workers, open_prefect_api, report_stop, run_flow
from shotflow.cli.options import parse_model_limits, parse_vars
from shotflow.cli.summary import print_summary, run_report
from shotflow.errors import ShotflowError
from shotflow.generation.choose import choose_backend
from shotflow.model import Plan
from shotflow.money import run_cost
from shotflow.plan import load_plan
from shotflow.preflight import preflight
from shotflow.settings import get_settings


def cmd_run(args) -> int:
    """With --json, every line goes to stderr and stdout gets one JSON object at the end."""
    if not getattr(args, "json", False):
        return _render(args, {})
    import contextlib

    report: dict = {}
    real_stdout = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):
            code = _render(args, report)
    except (ShotflowError, KeyboardInterrupt) as exc:
        code = 130 if isinstance(exc, KeyboardInterrupt) else 1
        report.setdefault("error", "\n".join(map(str, getattr(exc, "problems", None) or [exc])) or "interrupted")
        print(json.dumps({"ok": False, **report}, default=str), file=real_stdout)
        raise
    print(json.dumps({"ok": code == 0, **report}, default=str), file=real_stdout)
    return code


def _up_to_date(plan: Plan, backend: str, settings, report: dict, export=()) -> bool:
    """Answer an unchanged storyboard from its manifest (shotflow/report/uptodate.py), without Prefect."""
    from shotflow.report import uptodate
    from shotflow.report.manifest import cost_line, sidecar

    verdict = uptodate.check(plan, backend, settings.cache_dir, settings)
    if not verdict.up_to_date:
        if verdict.manifest is not None:
            print(f"shotflow: rendering: {verdict.reason}", flush=True)
        return False
    manifest = verdict.manifest or {}
    result = {
        "video": manifest["output"]["path"],
        "duration": manifest["output"].get("duration") or 0.0,
        "contact_sheet": str(sidecar(plan.output.path, "contact.png")),
        "takes_sheet": str(sidecar(plan.output.path, "takes.png")) if plan.has_takes else None,
        "manifest": str(verdict.manifest_path),
        "backend": backend,
        "cost": cost_line(manifest),
        "manifest_data": manifest,
        "exports": _exports(verdict.manifest_path, export),  # --export: from the manifest, as a run would
    }
    print(
        f"shotflow: {plan.output.path} is up to date (storyboard, vars, inputs, clips and video unchanged; --force renders anyway)"
    )
    print_summary(result, up_to_date=True)
    report.update(run_report(result, up_to_date=True))
    return True


class _Consent:
    """Whether the user agrees to pay again for the shots that continue a forced one: the flag, or
    an answer on a terminal, asked by the preflight with the line naming them. No terminal: no
    (the preflight then refuses, naming the flag). `given`: the flow's force_descendants."""

    def __init__(self, given: bool):
        self.given = given

    def __call__(self, line: str) -> bool:
        if self.given or not (sys.stdin.isatty() and sys.stderr.isatty()):
            return self.given
        print(f"shotflow: {line}.", file=sys.stderr)
        print("Generate them again and pay for them? [y/N] ", end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline()  # "" at the end of input: no
        if answer.strip().lower() not in ("y", "yes"):
            raise ShotflowError("not run: the shots that continue the forced shot(s) were not consented to; nothing was sent")
        self.given = True
        return True


def _exports(manifest, formats) -> list[dict]:
    if not formats:
        return []
    from shotflow.report.timeline import export_each

    return export_each(manifest, formats)


def _reviewer(plan, backend: str, settings):
    """Who answers a reviewed run's gates: this terminal (prompts), or a person in the UI of the
    Prefect server the run reports to; refused before anything is paid when nobody can (no
    terminal, and a private server without a UI)."""
    from shotflow.flows.earlystart import names_a_server

    if sys.stdin.isatty():
        from shotflow.cli.review import TerminalReview

        print("shotflow: review: this run asks before paying, and for a pick of each shot's take, here", flush=True)
        return TerminalReview(plan, settings.cache_dir / "review", backend=backend)
    if not names_a_server():
        raise ShotflowError(
            f"{plan.source}: review: the run would wait for answers nobody can give: there is no terminal here, and "
            "the run's private Prefect server has no UI. Run it in a terminal, or with `shotflow serve` running "
            "(the gates then wait in its UI); nothing was sent"
        )
    url = os.environ.get("PREFECT_API_URL", "").removesuffix("/api") or "the Prefect UI"
    print(f"shotflow: review: the run waits at its gates for answers in the Prefect UI ({url}/runs)", flush=True)
    return None


@contextlib.contextmanager
def _answering(answerer):
    """The flow's gates answered by `answerer` (in this process) while the run lasts."""
    if answerer is None:
        yield
        return
    from shotflow.flows.review import set_answerer

    previous = set_answerer(answerer)
    try:
        yield
    finally:
        set_answerer(previous)


def _render(args, report: dict) -> int:
    print(f"shotflow: reading {args.file}", flush=True)
    overrides = parse_vars(args.var)
    plan = load_plan(args.file, out=args.out, vars=overrides)
    if getattr(args, "review", False):  # as review: true: the early start then pays nothing either
        plan = dataclasses.replace(plan, review=True)
    settings = get_settings()
    backend = choose_backend(args.backend, settings.names_a_key)
    for warning in plan.warnings:
        print(f"shotflow: {warning}", flush=True)
    model_limits = parse_model_limits(args.model_concurrency)
    if args.export:  # a timeline that cannot be written is said before anything is paid (the early start pays)
        from shotflow.report.timeline import check_formats

        check_formats(args.export, plan.output.fps)
    if not args.force and _up_to_date(plan, backend, settings, report, args.export):  # pays nothing, whatever --max-cost says
        return 0
    consent = _Consent(args.force_descendants)
    # nothing is paid for a run that cannot finish, over --max-cost, or for a forced shot's descendants without consent
    preflight(plan, backend=backend, settings=settings, max_cost=args.max_cost, force=args.force, force_descendants=consent)
    if args.backend is None and backend == "preview":
        print("shotflow: no FAL_KEY, so this is an offline preview (an animatic, $0); set FAL_KEY to generate for real")
    answerer = _reviewer(plan, backend, settings) if plan.review else None
    print(
        f"shotflow: '{plan.title}': {len(plan.shots)} shots, {plan.final_seconds:g} s at "
        f"{plan.output.width}x{plan.output.height}, {backend} backend, " + run_cost(plan, backend)
    )
    # Prefect's own console lines (task tracebacks included) would tear through the live display
    # and bury the one-line error a user needs; the run logs still reach the Prefect API in full.
    # -v shows them (INFO), for whoever wants to see what Prefect does
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "INFO" if getattr(args, "verbose", False) else "CRITICAL")
    server = None
    # fal runs start generating now (on a shared server, each request holding a slot of its global
    # limit); the flow re-attaches (flows/earlystart.py)
    total = args.concurrency if args.concurrency is not None else settings.concurrency
    early = EarlyStart(
        plan, backend, settings, concurrency=total, model_limits=model_limits, force=args.force, on_stop=report_stop
    )
    with Signals() as signals, early, _answering(answerer):
        try:
            server, api_url = open_prefect_api(meanwhile=early.wait_sent)  # the early requests go out first
            signals.server = server
            return run_flow(
                plan,
                api_url,
                dict(
                    storyboard=args.file,
                    backend=backend,
                    out=args.out,
                    concurrency=args.concurrency if args.concurrency is not None else settings.concurrency,
                    max_cost=float(args.max_cost) if args.max_cost is not None else None,
                    force=args.force,
                    force_descendants=consent.given,
                    model_concurrency=model_limits or None,
                    vars=overrides or None,
                    run_token=early.token,
                    export=args.export or None,
                    review=True if getattr(args, "review", False) else None,
                ),
                signals,
                report,
                early,
            )
        finally:
            drain_prefect_workers()
            if server:
                if interrupt.stop_requested():
                    server.stop()  # a stopped run: its server is gone by the time shotflow exits
                else:  # the final state is written: SIGTERM and go (a detached reaper makes sure)
                    server.stop_soon()
                server.remove_log()
