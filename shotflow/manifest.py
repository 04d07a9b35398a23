"""The run manifest written next to the final video: what was asked, of whom, and what came back."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from shotflow.backend import GeneratedClip
from shotflow.plan import Plan


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sidecar(video: str | Path, suffix: str) -> Path:
    """out/film.mp4 -> out/film.<suffix>"""
    video = Path(video)
    return video.with_name(f"{video.stem}.{suffix}")


@dataclass(frozen=True)
class ShotRecord:
    """One shot of a finished (or failed) run, as the manifest and the run's artifacts show it."""

    id: str
    model: str
    seconds: int
    cost: str | None
    status: str  # done / failed
    cache_hit: bool | None = None
    request_id: str | None = None
    clip: str | None = None
    error: str | None = None


def write_manifest(
    plan: Plan, clips: list[GeneratedClip], *, backend: str, video: Path, duration: float, extra: dict[str, Any] | None = None
) -> Path:
    by_id = {c.shot: c for c in clips}
    shots = []
    for s in plan.shots:
        clip = by_id[s.id]
        shots.append(
            {
                "id": s.id,
                "model": s.model,
                "endpoint": s.endpoint,
                "body": s.body,
                "body_hash": s.body_hash,
                "seconds": s.seconds,
                "cost_usd": None if s.cost is None else str(s.cost),
                "request_id": clip.request_id,
                "cache_hit": clip.cache_hit,
                "clip": str(clip.path),
                "clip_sha256": file_sha256(clip.path),
            }
        )
    manifest = {
        "shotflow_manifest": 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "storyboard": plan.source,
        "storyboard_sha256": plan.storyboard_hash,
        "title": plan.title,
        "backend": backend,
        "output": {
            "path": str(video),
            "width": plan.output.width,
            "height": plan.output.height,
            "fps": plan.output.fps,
            "duration": round(duration, 3),
            "sha256": file_sha256(video),
        },
        "estimated_cost_usd": str(plan.known_cost),
        "unpriced_shots": [s.id for s in plan.unpriced],
        "shots": shots,
        **(extra or {}),
    }
    path = sidecar(video, "manifest.json")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
