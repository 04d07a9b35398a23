"""The `shotflow` command.

Commands that only read storyboards (validate, models, estimate, schema) never import Prefect,
so they answer in well under a second. `run` imports the flow lazily and says what it is doing
from its first second, since Prefect's embedded start alone takes seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from decimal import Decimal
from typing import Sequence

from shotflow.flows.earlystart import EarlyStart

from shotflow import interrupt
from shotflow.catalog import MODELS, find_model
from shotflow.errors import MissingKeyError, ShotflowError, StoryboardError
from shotflow.generation import events
from shotflow.generation.choose import choose_backend
from shotflow.model import Plan
from shotflow.plan import check_budget, load_plan
from shotflow.preflight import preflight
from shotflow.report.display import ShotDisplay
from shotflow.settings import get_settings
from shotflow.storyboard.schema import json_schema


def money(amount: Decimal | None) -> str:
    return "unknown" if amount is None else f"${amount:.2f}"


def plan_cost(plan: Plan) -> str:
    text = money(plan.known_cost)
    if plan.unpriced:
        text += f" + {len(plan.unpriced)} unpriced shot{'s' if len(plan.unpriced) > 1 else ''} ({', '.join(s.id for s in plan.unpriced)})"
    return text


def table(rows: list[Sequence[str]], header: Sequence[str], wrap: dict[int, int] | None = None) -> str:
    """Columns two spaces apart; `wrap` {column: width} wraps those cells onto more lines."""
    import textwrap

    wrap = wrap or {}
    rows = [list(map(str, header))] + [list(map(str, r)) for r in rows]
    cells = [[[c] if i not in wrap or n == 0 else textwrap.wrap(c, wrap[i], break_on_hyphens=False) or [""] for i, c in enumerate(r)]
             for n, r in enumerate(rows)]
    widths = [max(len(line) for r in cells for line in r[i]) for i in range(len(header))]
    lines = []
    for r in cells:
        for k in range(max(len(c) for c in r)):
            lines.append("  ".join((c[k] if k < len(c) else "").ljust(w) for c, w in zip(r, widths)).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def shotflow_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("shotflow")
    except PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


# --- validate and estimate: many files, the same --var, text or --json ------------------------


def _load_all(files: Sequence[str], var_items: list[str]) -> list[tuple[str, Plan | None, list]]:
    """Each file's plan, or every problem found in it (one bad file never hides another)."""
    overrides = parse_vars(var_items)
    results = []
    for file in files:
        try:
            results.append((file, load_plan(file, vars=overrides), []))
        except StoryboardError as exc:
            results.append((file, None, exc.problems))
    return results


def _usd_json(amount: Decimal | None) -> float | None:
    """A JSON number (exact for cents and tenths of cents), or null when the price is unknown: never 0."""
    return None if amount is None else float(amount)


def _problem_json(problem) -> dict:
    return {
        "file": problem.file,
        "line": problem.line,
        "column": getattr(problem, "column", None),
        "shot": problem.shot,
        "message": problem.message,
    }


def _totals_json(plan: Plan) -> dict:
    return {
        "shots": len(plan.shots),
        "generated_seconds": plan.generated_seconds,
        "final_seconds": plan.final_seconds,
        "width": plan.output.width,
        "height": plan.output.height,
        "fps": plan.output.fps,
        "cost_usd": None if plan.unpriced else _usd_json(plan.known_cost),
        "known_cost_usd": _usd_json(plan.known_cost),
        "unpriced_shots": [s.id for s in plan.unpriced],
    }


def _file_json(file: str, plan: Plan | None, problems: list, *, shots: bool) -> dict:
    if plan is None:
        return {"file": file, "ok": False, "problems": [_problem_json(p) for p in problems]}
    entry = {"file": file, "ok": True, "problems": [], "title": plan.title, "totals": _totals_json(plan)}
    if shots:
        entry["shots"] = [
            {
                "id": s.id,
                "model": s.model,
                "endpoint": s.endpoint,
                "seconds": s.seconds,
                "resolution": s.resolution,
                "width": s.width,
                "height": s.height,
                "audio": s.audio,
                "cost_usd": _usd_json(s.cost),
                "price": find_model(s.model).price.describe(),
            }
            for s in plan.shots
        ]
    return entry


def _report_problems(results) -> int:
    failed = [problems for _, plan, problems in results if plan is None]
    for problems in failed:
        for problem in problems:
            print(problem, file=sys.stderr)
    if failed:
        n = len(results)
        print(f"{len(failed)} of {n} storyboard{'s' if n > 1 else ''} invalid", file=sys.stderr)
    return len(failed)


def _print_json(results, *, shots: bool) -> None:
    files = [_file_json(file, plan, problems, shots=shots) for file, plan, problems in results]
    plans = [plan for _, plan, _ in results if plan is not None]
    known = sum((p.known_cost for p in plans), Decimal(0))
    unpriced = [f"{p.source}:{s.id}" for p in plans for s in p.unpriced]
    totals = {
        "files": len(results),
        "invalid": len(results) - len(plans),
        "generated_seconds": sum(p.generated_seconds for p in plans),
        "cost_usd": None if unpriced or len(plans) < len(results) else _usd_json(known),
        "known_cost_usd": _usd_json(known),
        "unpriced_shots": unpriced,
    }
    print(json.dumps({"ok": len(plans) == len(results), "files": files, "totals": totals}, indent=2))


def cmd_validate(args) -> int:
    results = _load_all(args.files, args.var)
    if args.json:
        _print_json(results, shots=False)
        return 0 if all(plan for _, plan, _ in results) else 1
    for file, plan, _ in results:
        if plan is not None:
            print(
                f"{file}: ok: '{plan.title}', {len(plan.shots)} shots, {plan.final_seconds:g} s "
                f"at {plan.output.width}x{plan.output.height}, estimated {plan_cost(plan)}"
            )
    return 1 if _report_problems(results) else 0


def cmd_estimate(args) -> int:
    results = _load_all(args.files, args.var)
    if args.json:
        _print_json(results, shots=True)
        return 0 if all(plan for _, plan, _ in results) else 1
    plans = [plan for _, plan, _ in results if plan is not None]
    for i, plan in enumerate(plans):
        rows = [
            [s.id, s.model, f"{s.seconds} s", s.resolution, f"{s.width}x{s.height}", "yes" if s.audio else "no", money(s.cost)]
            for s in plan.shots
        ]
        print(("\n" if i else "") + f"{plan.title} ({plan.source})")
        print(table(rows, ["shot", "model", "seconds", "resolution", "size", "audio", "cost"]))
        print(
            f"\n{len(plan.shots)} shots, {plan.generated_seconds} s generated, final video {plan.final_seconds:g} s "
            f"at {plan.output.width}x{plan.output.height} {plan.output.fps} fps"
        )
        print(f"estimated cost: {plan_cost(plan)}")
        used = list(dict.fromkeys(s.model for s in plan.shots))
        as_of = sorted({find_model(m).price.as_of for m in used})
        print(f"prices on fal (as of {', '.join(as_of)}; `shotflow models NAME` for more):")
        for model in used:
            print(f"  {model}: {find_model(model).price.describe()}")
    if len(results) > 1 and plans:
        known = sum((p.known_cost for p in plans), Decimal(0))
        unpriced = sum(len(p.unpriced) for p in plans)
        more = f" + {unpriced} unpriced shot{'s' if unpriced > 1 else ''}" if unpriced else ""
        print(f"\nall {len(plans)} storyboards: estimated {money(known)}{more}")
    return 1 if _report_problems(results) else 0


# --- models -------------------------------------------------------------------------------------


def _spaced(values) -> str:
    return " ".join(str(v) for v in values)


def cmd_models(args) -> int:
    if args.name:
        print(describe_model(find_model(args.name)))
        return 0
    rows = []
    for m in MODELS:
        rows.append(
            [
                m.alias,
                ("" if m.durations else "only ") + _spaced(m.seconds),
                ("" if m.has_field("aspect_ratio") else "only ") + _spaced(m.aspect_ratios),
                ("" if m.has_field("resolution") else "only ") + _spaced(m.resolutions),
                "optional" if m.audio == "param" else "no",
                "yes" if m.has_field("seed") else "no",
                m.price.describe(),
            ]
        )
    print(
        table(
            rows,
            ["model", "seconds", "aspect ratios", "resolutions", "audio", "seed", "price on fal"],
            wrap={1: 7, 2: 13, 3: 11, 6: 28},  # 100 columns
        )
    )
    print("\nPrices as seen on fal's model pages (late 2025); they change often. 'unknown' never counts as $0.")
    print("`shotflow models NAME`: one model in full (input fields, defaults, price and its date, assumptions).")
    return 0


def _type_words(annotation) -> str:
    import types
    import typing

    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        words = [_type_words(a) for a in args if a is not type(None)]
        return " or ".join(words) + (" or null" if type(None) in args else "")
    return {str: "text", bool: "true/false", int: "whole number (64-bit)", float: "finite number"}.get(annotation, str(annotation))


def _bounds(info) -> str:
    names = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "min_length": "length >=", "max_length": "length <="}
    found = []
    for meta in info.metadata:
        for attr, word in names.items():
            if getattr(meta, attr, None) is not None:
                found.append(f"{word} {getattr(meta, attr)}")
    return ", ".join(found)


def describe_model(m) -> str:
    """Everything shotflow knows about one model: capabilities, price, input fields, assumptions."""
    import textwrap

    from shotflow.catalog import ASSUMED_FPS
    from shotflow.storyboard.modelrules import MAPPED_FIELDS

    out: list[str] = []
    indent = max(16, *(len(name) + 2 for name in m.input.model_fields))

    def fact(name: str, text: str) -> None:
        lines = textwrap.wrap(text, 100 - 2 - indent, break_on_hyphens=False) or [""]
        out.append(f"  {name:<{indent}}{lines[0]}")
        out.extend(" " * (2 + indent) + line for line in lines[1:])

    notes = m.notes.replace(ASSUMED_FPS, "").strip(" ;,").removesuffix(" and").strip()
    assumed = []
    if ASSUMED_FPS in m.notes:
        assumed.append("the frame rate (not in the seed; assembly probes every clip)")
    if not m.durations and "assumed" in notes:
        assumed.append(f"the clip length, {m.native_duration} s (no duration field)")
    if not m.has_field("resolution") and f"native {m.native_resolution}" in notes:
        assumed.append(f"the resolution, {m.native_resolution} (no resolution field)")

    out.append(f"{m.alias}: {m.title}")
    fact("endpoint", m.endpoint + (f" (also called: {', '.join(m.aliases)})" if m.aliases else ""))
    if m.durations:
        encoded = ", ".join(f"{s} s as {json.dumps(v)}" for s, v in m.durations.items())
        *most, last = map(str, m.seconds)
        fact("durations", f"{', '.join(most)}{' or ' if most else ''}{last} s (the duration field takes {encoded})")
    else:
        fact("durations", f"{m.native_duration} s, fixed (no duration field)")
    fixed = "" if m.has_field("aspect_ratio") else " (fixed: no aspect_ratio field)"
    fact("aspect ratios", ", ".join(m.aspect_ratios) + fixed)
    fixed = "" if m.has_field("resolution") else " (fixed: no resolution field)"
    fact("resolutions", ", ".join(m.resolutions) + fixed)
    if m.audio == "param":
        fact("audio", f"optional: params.generate_audio (default {json.dumps(m.field_default('generate_audio'))})")
    else:
        fact("audio", "none (the clips are silent)")
    fact("frame rate", f"{m.fps} fps" + (" (assumed)" if ASSUMED_FPS in m.notes else ""))
    fact("seed", "yes: a shot's seed: is sent" if m.has_field("seed") else "no: a shot's seed: is refused")
    fact("price", m.price.describe())
    fact("", m.price.provenance())
    if m.price.note:
        fact("", f"note: {m.price.note}")
    for resolution, seconds, why in m.forbidden:
        fact("refuses", f"{resolution} at {seconds} s: {why}")
    if notes:
        fact("notes", notes)
    fact("assumed", "; ".join(assumed) if assumed else "nothing: every fact above is from the seed's schema or description")
    out.append("")
    out.append(f"input fields ({m.input.__name__}); a shot sets them as shown, anything else goes under params:")
    for name, info in m.input.model_fields.items():
        default = "required" if info.is_required() else f"default {json.dumps(info.default)}"
        bounds = _bounds(info)
        where = f"shot's {name}:" if name in MAPPED_FIELDS else f"params.{name}"
        fact(name, "; ".join(x for x in (_type_words(info.annotation), default, bounds, where) if x))
        if info.description:
            fact("", info.description)
    return "\n".join(out)


def cmd_new(args) -> int:
    from shotflow.storyboard.starter import write_starter

    path = write_starter(args.name)
    print(f"shotflow: wrote {path}")
    print(f"shotflow: next: shotflow validate {path}; shotflow estimate {path}; shotflow run {path} --backend preview")
    return 0


def add_var_option(p: argparse.ArgumentParser) -> None:
    """--var NAME=VALUE: the same option for validate, estimate and run."""
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="override one of the storyboard's vars (repeatable)")


def cmd_schema(args) -> int:
    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise ShotflowError(f"cannot write {args.output}: {exc.strerror}") from None
    else:
        sys.stdout.write(text)
    return 0


def parse_model_limits(items: list[str]) -> dict[str, int]:
    limits = {}
    for item in items:
        model, _, n = item.partition("=")
        if not n.isdigit() or int(n) < 1:
            raise ShotflowError(f"--model-concurrency {item!r}: write MODEL=N, e.g. veo3=1")
        limits[find_model(model).alias] = int(n)
    return limits


def parse_vars(items: list[str]) -> dict[str, str]:
    values = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ShotflowError(f"--var {item!r}: write NAME=VALUE")
        values[name] = value
    return values


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


def _run_report(result: dict, *, up_to_date: bool) -> dict:
    """The JSON object `run --json` prints: outputs, duration, per-shot state, request id, cost."""
    manifest = result.get("manifest_data") or {}
    shots = []
    for s in manifest.get("shots") or result.get("shots") or []:
        shots.append(
            {
                "id": s.get("id"),
                "state": "done" if "clip_sha256" in s else s.get("status"),
                "request_id": s.get("request_id"),
                "from_clip_store": s.get("cache_hit"),
                "cost_usd": s.get("cost_usd", s.get("cost")),
                "cost_usd_on_fal": s.get("cost_usd_on_fal"),
            }
        )
    return {
        "up_to_date": up_to_date,
        "video": result.get("video"),
        "manifest": result.get("manifest"),
        "contact_sheet": result.get("contact_sheet"),
        "duration": result.get("duration"),
        "backend": result.get("backend"),
        "cost": result.get("cost"),
        "last_clip_to_final_s": result.get("last_clip_to_final_s"),
        "last_clip_normalise_s": result.get("last_clip_normalise_s"),
        "shots": shots,
    }


def _print_summary(result: dict, *, up_to_date: bool) -> None:
    """The one summary at the end of a run (or of an up-to-date answer)."""
    manifest = result.get("manifest_data") or {}
    shots = manifest.get("shots") or []
    reused = sum(1 for s in shots if s.get("cache_hit"))
    print()
    print(f"video:         {result['video']} ({result['duration']:.2f} s)" + ("  (up to date: nothing rendered)" if up_to_date else ""))
    print(f"contact sheet: {result['contact_sheet']}")
    print(f"manifest:      {result['manifest']}")
    if result.get("cost"):
        print(f"cost:          {result['cost']}")
    if result.get("earlier_video"):
        print(f"earlier video: {result['earlier_video']}")
    if not up_to_date:
        print(f"reused:        {reused} of {len(shots)} clips from the clip store")
        if result.get("last_clip_to_final_s") is not None:
            # "that clip's normalisation plus at most 1 s": both parts, so the claim can be checked
            part = result.get("last_clip_normalise_s")
            which = f" ('{result['last_clip']}'" + (f": {part:.1f} s its normalisation)" if part is not None else ")") if result.get("last_clip") else ""
            print(f"last clip -> final file: {result['last_clip_to_final_s']:.1f} s{which}")


def _up_to_date(plan: Plan, backend: str, settings, report: dict) -> bool:
    """Answer an unchanged storyboard from its manifest (shotflow/report/uptodate.py), without Prefect."""
    from shotflow.report import uptodate
    from shotflow.report.manifest import cost_line, sidecar

    verdict = uptodate.check(plan, backend, settings.cache_dir)
    if not verdict.up_to_date:
        if verdict.manifest is not None:
            print(f"shotflow: rendering: {verdict.reason}", flush=True)
        return False
    manifest = verdict.manifest or {}
    result = {
        "video": manifest["output"]["path"],
        "duration": manifest["output"].get("duration") or 0.0,
        "contact_sheet": str(sidecar(plan.output.path, "contact.png")),
        "manifest": str(verdict.manifest_path),
        "backend": backend,
        "cost": cost_line(manifest),
        "manifest_data": manifest,
    }
    print(f"shotflow: {plan.output.path} is up to date (storyboard, vars, inputs, clips and video unchanged; --force renders anyway)")
    _print_summary(result, up_to_date=True)
    report.update(_run_report(result, up_to_date=True))
    return True


def _render(args, report: dict) -> int:
    print(f"shotflow: reading {args.file}", flush=True)
    overrides = parse_vars(args.var)
    plan = load_plan(args.file, out=args.out, vars=overrides)
    settings = get_settings()
    has_key = bool(settings.fal_key and settings.fal_key.get_secret_value()) or bool(settings.fal_key_block)
    backend = choose_backend(args.backend, has_key)
    for shot_id in args.force:
        plan.shot(shot_id)
    model_limits = parse_model_limits(args.model_concurrency)
    check_budget(plan, args.max_cost, backend)
    if not args.force and _up_to_date(plan, backend, settings, report):
        return 0
    preflight(plan, backend=backend, settings=settings, force=args.force)  # nothing is paid for a run that cannot finish
    if args.backend is None and backend == "preview":
        print("shotflow: no FAL_KEY, so this is an offline preview (an animatic, $0); set FAL_KEY to generate for real")
    print(
        f"shotflow: '{plan.title}': {len(plan.shots)} shots, {plan.final_seconds:g} s at "
        f"{plan.output.width}x{plan.output.height}, {backend} backend, "
        + (f"would cost {plan_cost(plan)} on fal" if backend == "preview" else f"estimated {plan_cost(plan)}")
    )
    # Prefect's own console lines (task tracebacks included) would tear through the live display
    # and bury the one-line error a user needs; the run logs still reach the Prefect API in full.
    # -v shows them (INFO), for whoever wants to see what Prefect does
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "INFO" if getattr(args, "verbose", False) else "CRITICAL")
    server = None
    # fal runs on a private server start generating now; the flow re-attaches (flows/earlystart.py)
    total = args.concurrency if args.concurrency is not None else settings.concurrency
    early = EarlyStart(plan, backend, settings, concurrency=total, model_limits=model_limits, force=args.force, on_stop=_report_stop)
    with _Signals() as signals, early:
        try:
            server, api_url = open_prefect_api()
            signals.server = server
            return _run_flow(
                plan,
                api_url,
                dict(
                    storyboard=args.file,
                    backend=backend,
                    out=args.out,
                    concurrency=args.concurrency if args.concurrency is not None else settings.concurrency,
                    max_cost=float(args.max_cost) if args.max_cost is not None else None,
                    force=args.force,
                    model_concurrency=model_limits or None,
                    vars=overrides or None,
                    run_token=early.token,
                ),
                signals,
                report,
                early,
            )
        finally:
            _drain_prefect_workers()
            if server:
                if interrupt.stop_requested():
                    server.stop()  # a stopped run: its server is gone by the time shotflow exits
                else:  # the final state is written: SIGTERM and go (a detached reaper makes sure)
                    server.stop_soon()
                server.remove_log()


# After the first Ctrl-C the flow ends Cancelled in well under a second; shots still waiting on
# fal stop at their next poll. Whatever has not stopped by then is not waited for.
STOP_GRACE_SECONDS = 5.0
PREFECT_START_TIMEOUT = 300.0


def open_prefect_api():
    """The Prefect API this run reports to: the configured one (checked first), else a private
    server in its own session, which a Ctrl-C in the terminal never reaches."""
    from shotflow.deployments.server import PrefectServer, check_api

    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        check_api(configured)
        return None, configured
    from shotflow.deployments import localserver

    reusable = localserver.find()  # `shotflow server start` (or `serve`) left one running
    if reusable:
        print(f"shotflow: reporting to the local Prefect server at {reusable.removesuffix('/api')} (shotflow server status)", flush=True)
        return None, reusable
    server = PrefectServer(api_only=True, start_timeout=PREFECT_START_TIMEOUT, log=PrefectServer.temporary_log()).launch()
    print(
        f"shotflow: starting Prefect: a private server at {server.ui_url} for this run "
        "(its first start prepares a database: up to a minute on a busy machine)...",
        flush=True,
    )
    try:
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


class _FlowThread(threading.Thread):
    """Runs the flow off the main thread, so signals reach shotflow's handler, not the flow."""

    def __init__(self, api_url: str, parameters: dict):
        super().__init__(name="shotflow-flow", daemon=True)
        self.api_url = api_url
        self.parameters = parameters
        self.state = None
        self.error: BaseException | None = None

    def run(self) -> None:
        from prefect.settings import PREFECT_API_URL, temporary_settings
        from shotflow.flows.render import render_storyboard

        try:
            with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
                self.state = render_storyboard(**self.parameters, return_state=True)
        except BaseException as exc:  # handed to the main thread, which reports it
            self.error = exc


class _Signals:
    """Ctrl-C/SIGTERM. Before the flow starts: stop now (KeyboardInterrupt: nothing was sent).
    While it runs: the first stops paying and waiting, a second exits at once."""

    def __init__(self):
        self.server = None
        self.flow_running = False
        self.count = 0
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
            raise KeyboardInterrupt
        self.count += 1
        interrupt.request_stop()
        if self.count > 1:
            if self.server:
                self.server.kill_now()
            os.write(2, b"\nshotflow: stopped at once; paid requests stay journaled: a re-run collects them\n")
            os._exit(130)


def _run_flow(plan: Plan, api_url: str, parameters: dict, signals: _Signals, report: dict | None = None, early=None) -> int:
    from shotflow.flows.render import render_storyboard  # noqa: F401  (here, not in the thread: import errors surface as usual)

    interrupt.reset()
    runner = _FlowThread(api_url, parameters)
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
                if stopped_at is not None and time.monotonic() - stopped_at > STOP_GRACE_SECONDS:
                    break
        finally:
            unsubscribe()
    if stopped_at is not None or interrupt.stop_requested():
        _report_stop(display)
        if runner.is_alive():  # a shot still in a wait that does not see the stop: not waited for
            _drain_prefect_workers()
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
    _print_summary(result, up_to_date=False)
    if report is not None:
        report.update(_run_report(result, up_to_date=False))
    return 0


def _report_stop(display: ShotDisplay) -> None:
    running = display.on_fal()
    if running:
        shots = ", ".join(f"'{shot}' (fal request {request}, {label})" for shot, request, label in running)
        print(
            f"shotflow: stopped. Paid and still running on fal: {shots}; a re-run collects them without paying again.",
            file=sys.stderr,
        )
    else:
        print("shotflow: stopped. No paid request is left running on fal.", file=sys.stderr)


def _drain_prefect_workers() -> None:
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


def _journal(settings):
    from shotflow.store.journal import Journal

    return Journal.in_cache(settings.cache_dir)


def _short_time(stamp: str | None) -> str:
    return "" if not stamp else stamp[:19].replace("T", " ")


def _row_cost(value) -> str:
    return "unknown" if value is None else f"${Decimal(str(value)):.2f}"


def cmd_ledger(args) -> int:
    from shotflow.store.ledger import FIELDS, ledger_rows, totals

    rows = ledger_rows(_journal(get_settings()).records(), since=args.since, storyboard=args.storyboard)
    if args.json:
        print(json.dumps([{name: row.get(name) for name in (*FIELDS, "intended_at")} for row in rows], indent=2))
        return 0
    if not rows:
        print("no fal request in the journal" + (" for that selection" if args.since or args.storyboard else ""))
        return 0
    print(
        table(
            [
                [
                    r["shot"] or "",
                    r["storyboard"] or "(before the ledger)",
                    r["endpoint"] or "",
                    r["request_id"] or "(none: uncertain)" if r["state"] in ("uncertain", "intended") else r["request_id"] or "",
                    r["state"] or "",
                    _row_cost(r["estimated_cost_usd"]),
                    _short_time(r["submitted_at"] or r.get("intended_at")),
                    _short_time(r["finished_at"]),
                ]
                for r in rows
            ],
            ["shot", "storyboard", "endpoint", "request id", "state", "est. cost", "sent (UTC)", "finished (UTC)"],
        )
    )
    sums = totals(rows)
    for group, title in (("per_day", "day (UTC)"), ("per_model", "model")):
        print()
        print(
            table(
                [
                    [name, b["requests"], f"${Decimal(b['estimated_cost_usd']):.2f}" + (f" + {b['unpriced']} unpriced" if b["unpriced"] else "")]
                    for name, b in sums[group].items()
                ],
                [title, "requests fal may have billed", "estimated cost"],
            )
        )
    return 0


def cmd_cancel(args) -> int:
    from shotflow.store.ledger import same_storyboard  # one notion of "the same storyboard" (ledger.py)

    targets = list(args.targets)
    storyboard = args.storyboard
    if args.all:
        if len(targets) > 1:
            raise ShotflowError("cancel --all takes at most one storyboard FILE, not shot ids")
        storyboard = storyboard or (targets[0] if targets else None)
        targets = []
    elif not targets:
        raise ShotflowError("cancel: name the shots (SHOT...), or --all [FILE]")
    settings = get_settings()
    from shotflow.tasks.secrets import fal_key

    from shotflow.generation.choose import open_backend

    key = fal_key(settings)
    if not key:
        raise MissingKeyError("cancelling a request needs the fal key that paid for it: set FAL_KEY")
    with open_backend("fal", settings, key=key) as backend:
        live = [r for r in backend.journal.records() if r.state == "submitted" and r.request_id]
        if storyboard is not None:
            wanted = same_storyboard(storyboard)
            live = [r for r in live if r.storyboard and same_storyboard(r.storyboard) == wanted]
        chosen = live
        if targets:
            chosen = []
            for shot in targets:
                mine = [r for r in live if r.shot == shot]
                if not mine:
                    print(f"shotflow: shot '{shot}': no request of it is running on fal" + (f" for {storyboard}" if storyboard else ""))
                elif len(mine) > 1 and storyboard is None:
                    boards = ", ".join(sorted({r.storyboard or "(unknown storyboard)" for r in mine}))
                    raise ShotflowError(f"shot '{shot}' has requests running for several storyboards ({boards}): add --storyboard FILE")
                chosen.extend(mine)
        if not chosen and not targets:
            print("shotflow: no paid request is running on fal" + (f" for {storyboard}" if storyboard else ""))
            return 0
        still_running = 0
        for record in chosen:
            _, verdict = backend.cancel(record.key)
            what = {
                "cancelled": "cancelled (fal confirms it ended; a re-run submits it anew)",
                "finished": "finished before the cancel landed: paid for, and a re-run collects it",
                "running": "fal still reports it running after the cancel: it may be billed; try again or check fal's dashboard",
                "not live": "no longer running (nothing to cancel)",
            }.get(verdict, verdict)
            print(f"shotflow: shot '{record.shot}' (fal request {record.request_id}): {what}")
            still_running += verdict == "running"
    return 1 if still_running else 0


def cmd_accept(args) -> int:
    from shotflow.generation.fal.backend import accept_clip
    from shotflow.store.clips import ClipStore

    plan = load_plan(args.file, vars=parse_vars(args.var))
    shot = plan.shot(args.shot)
    settings = get_settings()
    store = ClipStore(settings.cache_dir)
    key = ClipStore.key("fal", shot)
    journal = _journal(settings)
    before = journal.read(key)
    record = accept_clip(journal, store, key, args.clip)
    what = f"your file {args.clip}" if args.clip else "the clip kept aside"
    reason = f" (it had been kept aside because: {before.quarantine_reason})" if before and before.quarantine_reason else ""
    print(f"shotflow: shot '{shot.id}': {what} is now its clip{reason}; fal request {record.request_id} is {record.state}")
    print(f"shotflow: the next `shotflow run {args.file}` uses it without paying")
    return 0


def _describe_schedule(s) -> str:
    sch = s.board.schedule
    return f"{sch.cron or (f'every {sch.interval} s' if sch.interval else sch.rrule)} ({sch.timezone})"


def cmd_server(args) -> int:
    """A persistent local Prefect server that every `shotflow run` reuses (deployments/localserver.py)."""
    from shotflow.deployments import localserver

    if args.action == "start":
        print(f"shotflow: starting a local Prefect server (state in {localserver.state_file()})...", flush=True)

        def still(seconds: float) -> None:
            print(f"shotflow: still starting Prefect ({seconds:.0f} s; its first start prepares a database)...", flush=True)

        url, started = localserver.start(still, limit=get_settings().concurrency, limit_name=get_settings().concurrency_limit_name)
        what = "started" if started else "already running"
        print(f"shotflow: Prefect server {what} at {url.removesuffix('/api')}; every `shotflow run` reports to it; stop it with: shotflow server stop")
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
        print(f"shotflow: serving {s.name}: {s.path}, {_describe_schedule(s)}")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "INFO")
    stopping = _stop_on_signals()
    server = None
    from shotflow.deployments import localserver

    reusable = None if os.environ.get("PREFECT_API_URL") else localserver.find()
    if reusable:  # `shotflow server start` left one running: serve there, its UI shows everything
        os.environ["PREFECT_API_URL"] = reusable
        print(f"shotflow: Prefect UI at {reusable.removesuffix('/api')} (the local server: shotflow server status)", flush=True)
    elif not os.environ.get("PREFECT_API_URL"):
        from shotflow.deployments.server import PrefectServer

        # the embedded API runs no scheduler: a private server makes the schedules fire
        print("shotflow: starting a private Prefect server on 127.0.0.1 (schedules need one; a first start prepares a database)...", flush=True)
        server = PrefectServer(start_timeout=300).launch()
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
            print(f"shotflow: created the global concurrency limit '{settings.concurrency_limit_name}' ({settings.concurrency} fal requests in flight)")
        serve(*runner_deployments(args.pipelines), print_starting_message=True)
    except BaseException:
        # SIGINT/SIGTERM raise KeyboardInterrupt wherever the runner is: inside its async code it
        # can come out wrapped (an exception group, a cancel-scope RuntimeError). A stop is a stop.
        if not stopping.is_set():
            raise
    finally:
        if server:
            localserver.forget(server.process.pid)
            server.stop()
        print("shotflow: stopped", flush=True)
    return 0


def _stop_on_signals():
    """SIGTERM and SIGINT end `serve` cleanly, even when the shell started it with SIGINT ignored."""
    import signal
    import threading

    stopping = threading.Event()

    def stop(signum, frame):
        if not stopping.is_set():
            stopping.set()
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return stopping


def cmd_deploy(args) -> int:
    from shotflow.deployments.storyboards import deploy, prefect_yaml

    if args.prefect_yaml:
        text = prefect_yaml(args.pool, args.pipelines, args.limit)
        try:
            with open(args.prefect_yaml, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise ShotflowError(f"cannot write {args.prefect_yaml}: {exc.strerror}") from None
        print(f"shotflow: wrote {args.prefect_yaml}; deploy with: prefect deploy --all")
        return 0

    names = deploy(args.pool, folder=args.pipelines, source=args.source, limit=args.limit)
    for name in names:
        print(f"shotflow: deployed {name} to work pool '{args.pool}'")
    print(f"shotflow: start a worker with: prefect worker start --pool {args.pool}")
    return 0


def bounded_int(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value

    return parse


def usd(text: str) -> Decimal:
    try:
        value = Decimal(text.lstrip("$"))
    except ArithmeticError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount of dollars") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount of dollars")
    return value


def utc_day(text: str):
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day: write YYYY-MM-DD") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shotflow", description="Storyboard YAML to finished video.")
    parser.add_argument("--version", action="version", version=f"shotflow {shotflow_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("new", help="write a commented starter storyboard NAME.yaml")
    p.add_argument("name", metavar="NAME", help="the file to write (.yaml is added); an existing file is never replaced")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("validate", help="check storyboards before any money is spent")
    p.add_argument("files", nargs="+", metavar="FILE")
    add_var_option(p)
    p.add_argument("--json", action="store_true", help="one JSON object: per file ok and its problems (file, line, shot, message)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("models", help="the ten models: durations, shapes, audio, seed, prices; NAME: one in full")
    p.add_argument("name", nargs="?", metavar="NAME", help="an alias or endpoint: every input field, the price and its date")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("estimate", help="per-shot and total seconds and cost")
    p.add_argument("files", nargs="+", metavar="FILE")
    add_var_option(p)
    p.add_argument("--json", action="store_true", help="one JSON object: per shot seconds, model and cost (null if unknown), totals")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser("schema", help="JSON Schema of the storyboard format, for editors")
    p.add_argument("-o", "--output", metavar="PATH", help="write to PATH instead of standard output")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("run", help="render a storyboard to a video")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--backend", choices=["fal", "preview"], help="default: fal when FAL_KEY is set, else preview")
    p.add_argument("--out", metavar="PATH", help="the final video (default: the storyboard's output.path)")
    p.add_argument("--concurrency", type=bounded_int(1, 64), metavar="N", help="fal requests in flight at once (default 4)")
    p.add_argument(
        "--model-concurrency", action="append", default=[], metavar="MODEL=N", help="cap one model's requests in flight (repeatable)"
    )
    p.add_argument("--max-cost", type=usd, metavar="USD", help="refuse to start if the estimate is higher")
    p.add_argument("--force", action="append", default=[], metavar="SHOT", help="regenerate this shot (repeatable)")
    add_var_option(p)
    p.add_argument("--json", action="store_true", help="print one JSON object at the end (and nothing else on stdout)")
    p.add_argument("-v", "--verbose", action="store_true", help="show Prefect's own log lines too")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("ledger", help="every fal request the journal knows, with spend per day and per model")
    p.add_argument("--json", action="store_true", help="a JSON list, one object per request")
    p.add_argument("--since", type=utc_day, metavar="DATE", help="requests sent on or after this UTC day (YYYY-MM-DD)")
    p.add_argument("--storyboard", metavar="FILE", help="requests sent by runs of this storyboard")
    p.set_defaults(func=cmd_ledger)

    p = sub.add_parser("cancel", help="cancel paid requests still running on fal (checks fal's answer)")
    p.add_argument("targets", nargs="*", metavar="SHOT", help="shot ids; with --all, an optional storyboard FILE")
    p.add_argument("--all", action="store_true", help="every request still running on fal (of FILE's runs, if given)")
    p.add_argument("--storyboard", metavar="FILE", help="only requests sent by runs of this storyboard")
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("accept", help="use a paid clip that was kept aside (quarantined) as the shot's clip")
    p.add_argument("shot", metavar="SHOT")
    p.add_argument("file", metavar="FILE", help="the storyboard the shot belongs to")
    p.add_argument("--clip", metavar="PATH", help="use this video file instead of the copy kept aside")
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="the vars of the run that paid for it")
    p.set_defaults(func=cmd_accept)

    p = sub.add_parser("server", help="a persistent local Prefect server that every run reuses: start, stop, status")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.set_defaults(func=cmd_server)

    p = sub.add_parser("serve", help="serve every scheduled storyboard from this process")
    p.add_argument("--pipelines", default="pipelines", metavar="DIR")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("deploy", help="register scheduled storyboards on a Prefect server for workers")
    p.add_argument("--pool", default="shotflow", help="process work pool (created if missing)")
    p.add_argument("--pipelines", default="pipelines", metavar="DIR")
    p.add_argument("--source", default=".", help="where workers find this code: a folder, or a git URL")
    p.add_argument("--limit", type=bounded_int(1, 1000), default=4, help="fal requests in flight across all runs (global concurrency limit)")
    p.add_argument("--prefect-yaml", metavar="PATH", help="instead of deploying, write a prefect.yaml for `prefect deploy --all`")
    p.set_defaults(func=cmd_deploy)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except StoryboardError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except ShotflowError as exc:
        print(f"shotflow: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("shotflow: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
