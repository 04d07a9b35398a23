"""`shotflow export FILE --format otio|fcpxml|edl [--out PATH]`: a storyboard's last run as a
timeline for an editor (shotflow/report/timeline.py), read from the manifest beside its video.

FILE is the storyboard (its output.path, or --video for a run made with `run --out`, says where
the video and its manifest are) or the manifest itself. What a format could not keep is said as
a warning on stderr; the timeline's path goes to stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path

from shotflow.cli.options import parse_vars
from shotflow.errors import ShotflowError
from shotflow.plan import load_plan
from shotflow.report.manifest import read_manifest, sidecar


def cmd_export(args) -> int:
    from shotflow.report.timeline import described, export_timeline  # OpenTimelineIO only when exporting

    manifest = _manifest_of(args)
    exported = export_timeline(manifest, args.format, args.out)
    for warning in exported.warnings:
        print(f"shotflow: warning: {warning}", file=sys.stderr)
    print(f"shotflow: timeline: {described(exported)}")
    return 0


def _manifest_of(args) -> Path:
    """The manifest of FILE's last run; ShotflowError saying to run it first when there is none."""
    file = Path(args.file)
    if file.name.endswith(".manifest.json"):
        if not file.is_file():
            raise ShotflowError(f"{file}: no such manifest")
        return file
    plan = load_plan(args.file, out=args.video, vars=parse_vars(args.var))
    manifest = sidecar(plan.output.path, "manifest.json")
    if not manifest.is_file():
        again = f"shotflow run {args.file}" + (f" --out {args.video}" if args.video else "")
        raise ShotflowError(
            f"{args.file}: nothing to export yet: no manifest at {manifest} (it is written at the end of a run): "
            f"run it first (`{again}`), or give the video a run made elsewhere with --video PATH"
        )
    last = read_manifest(manifest)
    picks_then = (last.get("fingerprint") or {}).get("picks")
    picks_now = {s.id: s.take for s in plan.shots} if plan.has_takes else None
    if last.get("storyboard_sha256") != plan.storyboard_hash or picks_then != picks_now:
        what = "its picks changed" if last.get("storyboard_sha256") == plan.storyboard_hash else "it changed"
        print(
            f"shotflow: note: {args.file}: {what} since its last run: the timeline is that run's cut (the one in its "
            f"video); `shotflow run {args.file}` first for the new one",
            file=sys.stderr,
        )
    return manifest


def print_exports(records: list[dict]) -> None:
    """The timelines a run wrote (`run --export`), for the run's summary: path, or why not, and warnings."""
    for record in records:
        if "error" in record:
            print(f"timeline:      {record['format']} not written: {record['error']}")
            continue
        print(f"timeline:      {record['description']}")
        for warning in record["warnings"]:
            print(f"               warning: {warning}")
