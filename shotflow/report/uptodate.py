"""Is a run's video already made? Decided from its manifest, before Prefect is imported.

A finished run's manifest holds a `fingerprint` (written by `manifest.write_manifest`): shotflow's
version, the backend, the storyboard as planned (vars resolved, `{{ date }}` included: the
plan's `storyboard_hash`), the output spec, every shot's request body hash and the hash of every
input file (the soundtrack). A re-run is "up to date" when that fingerprint is the same now, every
clip is still in the clip store and verified there (`ClipStore.stored` checks size and sha256)
with the hash the manifest recorded, so is each shot's normalised clip (an editor's timeline
points at it: report/timeline.py), the output file still has the manifest's sha256, and, with a
shared store, the store holds that video where the manifest says it was published.
Anything else (or no manifest, or one written before fingerprints) renders; `--force` always does.
A shot that continues another (`from:`) has a body hash only once its frame exists: it is
resolved from its source's stored clip (shotflow.generation.known); when that clip is not in the
store, the video is not up to date.

Nothing here imports Prefect: `shotflow run` answers an unchanged storyboard in about a second.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shotflow.store.digest import file_sha256

if TYPE_CHECKING:  # `shotflow --version` reads shotflow_version here without the settings' pydantic
    from shotflow.model import Plan
    from shotflow.settings import Settings

FINGERPRINT_VERSION = 1


def shotflow_version(unknown: str = "unknown") -> str:
    """shotflow's installed version (the fingerprint's and `shotflow --version`'s), or `unknown` for a
    checkout used without installing it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("shotflow")
    except PackageNotFoundError:
        return unknown


def input_files(plan: Plan) -> dict[str, str]:
    """Every file the storyboard reads, by role: {"soundtrack": path}."""
    return {"soundtrack": plan.output.soundtrack} if plan.output.soundtrack else {}


def fingerprint(plan: Plan, backend: str) -> dict[str, Any]:
    """What the video depends on, apart from the clips and the output file themselves (`plan`'s
    shots as they were sent: a shot that continues another, resolved)."""
    found = {**_settled(plan, backend), "shots": [[s.label, s.body_hash] for s in plan.all_takes]}
    if plan.has_takes:  # which take of each shot the video is cut from
        found["picks"] = {s.id: s.take for s in plan.shots}
    return found


def _settled(plan: Plan, backend: str) -> dict[str, Any]:
    """The fingerprint but its shots: known before any shot is resolved."""
    inputs = {}
    for role, path in input_files(plan).items():
        try:
            inputs[role] = {"path": str(path), "sha256": file_sha256(Path(path))}
        except OSError:
            inputs[role] = {"path": str(path), "sha256": None}  # missing now: never equal to a stored hash
    return {
        "version": FINGERPRINT_VERSION,
        "shotflow": shotflow_version(),
        "backend": backend,
        "storyboard_sha256": plan.storyboard_hash,
        "output_spec": hashlib.sha256(json.dumps(_output_spec(plan), sort_keys=True, default=str).encode()).hexdigest(),
        "inputs": inputs,
    }


def _output_spec(plan: Plan) -> dict[str, Any]:
    """The output settings, with the path made absolute (the CLI plans it relative to where the
    run starts, the flow's preflight resolves it against the same folder)."""
    spec = asdict(plan.output)
    spec["path"] = os.path.abspath(spec["path"])
    return spec


@dataclass(frozen=True)
class Verdict:
    up_to_date: bool
    reason: str  # why it renders, or "" when up to date
    manifest: dict[str, Any] | None = None
    manifest_path: Path | None = None


def check(plan: Plan, backend: str, cache_dir: Path, settings: Settings | None = None) -> Verdict:
    """Whether the video this plan would make is already there, unchanged (see the module doc)."""
    from shotflow.errors import ShotflowError
    from shotflow.generation.known import known_requests
    from shotflow.money import PREVIEW
    from shotflow.report.manifest import read_manifest, sidecar
    from shotflow.store.clips import ClipStore
    from shotflow.store.team import clip_store_at, journal_at

    video = Path(plan.output.path)
    path = sidecar(video, "manifest.json")
    if not path.is_file():
        return Verdict(False, f"no manifest at {path}: never rendered here")
    try:
        manifest = read_manifest(path)
    except ShotflowError as exc:
        return Verdict(False, str(exc))
    stored = manifest.get("fingerprint")
    if not isinstance(stored, dict):
        return Verdict(False, f"{path} has no fingerprint (written by an older shotflow)", manifest, path)
    now = _settled(plan, backend)
    for field, what in (
        ("shotflow", "shotflow's version"),
        ("backend", "the backend"),
        ("storyboard_sha256", "the storyboard (with its vars)"),
        ("output_spec", "the output settings"),
        ("version", "the fingerprint's format"),
    ):
        if stored.get(field) != now[field]:
            return Verdict(False, f"{what} changed since {path} was written", manifest, path)
    # each shot as it would be sent: one that continues another, from its source's stored clip
    known = known_requests(plan, backend, cache_dir, settings)
    sent = [[s.label, known[s.label][0].body_hash if known[s.label] else None] for s in plan.all_takes]  # None: not known now
    was = stored.get("shots") or []
    if stored.get("picks") != ({s.id: s.take for s in plan.shots} if plan.has_takes else None):
        return Verdict(False, f"the picked takes changed since {path} was written", manifest, path)
    if len(was) != len(sent) or any(then != it and (it[1] is not None or then[:1] != it[:1]) for then, it in zip(was, sent)):
        return Verdict(False, f"the shots changed since {path} was written", manifest, path)
    if stored.get("inputs") != now["inputs"]:
        changed = sorted(
            set(stored.get("inputs") or {}) ^ set(now["inputs"])
            | {k for k in now["inputs"] if (stored.get("inputs") or {}).get(k) != now["inputs"][k]}
        )
        return Verdict(False, f"input file(s) changed: {', '.join(changed)}", manifest, path)
    store = clip_store_at(cache_dir, settings)
    try:
        journal = None if backend == PREVIEW else journal_at(cache_dir, settings)  # a preview pays nothing
    except OSError as exc:
        return Verdict(False, f"the job journal in {cache_dir} cannot be opened ({exc})", manifest, path)
    recorded = {s.get("id"): s for s in manifest.get("shots") or []}
    picked = {s.label for s in plan.shots}
    for shot in plan.all_takes:  # every take's clip, and the picked ones the video was made of
        if known[shot.label] is None:  # its source's clip is not stored (said at that shot), or its still is unreadable
            why = "its still cannot be read"
            if shot.source:
                why = f"starts from the last frame of shot '{shot.source}', which has no clip in the clip store"
            return Verdict(False, f"shot '{shot.label}': {why}", manifest, path)
        key = ClipStore.key(backend, known[shot.label][0])
        try:  # a paid request of the shot not collected yet (a forced take, stopped say)
            pending = journal.read(key) if journal is not None else None
        except (ShotflowError, OSError) as exc:  # an unreadable record: the run says what to do with it
            return Verdict(False, f"shot '{shot.label}': its job journal cannot be read ({exc})", manifest, path)
        if pending is not None and pending.replaces_stored:
            return Verdict(
                False, f"shot '{shot.label}': fal request {pending.request_id} is paid for and not collected yet", manifest, path
            )
        found = store.stored(key)  # size and sha256 checked
        if found is None:
            return Verdict(False, f"shot '{shot.label}': its clip is no longer in the clip store", manifest, path)
        if shot.label in picked and found.sha256 != (recorded.get(shot.id) or {}).get("clip_sha256"):
            return Verdict(False, f"shot '{shot.id}': its stored clip is not the one the video was made of", manifest, path)
    for shot in plan.shots:  # the clips as the assembly made them: what `shotflow export`'s timelines point at
        normalised = (recorded.get(shot.id) or {}).get("normalised") or {}
        if not Path(normalised.get("path") or "").is_file():
            return Verdict(False, f"shot '{shot.id}': its normalised clip is gone (or not recorded in {path})", manifest, path)
    output = manifest.get("output") or {}
    try:
        if not video.is_file() or file_sha256(video) != output.get("sha256"):
            return Verdict(False, f"{video} is missing or was modified since it was rendered", manifest, path)
    except OSError as exc:
        return Verdict(False, f"{video}: cannot be read ({exc.strerror})", manifest, path)
    unpublished = _not_in_the_store(manifest, output.get("sha256"), settings)
    if unpublished:
        return Verdict(False, unpublished, manifest, path)
    return Verdict(True, "", manifest, path)


def _not_in_the_store(manifest: dict[str, Any], sha256: str | None, settings: Settings | None) -> str | None:
    """With a shared store, why the video is not there as rendered (its publish failed, or the
    store was set after it was made), else None: a run then renders it again (paying nothing) and
    publishes it."""
    from shotflow.settings import get_settings
    from shotflow.store.publish import url_key
    from shotflow.store.shared import SharedStoreError
    from shotflow.store.team import shared_store

    store = shared_store(settings or get_settings())
    if store is None:
        return None
    url = (manifest.get("store") or {}).get("video")
    if not url:
        return f"the video was never put in the shared store ({store.location.url})"
    try:
        info = store.stat(url_key(url, store.location))
    except SharedStoreError as exc:
        return f"its copy in the shared store cannot be checked ({exc})"
    if info is None or info.sha256 != sha256:
        return f"{url} is missing from the shared store, or is another video"
    return None
