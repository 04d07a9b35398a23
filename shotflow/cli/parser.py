"""The `shotflow` command's argument parser (every subcommand, its options and help texts) and
`main`, which dispatches to the command and turns shotflow's errors into one line and an exit code.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import importlib
import sys
from typing import Sequence

from shotflow.cli.options import add_var_option, bounded_int, dollars_argument, utc_day
from shotflow.errors import ShotflowError, StoryboardError


def command(module: str, name: str):
    """The command `name` of `module`, imported when it runs: `shotflow --help` and `--version`
    import no command's code, and each command only its own (the catalog's input classes alone
    take a quarter of a second)."""

    def run(args):
        # The objects a command's imports make (the catalog, pydantic, rich) live as long as the
        # process: the cyclic collector walked them again and again while they were made (a 45 ms
        # pass before `run`'s first submit), so it waits until they are made, then skips them.
        gc.disable()
        try:
            loaded = importlib.import_module(module)
        finally:
            gc.freeze()
            gc.enable()
        return getattr(loaded, name)(args)

    run.__name__ = run.__qualname__ = name
    return run


cmd_new = command("shotflow.cli.storyboards", "cmd_new")
cmd_validate = command("shotflow.cli.storyboards", "cmd_validate")
cmd_estimate = command("shotflow.cli.storyboards", "cmd_estimate")
cmd_schema = command("shotflow.cli.storyboards", "cmd_schema")
cmd_models = command("shotflow.cli.models", "cmd_models")
cmd_run = command("shotflow.cli.run", "cmd_run")
cmd_ledger = command("shotflow.cli.paid", "cmd_ledger")
cmd_cancel = command("shotflow.cli.paid", "cmd_cancel")
cmd_accept = command("shotflow.cli.paid", "cmd_accept")
cmd_pick = command("shotflow.cli.takes", "cmd_pick")
cmd_reroll = command("shotflow.cli.takes", "cmd_reroll")
cmd_gc = command("shotflow.cli.gc", "cmd_gc")
cmd_server = command("shotflow.cli.servers", "cmd_server")
cmd_serve = command("shotflow.cli.servers", "cmd_serve")
cmd_deploy = command("shotflow.cli.servers", "cmd_deploy")
cmd_export = command("shotflow.cli.export", "cmd_export")


class VersionAction(argparse.Action):
    """--version: the installed version, looked up only when asked for."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help="show the version and exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from shotflow.report.uptodate import shotflow_version

        print(f"shotflow {shotflow_version(unknown='unknown (not installed: pip install -e .)')}")
        parser.exit()


TIMELINES = ["otio", "fcpxml", "edl"]  # shotflow.report.timeline.FORMATS, without importing OpenTimelineIO for every command


def add_files_command(sub, name: str, func, help: str, json_help: str) -> None:
    """validate and estimate: many storyboard FILEs, the same --var, text or --json."""
    p = sub.add_parser(name, help=help)
    p.add_argument("files", nargs="+", metavar="FILE")
    add_var_option(p)
    p.add_argument("--json", action="store_true", help=json_help)
    p.set_defaults(func=func)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shotflow", description="Storyboard YAML to finished video.")
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("new", help="write a commented starter storyboard NAME.yaml")
    p.add_argument("name", metavar="NAME", help="the file to write (.yaml is added); an existing file is never replaced")
    p.set_defaults(func=cmd_new)

    add_files_command(
        sub,
        "validate",
        cmd_validate,
        "check storyboards before any money is spent",
        "one JSON object: per file ok and its problems (file, line, shot, message)",
    )

    p = sub.add_parser("models", help="the ten models: durations, shapes, audio, seed, prices; NAME: one in full")
    p.add_argument("name", nargs="?", metavar="NAME", help="an alias or endpoint: every input field, the price and its date")
    p.set_defaults(func=cmd_models)

    add_files_command(
        sub,
        "estimate",
        cmd_estimate,
        "per-shot and total seconds and cost",
        "one JSON object: per shot seconds, model and cost (null if unknown), totals",
    )

    p = sub.add_parser("schema", help="JSON Schema of the storyboard format, for editors")
    p.add_argument("-o", "--output", metavar="PATH", help="write to PATH instead of standard output")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("run", help="render a storyboard to a video")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--backend", choices=["fal", "preview"], help="default: fal when FAL_KEY is set, else preview")
    p.add_argument("--out", metavar="PATH", help="the final video (default: the storyboard's output.path)")
    p.add_argument("--concurrency", type=bounded_int(1, 64), metavar="N", help="fal requests in flight at once (default 4)")
    p.add_argument(
        "--model-concurrency",
        action="append",
        default=[],
        metavar="MODEL=N",
        help="cap one model's requests in flight (repeatable)",
    )
    p.add_argument("--max-cost", type=dollars_argument, metavar="USD", help="refuse to start if the estimate is higher")
    p.add_argument("--force", action="append", default=[], metavar="SHOT", help="regenerate this shot (repeatable)")
    p.add_argument(
        "--force-descendants",
        action="store_true",
        help="with --force: consent to pay again for the shots that continue it (from:)",
    )
    p.add_argument(
        "--review",
        action="store_true",
        help="approve the plan before paying and pick each shot's take (as the storyboard's review: true)",
    )
    add_var_option(p)
    p.add_argument(
        "--export",
        action="append",
        choices=TIMELINES,
        metavar="FORMAT",
        help="also write the cut as a timeline next to the video: otio, fcpxml or edl (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object at the end (and nothing else on stdout)")
    p.add_argument("-v", "--verbose", action="store_true", help="show Prefect's own log lines too")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("export", help="write a storyboard's last run as a timeline for an editor (OTIO, FCPXML, EDL)")
    p.add_argument("file", metavar="FILE", help="the storyboard (or its run's NAME.manifest.json)")
    p.add_argument("--format", required=True, choices=TIMELINES, help="otio (full fidelity), fcpxml (Final Cut), edl (CMX3600)")
    p.add_argument("--out", metavar="PATH", help="where to write it (default: next to the video, NAME.otio etc.)")
    p.add_argument("--video", metavar="PATH", help="the video of a run made with `run --out PATH`")
    add_var_option(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("ledger", help="every fal request the journal knows, with spend per day and per model")
    p.add_argument("--json", action="store_true", help="a JSON list, one object per request")
    p.add_argument("--since", type=utc_day, metavar="DATE", help="requests sent on or after this UTC day (YYYY-MM-DD)")
    p.add_argument("--storyboard", metavar="FILE", help="requests sent by runs of this storyboard")
    p.add_argument("--videos", action="store_true", help="only the videos in the shared store (SHOTFLOW_STORE), with links")
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
    p.add_argument("--take", type=bounded_int(1, 1000), metavar="N", help="which take of the shot (default: the picked one)")
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="the vars of the run that paid for it")
    p.set_defaults(func=cmd_accept)

    p = sub.add_parser("pick", help="choose the take of a shot the video is cut from (kept in NAME.picks.yaml)")
    p.add_argument("file", metavar="FILE")
    p.add_argument("shot", metavar="SHOT")
    p.add_argument("take", type=bounded_int(1, 1000), metavar="TAKE")
    p.add_argument("--yes", action="store_true", help="consent to pay again for the shots that continue it (from:)")
    add_var_option(p)
    p.set_defaults(func=cmd_pick)

    p = sub.add_parser("reroll", help="buy one more take of one shot, without re-running the rest")
    p.add_argument("file", metavar="FILE")
    p.add_argument("shot", metavar="SHOT")
    p.add_argument("--prompt", metavar="TEXT", help="the new take's prompt (kept in NAME.picks.yaml); default: the shot's")
    p.add_argument("--backend", choices=["fal", "preview"], help="default: fal when FAL_KEY is set, else preview")
    p.add_argument("--max-cost", type=dollars_argument, metavar="USD", help="refuse if the new take is estimated higher")
    p.add_argument("--pick", action="store_true", help="also cut the new take into the video")
    p.add_argument("--yes", action="store_true", help="with --pick: consent to pay again for the shots that continue it")
    p.add_argument("--out", metavar="PATH", help="the final video, as for run (default: the storyboard's output.path)")
    add_var_option(p)
    p.set_defaults(func=cmd_reroll)

    p = sub.add_parser("gc", help="prune the clip store: what no storyboard, manifest or journal entry still needs")
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted, with sizes, and delete nothing")
    p.add_argument(
        "--older-than",
        type=bounded_int(0, 100000),
        metavar="DAYS",
        help="also delete takes no video is cut from, stored more than DAYS days ago (default: keep every take)",
    )
    p.add_argument(
        "--storyboards",
        nargs="+",
        metavar="PATH",
        help="the storyboards whose clips are kept: files or folders (default: ./*.yaml and pipelines/)",
    )
    p.add_argument(
        "--include-only-copies",
        action="store_true",
        help="also delete clips nothing needs that are the only copy of something paid for (fal keeps results only a while)",
    )
    p.set_defaults(func=cmd_gc)

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
    p.add_argument(
        "--limit", type=bounded_int(1, 1000), default=4, help="fal requests in flight across all runs (global concurrency limit)"
    )
    p.add_argument("--prefect-yaml", metavar="PATH", help="instead of deploying, write a prefect.yaml for `prefect deploy --all`")
    p.set_defaults(func=cmd_deploy)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # At exit, Python's last garbage collections walk every object Prefect and pydantic made:
    # 0.5-2 s after the video and manifest are written on a busy 2-core machine. Frozen objects
    # are skipped; nothing of shotflow's waits on them (files are closed, logs flushed by then).
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
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
