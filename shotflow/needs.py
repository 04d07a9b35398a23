"""What known storyboards and their videos still need from the clip store (for `shotflow gc`).

- A storyboard's plan, with its picks: every take of every shot, as a fal run and as a preview
  would send it (a shot that continues another, resolved from its source's stored clip:
  shotflow.generation.known). The take each shot is cut from is needed whatever its age; the
  other takes until they are older than `gc --older-than`. The frames the shots are sent with
  are needed too (a continuing shot's key holds its frame's hash).
- A run's manifest (beside its video): the clip each shot was cut from, the normalised copy the
  video (and an editor's timeline) was made of, and the frames it was sent with, whatever the
  storyboard says now; the other takes it lists, as takes.

`Needs` is what `shotflow.store.gc.survey` reads; the journal's own needs (requests not settled)
and the ledger's (the only copy of something paid for) are read there. This module imports no
Prefect; the manifests are handed in already read (shotflow.report reads them).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shotflow.model import Plan
from shotflow.settings import Settings

CLIP_NAME = re.compile(r"^([0-9a-f]{64})\.mp4$")


@dataclass(frozen=True)
class Use:
    """Why a clip is needed: `cut` when a video is (or will be) cut from it, else it is a take
    kept to be picked (until it is older than `gc --older-than`)."""

    what: str
    cut: bool


@dataclass
class Needs:
    clips: dict[str, list[Use]] = field(default_factory=dict)  # clip key -> why it is needed
    files: dict[Path, str] = field(default_factory=dict)  # other stored files a manifest names (normalised copies)
    frames: set[str] = field(default_factory=set)  # sha256 of frames the shots are, or were, sent with
    clip_hashes: set[str] = field(default_factory=set)  # sha256 of clips a video was cut from (a superseded copy may be one)

    def use(self, key: str, what: str, cut: bool) -> None:
        self.clips.setdefault(key, []).append(Use(what, cut))


def plan_needs(plan: Plan, cache_dir: str | os.PathLike, settings: Settings, needs: Needs) -> None:
    """Add what `plan` needs: every take's clip under either backend's key, and the frames."""
    from shotflow.generation.known import known_requests
    from shotflow.store.clips import ClipStore

    name = Path(plan.source).name
    for backend in ("fal", "preview"):
        known = known_requests(plan, backend, cache_dir, settings)
        for take in plan.all_takes:
            found = known.get(take.label)
            if found is None:  # continues a shot whose clip is not stored: no clip of it can be found either
                continue
            sent = found[0]
            cut = take.take == plan.pick_of(take.id)
            what = f"shot '{take.id}' of {name}" if take.takes == 1 else f"take {take.take} of '{take.id}' ({name})"
            needs.use(ClipStore.key(backend, sent), what, cut)
            needs.frames.update(f.sha256 for f in sent.frames)


def manifest_needs(manifest: dict[str, Any], path: str | os.PathLike, cache_dir: str | os.PathLike, needs: Needs) -> None:
    """Add what the video of the manifest at `path` was made of (paths outside this store are not
    this store's business)."""
    clips = Path(cache_dir).resolve() / "clips"
    video = Path(str((manifest.get("output") or {}).get("path") or path)).name
    for shot in manifest.get("shots") or []:
        if not isinstance(shot, dict):
            continue
        key = _key(shot.get("clip"), clips)
        if key:
            needs.use(key, f"shot '{shot.get('id')}' of the video {video}", True)
        if isinstance(shot.get("clip_sha256"), str):
            needs.clip_hashes.add(shot["clip_sha256"])
        normalised = (shot.get("normalised") or {}).get("path") if isinstance(shot.get("normalised"), dict) else None
        if isinstance(normalised, str) and normalised:
            needs.files[Path(normalised).resolve()] = f"the video {video} (and its timelines) are cut from it"
        for frame in shot.get("frames") or []:
            if isinstance(frame, dict) and isinstance(frame.get("sha256"), str):
                needs.frames.add(frame["sha256"])
        for take in shot.get("takes") or []:
            if not isinstance(take, dict):
                continue
            key = _key(take.get("clip"), clips)
            if key:
                needs.use(key, f"take {take.get('take')} of '{shot.get('id')}' (listed in {Path(path).name})", False)


def _key(clip: Any, clips: Path) -> str | None:
    """The store key of a clip path, when it is a clip of this store."""
    if not isinstance(clip, str) or not clip:
        return None
    path = Path(clip)
    found = CLIP_NAME.match(path.name)
    if not found:
        return None
    try:
        inside = path.parent.resolve() == clips
    except OSError:
        return None
    return found.group(1) if inside else None
