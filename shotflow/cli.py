"""The `shotflow` command.

Commands that only read storyboards (validate, models, estimate, schema) never import Prefect,
so they answer in well under a second. `run` imports the flow lazily and says what it is doing
from its first second, since Prefect's embedded start alone takes seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from decimal import Decimal
from typing import Sequence

from shotflow import events
from shotflow.backends import choose_backend
from shotflow.catalog import MODELS, find_model
from shotflow.display import ShotDisplay
from shotflow.errors import ShotflowError, StoryboardError
from shotflow.plan import Plan, check_budget, load_plan
from shotflow.settings import get_settings
from shotflow.storyboard import json_schema


def money(amount: Decimal | None) -> str:
    return "unknown" if amount is None else f"${amount:.2f}"


def plan_cost(plan: Plan) -> str:
    text = money(plan.known_cost)
    if plan.unpriced:
        text += f" + {len(plan.unpriced)} unpriced shot{'s' if len(plan.unpriced) > 1 else ''} ({', '.join(s.id for s in plan.unpriced)})"
    return text


def table(rows: list[Sequence[str]], header: Sequence[str]) -> str:
    rows = [list(map(str, header))] + [list(map(str, r)) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cmd_validate(args) -> int:
    failed = 0
    for file in args.files:
        try:
            plan = load_plan(file)
        except StoryboardError as exc:
            failed += 1
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            continue
        print(
            f"{file}: ok: '{plan.title}', {len(plan.shots)} shots, {plan.final_seconds:g} s "
            f"at {plan.output.width}x{plan.output.height}, estimated {plan_cost(plan)}"
        )
    if failed:
        print(f"{failed} of {len(args.files)} storyboard{'s' if len(args.files) > 1 else ''} invalid", file=sys.stderr)
    return 1 if failed else 0


def cmd_models(args) -> int:
    rows = []
    for m in MODELS:
        rows.append(
            [
                m.alias,
                m.endpoint,
                ",".join(f"{s}" for s in m.seconds) + " s" + ("" if m.durations else " (fixed)"),
                ",".join(m.aspect_ratios) + ("" if m.has_field("aspect_ratio") else " (fixed)"),
                ",".join(m.resolutions) + ("" if m.has_field("resolution") else " (fixed)"),
                "optional" if m.audio == "param" else "no",
                f"{m.fps}",
                m.price.describe(),
            ]
        )
    print(table(rows, ["alias", "endpoint", "durations", "aspect ratios", "resolutions", "audio", "fps", "price"]))
    print("\nPrices as seen on fal's model pages (late 2025); they change often. 'unknown' is never counted as $0.")
    return 0


def cmd_estimate(args) -> int:
    plan = load_plan(args.file)
    rows = [
        [s.id, s.model, f"{s.seconds} s", s.resolution, f"{s.width}x{s.height}", "yes" if s.audio else "no", money(s.cost)]
        for s in plan.shots
    ]
    print(f"{plan.title} ({plan.source})")
    print(table(rows, ["shot", "model", "seconds", "resolution", "size", "audio", "cost"]))
    print(
        f"\n{len(plan.shots)} shots, {plan.generated_seconds} s generated, final video {plan.final_seconds:g} s "
        f"at {plan.output.width}x{plan.output.height} {plan.output.fps} fps"
    )
    print(f"estimated cost: {plan_cost(plan)}")
    return 0


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
    if args.backend is None and backend == "preview":
        print("shotflow: no FAL_KEY, so this is an offline preview (an animatic, $0); set FAL_KEY to generate for real")
    print(
        f"shotflow: '{plan.title}': {len(plan.shots)} shots, {plan.final_seconds:g} s at "
        f"{plan.output.width}x{plan.output.height}, {backend} backend, estimated {plan_cost(plan)}"
        + (" if generated on fal" if backend == "preview" else "")
    )
    print(
        "shotflow: starting Prefect (its embedded server prepares its database on first use: "
        "up to a minute on a busy machine)...",
        flush=True,
    )
    # Prefect gives its embedded server 20 s to start; a fresh database on a busy 2-core machine
    # took 26-28 s. A slow start must never fail a run: wait as long as it takes, within reason.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "600")
    # Prefect's own console lines (task tracebacks included) would tear through the live display
    # and bury the one-line error a user needs; the run logs still reach the Prefect API in full.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    # offline, the embedded server's telemetry only fails (and races SQLite at start-up)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from flows.render import render_storyboard

    with ShotDisplay(plan) as display:
        unsubscribe = events.subscribe(display)
        try:
            result = render_storyboard(
                storyboard=args.file,
                backend=backend,
                out=args.out,
                concurrency=args.concurrency if args.concurrency is not None else settings.concurrency,
                max_cost=float(args.max_cost) if args.max_cost is not None else None,
                force=args.force,
                model_concurrency=model_limits or None,
                vars=overrides or None,
            )
        finally:
            unsubscribe()
    print(f"\nvideo:         {result['video']} ({result['duration']:.2f} s)")
    print(f"contact sheet: {result['contact_sheet']}")
    print(f"manifest:      {result['manifest']}")
    return 0


def _describe_schedule(s) -> str:
    sch = s.board.schedule
    return f"{sch.cron or (f'every {sch.interval} s' if sch.interval else sch.rrule)} ({sch.timezone})"


def cmd_serve(args) -> int:
    from deployments.storyboards import scheduled_storyboards

    storyboards = scheduled_storyboards(args.pipelines)
    if not storyboards:
        raise ShotflowError(f"no storyboard in {args.pipelines} declares a schedule: nothing to serve")
    for s in storyboards:
        print(f"shotflow: serving {s.name}: {s.path}, {_describe_schedule(s)}")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "INFO")
    stopping = _stop_on_signals()
    server = None
    if not os.environ.get("PREFECT_API_URL"):
        from deployments.server import PrefectServer

        # the embedded API runs no scheduler: a private server makes the schedules fire
        print("shotflow: starting a private Prefect server on 127.0.0.1 (schedules need one)...", flush=True)
        server = PrefectServer().start()
        os.environ["PREFECT_API_URL"] = server.api_url
        print(f"shotflow: Prefect UI at {server.ui_url}", flush=True)
    try:
        if stopping.is_set():
            return 0
        from prefect import serve

        from deployments.storyboards import ensure_concurrency_limit, runner_deployments

        settings = get_settings()
        if ensure_concurrency_limit(settings.concurrency_limit_name, settings.concurrency):
            print(f"shotflow: created the global concurrency limit '{settings.concurrency_limit_name}' ({settings.concurrency} fal requests in flight)")
        serve(*runner_deployments(args.pipelines), print_starting_message=True)
    except (KeyboardInterrupt, SystemExit):  # Prefect's runner exits on SIGTERM by itself
        pass
    finally:
        if server:
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
    from deployments.storyboards import deploy, prefect_yaml

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shotflow", description="Storyboard YAML to finished video.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check storyboards before any money is spent")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("models", help="the ten models: durations, shapes, audio, prices")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("estimate", help="per-shot and total seconds and cost")
    p.add_argument("file", metavar="FILE")
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
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="override one of the storyboard's vars")
    p.set_defaults(func=cmd_run)

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
