"""The run manifest written next to the final video: what was asked, of whom, and what came back.

Money is worded by what happened. A preview (an offline animatic) pays nothing: its manifest
says what the shots would cost on fal (`estimated_cost_usd_on_fal`, per shot `cost_usd_on_fal`)
and `spent: false`, and has no `estimated_cost_usd` key that could be read as spent. A fal run
keeps `estimated_cost_usd` (every shot at the catalog's prices) and adds what this run sent to
fal (`estimated_spent_usd`; `spent` is false when every clip came from the clip store). These
are estimates: what fal billed is in the journal (`shotflow ledger`).

A shot that continues another (`from:`) or starts on a still (`image:`, `end_image:`) is recorded
as it was sent: its body holds each frame's reference (`shotflow-frame:sha256:...`, never the
data), `source` names the shot it continues, and `frames` gives each frame's body field, sha256,
stored path and origin (from the clip's `GeneratedClip.frames`).

`fingerprint` (see shotflow/report/uptodate.py) is what a re-run compares to answer "up to date"
without rendering; `timings.last_clip_to_final_s` (from the flow) is how long the video took
from the last clip verified in the store to the final file.

With a shared store (SHOTFLOW_STORE=s3://...), `store` gives where the run publishes the video and
its sidecars (role -> s3:// URL, shotflow.store.publish) and `output.url` the video's: lasting
names, from which links are made when shown (a presigned link expires).

`read_manifest` reads every version written so far, and gives the current shape: a version 1
manifest (before the wording above) is upgraded in memory. `cost_line` is the one sentence the
run summary and the CLI show (its amounts worded by shotflow/money.py, as everywhere).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Mapping

from shotflow.assembly.recipe import frames
from shotflow.errors import ShotflowError
from shotflow.model import GeneratedClip, Plan, ShotPlan
from shotflow.money import PREVIEW, on_fal, unpriced_shots, usd
from shotflow.report.uptodate import fingerprint
from shotflow.store.atomic import write_text_atomic
from shotflow.store.digest import file_sha256

# 2: a preview's costs are named as what fal would charge, and `spent` says whether money went out
VERSION = 2


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
    plan: Plan,
    clips: list[GeneratedClip],
    *,
    backend: str,
    video: Path,
    duration: float,
    extra: dict[str, Any] | None = None,
    normalised: Mapping[str, Path] | None = None,
    store: Mapping[str, str] | None = None,
) -> Path:
    """Write `<video stem>.manifest.json` beside the video (the current VERSION); returns its path.
    `normalised`: each shot's clip as the assembly brought it to the output, by shot id (what an
    editor's timeline points at: report/timeline.py). `store`: with a shared store, where the run
    publishes each output (role -> s3:// URL: shotflow.store.publish), recorded as `store` and the
    video's `output.url`."""
    made = {(c.shot, c.take): c for c in clips}  # a clip of every take of every shot
    # every shot (every take) as it was sent
    plan = replace(
        plan,
        shots=tuple(as_made(s, made[s.id, s.take]) for s in plan.shots),
        generations=tuple(as_made(s, made[s.id, s.take]) for s in plan.generations if (s.id, s.take) in made),
    )
    shots = []
    for s in plan.shots:
        clip = made[s.id, s.take]
        shots.append(
            {
                "id": s.id,
                # continuity: the shot it continues, and the frames it was sent with (hashes and stored paths)
                **({"source": s.source} if s.source else {}),
                **({"frames": [asdict(f) for f in s.frames]} if s.frames else {}),
                "model": s.model,
                "endpoint": s.endpoint,
                "body": s.body,
                "body_hash": s.body_hash,
                "seconds": s.seconds,
                _shot_cost_key(backend): None if s.cost is None else str(s.cost),
                "request_id": clip.request_id,
                "cache_hit": clip.cache_hit,
                "clip": str(clip.path),
                "clip_sha256": file_sha256(clip.path),
                # for an editor's timeline (report/timeline.py): the clip the video is cut from, and the cut into it
                **({"normalised": _normalised(normalised[s.id], s, plan)} if normalised and s.id in normalised else {}),
                **({"cut_into": _cut_into(plan, s.index)} if s.index else {}),
                # a clip kept aside by verification, then accepted by the user: why it failed
                **({"accepted_despite": clip.accepted_despite} if clip.accepted_despite else {}),
                # several takes: the one cut into the video, and every take made
                **(
                    {
                        "take": s.take,
                        "takes": [_take(t, made[t.id, t.take], backend) for t in plan.takes_of(s.id) if (t.id, t.take) in made],
                    }
                    if s.takes > 1
                    else {}
                ),
            }
        )
    manifest = {
        "shotflow_manifest": VERSION,
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
            **({"url": store["video"]} if store and store.get("video") else {}),
        },
        # with a shared store: where the video and its sidecars are published (links are made from these)
        **({"store": dict(store)} if store else {}),
        **cost_fields(backend, plan.all_takes, {(c.shot, c.take) for c in clips if not c.cache_hit}),
        "shots": shots,
        # what `shotflow run` compares, before importing Prefect, to answer "up to date"
        "fingerprint": fingerprint(plan, backend),
        **(extra or {}),
    }
    # a manifest is for sharing, like the video beside it: readable by others (0o644)
    return write_text_atomic(sidecar(video, "manifest.json"), json.dumps(manifest, indent=2) + "\n", mode=0o644)


def _take(take: ShotPlan, clip: GeneratedClip, backend: str) -> dict[str, Any]:
    """One take of a shot with several, as the manifest lists it."""
    return {
        "take": take.take,
        "body_hash": take.body_hash,
        **({"prompt": take.body["prompt"]} if take.body.get("prompt") else {}),
        **({"seed": take.body["seed"]} if "seed" in take.body else {}),
        _shot_cost_key(backend): None if take.cost is None else str(take.cost),
        "request_id": clip.request_id,
        "cache_hit": clip.cache_hit,
        "clip": str(clip.path),
        "clip_sha256": file_sha256(clip.path),
    }


def _normalised(path: Path, shot: ShotPlan, plan: Plan) -> dict[str, Any]:
    return {"path": str(path), "frames": frames(shot.seconds, plan.output.fps)}


def _cut_into(plan: Plan, index: int) -> dict[str, Any]:
    cut = plan.output.cut_into(index)
    return {"effect": cut.effect, "frames": frames(cut.overlap, plan.output.fps)}


def as_made(shot: ShotPlan, clip: GeneratedClip) -> ShotPlan:
    """The shot as its clip was made: one with frames gets them from the clip (`GeneratedClip.frames`),
    its body holding each frame's reference as `shotflow.generation.continuity.resolve` puts it."""
    if shot.resolved:
        return shot
    body = {**shot.body, **{f.field: f.reference for f in clip.frames}}
    return replace(shot, body=body, frames=tuple(clip.frames))


# --- money ----------------------------------------------------------------------------------


def _shot_cost_key(backend: str) -> str:
    return "cost_usd_on_fal" if backend == PREVIEW else "cost_usd"


def cost_fields(backend: str, shots: Iterable, generated: set[tuple[str, int]]) -> dict[str, Any]:
    """The manifest's top-level money keys for these shots (ShotPlans: every take); `generated`:
    the (shot id, take) made in this run (not found in the clip store)."""
    shots = list(shots)
    known = sum((s.cost for s in shots if s.cost is not None), Decimal(0))
    unpriced = list(dict.fromkeys(s.id for s in shots if s.cost is None))
    if backend == PREVIEW:
        return {"spent": False, "estimated_cost_usd_on_fal": str(known), "unpriced_shots": unpriced}
    spent = sum((s.cost for s in shots if (s.id, s.take) in generated and s.cost is not None), Decimal(0))
    return {
        "spent": bool(generated),
        "estimated_cost_usd": str(known),
        "estimated_spent_usd": str(spent),
        "unpriced_shots": unpriced,
    }


def cost_line(manifest: Mapping[str, Any]) -> str:
    """What the run cost, in one sentence for the run summary and the CLI (from `read_manifest`)."""
    unpriced = manifest.get("unpriced_shots") or []
    plus = unpriced_shots(len(unpriced), unpriced)
    if manifest.get("backend") == PREVIEW:
        return f"{on_fal(usd(manifest.get('estimated_cost_usd_on_fal')) + plus, PREVIEW)}; nothing was paid (an offline preview)"
    shots = manifest.get("shots") or []
    made = sum(1 for s in shots if s.get("cache_hit") is False)
    total = f"{on_fal(usd(manifest.get('estimated_cost_usd')) + plus, manifest.get('backend'))} (estimated)"
    if not manifest.get("spent"):
        return f"{total}, all paid in earlier runs: every clip came from the clip store"
    if made == len(shots):
        return f"{total}, all of it for shots generated in this run"
    return (
        f"{total}: {usd(manifest.get('estimated_spent_usd'))} of it for the {made} shot{'s' if made != 1 else ''} "
        f"generated in this run, the other {len(shots) - made} from the clip store"
    )


def cost_summary(manifest_path: str | Path) -> dict[str, Any]:
    """A written manifest's money keys and its `cost_line` (as "cost"), e.g. for a run's result."""
    manifest = read_manifest(manifest_path)
    keys = ("spent", "estimated_cost_usd", "estimated_spent_usd", "estimated_cost_usd_on_fal", "unpriced_shots")
    return {**{k: manifest[k] for k in keys if k in manifest}, "cost": cost_line(manifest)}


# --- reading ----------------------------------------------------------------------------------


def read_manifest(path: str | Path) -> dict[str, Any]:
    """A manifest of any version so far, in the current shape; ShotflowError naming the file
    when it cannot be read or was written by a newer shotflow."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ShotflowError(f"{path}: cannot read the manifest ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShotflowError(f"{path}: not a shotflow manifest (not JSON: {exc})") from None
    version = manifest.get("shotflow_manifest") if isinstance(manifest, dict) else None
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ShotflowError(f"{path}: not a shotflow manifest (no 'shotflow_manifest' version)")
    if version > VERSION:
        raise ShotflowError(
            f"{path}: manifest version {version} was written by a newer shotflow (this one reads up to {VERSION})"
        )
    if version == 1:
        manifest = _from_version_1(manifest)
    return manifest


def _from_version_1(old: dict[str, Any]) -> dict[str, Any]:
    """Version 1 called a preview's would-be cost `estimated_cost_usd`, and had no `spent`."""
    manifest = {**old, "shotflow_manifest": VERSION}
    shots = [dict(s) for s in old.get("shots") or []]
    manifest["shots"] = shots
    if old.get("backend") == PREVIEW:
        manifest["estimated_cost_usd_on_fal"] = manifest.pop("estimated_cost_usd", None)
        manifest["spent"] = False
        for shot in shots:
            shot["cost_usd_on_fal"] = shot.pop("cost_usd", None)
        return manifest
    generated = [s for s in shots if s.get("cache_hit") is False]
    spent = sum((Decimal(s["cost_usd"]) for s in generated if s.get("cost_usd") is not None), Decimal(0))
    manifest["spent"] = bool(generated)
    manifest["estimated_spent_usd"] = str(spent)
    return manifest
