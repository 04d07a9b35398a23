"""Assembly as Prefect tasks: normalise each clip as it lands, join, draw the contact sheet (from frames grabbed as clips landed)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from shotflow import assemble, contactsheet
from shotflow.backend import GeneratedClip
from shotflow.clipstore import ClipStore
from shotflow.plan import OutputSpec, Plan, ShotPlan
from shotflow.settings import get_settings

# ffmpeg is CPU-bound: more encodes at once than cores only slows each one down
_encoders = threading.BoundedSemaphore(os.cpu_count() or 2)


@task(name="normalise-clip", task_run_name="normalise-{shot.id}", cache_policy=NO_CACHE)
def normalise_clip(clip: GeneratedClip, shot: ShotPlan, output: OutputSpec) -> Path:
    """The clip brought to the output spec by the one fixed recipe, cached next to the raw clip."""
    with _encoders:
        return assemble.normalise_stored(ClipStore(get_settings().cache_dir), clip, shot, output)


def pieces_dir() -> Path:
    """Overlaps (any transition but a cut) and audio spans, kept between runs: a re-render redoes only what changed."""
    return ClipStore(get_settings().cache_dir).root / "pieces"


@task(name="prepare-join", cache_policy=NO_CACHE)
def prepare_join(normalised: list[Path | None], durations: list[int], output: OutputSpec) -> int:
    """Render the join's pieces that the clips landed so far allow (None: not landed yet), so the
    join after the last clip only renders what touches it."""
    with _encoders:
        return assemble.prepare_join(normalised, durations, output, pieces_dir(), jobs=1)


@task(name="join-clips", cache_policy=NO_CACHE)
def join_clips(normalised: list[Path], durations: list[int], output: OutputSpec) -> assemble.JoinResult:
    return assemble.join(normalised, durations, output, output.path, pieces_dir=pieces_dir())


@task(name="contact-sheet", cache_policy=NO_CACHE)
def contact_sheet(plan: Plan, clips: list[GeneratedClip], dst: Path, backend: str = "fal", frames: contactsheet.Frames | None = None) -> Path:
    """One labelled frame per shot; `backend` words the cost (a preview's "would cost $X on fal");
    `frames`: the middle frames grabbed as the clips landed (see contactsheet.Frames)."""
    by_id = {c.shot: c.path for c in clips}
    return contactsheet.contact_sheet(plan.shots, [by_id.get(s.id) for s in plan.shots], dst, title=plan.title, backend=backend, frames=frames)
