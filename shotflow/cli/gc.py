"""`shotflow gc`: prune the clip store of what no known storyboard, manifest or journal entry needs.

The storyboards are the ones named (files, or folders of them), else the current folder's *.yaml
and pipelines/; each is planned with its picks, and the manifests beside videos in its output
folder are read. A storyboard that does not validate, or a manifest that cannot be read, stops
gc before anything is deleted: what it needs would not be known. The rules are
shotflow/store/gc.py's; what the storyboards and manifests need, shotflow/needs.py's.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from shotflow.errors import ShotflowError, StoryboardError
from shotflow.needs import Needs, manifest_needs, plan_needs
from shotflow.picks import SUFFIX as PICKS_SUFFIX
from shotflow.plan import load_plan
from shotflow.settings import get_settings
from shotflow.store import gc


def cmd_gc(args) -> int:
    settings = get_settings()
    root = Path(settings.cache_dir)
    files, skipped = storyboard_files(args.storyboards)
    needs, manifests, problems = Needs(), [], []
    folders: list[Path] = []
    for file in files:
        try:
            plan = load_plan(file)
        except StoryboardError as exc:
            problems += [str(p) for p in exc.problems]
            continue
        except ShotflowError as exc:
            problems.append(f"{file}: {exc}")
            continue
        plan_needs(plan, root, settings, needs)
        folder = _output_folder(plan.output.path)
        if folder not in folders:
            folders.append(folder)
    from shotflow.report.manifest import read_manifest

    for folder in folders:
        for path in sorted(folder.glob("*.manifest.json")):
            try:
                manifest_needs(read_manifest(path), path, root, needs)
                manifests.append(path)
            except ShotflowError as exc:
                problems.append(str(exc))
    if problems:
        for problem in problems:
            print(problem)
        raise ShotflowError(
            "gc: what these storyboards or manifests need cannot be known, so nothing was deleted: fix them, or name the "
            "storyboards whose clips to keep with --storyboards"
        )
    if not files and not args.storyboards and not args.dry_run:
        # nothing to keep for would mean every normalised copy and timeline target goes: say it, do not guess
        raise ShotflowError(
            "gc: no storyboard here (*.yaml in this folder or pipelines/), so nothing says which clips are still needed "
            "and nothing was deleted: run it where your storyboards are, or name them with --storyboards PATH..."
            " (see what would go with --dry-run)"
        )
    found = gc.survey(root, needs, older_than_days=args.older_than, include_only_copies=args.include_only_copies)
    names = ", ".join(str(f) for f in files) or "none"
    print(
        f"shotflow gc: the clip store {root}; keeping what {len(files)} storyboard(s) ({names}) and {len(manifests)} "
        "manifest(s) beside their videos need, and what the journal needs"
    )
    if skipped:
        print(f"  (not storyboards, left out: {', '.join(map(str, skipped))})")
    if args.dry_run:
        _list(found.doomed, root, "would delete (dry run):")
        print(f"would free {_bytes(found.size)} ({_files(found.doomed)}); nothing was deleted")
    else:
        deleted, missed = gc.sweep(found)
        _list(deleted, root, "deleted:")
        for entry, why in missed:
            print(f"  kept {_shown(entry.path, root)}: {why}")
        print(f"freed {_bytes(sum(e.size for e in deleted))} ({_files(deleted)})")
    _spared(found, root, args.include_only_copies)
    return 0


def storyboard_files(given: list[str] | None) -> tuple[list[Path], list[Path]]:
    """The storyboards to keep clips for, and the YAML files left out because they are not
    storyboards (a mapping without `shots:`, or not a mapping). A file that cannot be parsed is
    kept in: its validation says what is wrong."""
    paths: list[Path] = []
    for item in given or [".", "pipelines"]:
        path = Path(item)
        if path.is_dir():
            paths += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        elif path.is_file():
            paths.append(path)
        elif given:
            raise ShotflowError(f"gc: {item}: no such file or folder")
    files, skipped = [], []
    for path in dict.fromkeys(paths):
        if path.name.endswith(PICKS_SUFFIX):
            continue
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            files.append(path)
            continue
        (files if isinstance(data, dict) and "shots" in data else skipped).append(path)
    return files, skipped


def _output_folder(output: str) -> Path:
    from shotflow.storyboard.paths import output_path

    return output_path(output).parent


def _list(entries: list[gc.Entry], root: Path, title: str) -> None:
    if not entries:
        print(f"{title} nothing")
        return
    print(title)
    for entry in entries:
        paid = f" [{gc.ONLY_COPY}: {entry.paid}]" if entry.paid else ""
        print(f"  {_bytes(entry.size):>9}  {_shown(entry.path, root)}  {entry.why}{paid}")


def _spared(found: gc.Survey, root: Path, include_only_copies: bool) -> None:
    """What stays although nothing needs it, and why."""
    for reason, entries in found.spared.items():
        size = _bytes(sum(e.size for e in entries))
        extra = ""
        if reason == gc.ONLY_COPY:
            extra = (
                " (fal keeps a result's media only for a while; shotflow has no other copy): "
                "--include-only-copies deletes them, and they are gone for good"
            )
        print(f"kept {_files(entries)} ({size}) nothing else needs: {reason}{extra}")


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _files(entries: list[gc.Entry]) -> str:
    count = sum(1 + len(e.also) for e in entries)  # a clip and its meta are two
    return f"{count} file{'s' if count != 1 else ''}"


def _bytes(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"
