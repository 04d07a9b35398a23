"""Assembly as Prefect tasks: normalise each clip as it lands, join, draw the contact sheet."""

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


@task(name="join-clips", cache_policy=NO_CACHE)
def join_clips(normalised: list[Path], durations: list[int], output: OutputSpec) -> assemble.JoinResult:
    pieces = ClipStore(get_settings().cache_dir).root / "pieces"
    return assemble.join(normalised, durations, output, output.path, pieces_dir=pieces)


@task(name="contact-sheet", cache_policy=NO_CACHE)
def contact_sheet(plan: Plan, clips: list[GeneratedClip], dst: Path) -> Path:
    by_id = {c.shot: c.path for c in clips}
    return contactsheet.contact_sheet(plan.shots, [by_id.get(s.id) for s in plan.shots], dst, title=plan.title)
