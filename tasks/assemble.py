"""Assembly as Prefect tasks: normalise each clip as it lands (and take its sound: a cut join's
soundtrack is encoded before the last clip's video is done), join, draw the contact sheet (from
frames grabbed as clips landed) and, for a storyboard with takes, the takes view."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from shotflow.assembly import conformance, contactsheet, join, normalise, soundtrack
from shotflow.assembly.pieces import pieces_folder
from shotflow.model import GeneratedClip, OutputSpec, Plan, ShotPlan
from shotflow.settings import get_settings
from shotflow.store.team import open_clip_store

# ffmpeg is CPU-bound: more encodes at once than cores only slows each one down
_encoders = threading.BoundedSemaphore(os.cpu_count() or 2)


@task(name="normalise-clip", task_run_name="normalise-{shot.id}", cache_policy=NO_CACHE)
def normalise_clip(clip: GeneratedClip, shot: ShotPlan, output: OutputSpec) -> Path:
    """The clip brought to the output spec by the one fixed recipe, cached next to the raw clip, and
    checked against it as it lands (the join then checks only the last clip)."""
    with _encoders:
        return conformance.normalise_checked(open_clip_store(get_settings()), clip, shot, output)


def pieces_dir() -> Path:
    """Overlaps (any transition but a cut) and audio spans, kept between runs: a re-render redoes only what changed."""
    return pieces_folder(get_settings().cache_dir)


@task(name="prepare-join", cache_policy=NO_CACHE)
def prepare_join(normalised: list[Path | None], durations: list[int], output: OutputSpec) -> int:
    """Render the join's pieces that the clips landed so far allow (None: not landed yet), so the
    join after the last clip only renders what touches it."""
    with _encoders:
        return join.prepare_join(normalised, durations, output, pieces_dir(), jobs=1)


@task(name="join-clips", cache_policy=NO_CACHE)
def join_clips(normalised: list[Path], durations: list[int], output: OutputSpec, audio: Path | None = None) -> join.JoinResult:
    """The final file; `audio`: a cut join's soundtrack encoded ahead (copied, see encode_soundtrack)."""
    return join.join(normalised, durations, output, output.path, pieces_dir=pieces_dir(), audio=audio)


@task(name="clip-sound", task_run_name="sound-{shot.id}", cache_policy=NO_CACHE)
def clip_audio(clip: GeneratedClip, shot: ShotPlan, output: OutputSpec) -> Path:
    """The clip's sound as the recipe makes it, a WAV kept beside the raw clip: for a cut join's
    soundtrack, encoded before the last clip's video is normalised. Takes no encoder slot (cheap)."""
    return normalise.clip_audio_stored(open_clip_store(get_settings()), clip, shot, output)


@task(name="encode-soundtrack", cache_policy=NO_CACHE)
def encode_soundtrack(sounds: list[Path], durations: list[int], output: OutputSpec) -> Path:
    """A cut join's soundtrack, encoded once every clip's sound is there (while the last clip's
    video is still normalised), kept in the pieces folder under a name made from its inputs."""
    return soundtrack.soundtrack_stored(sounds, durations, output, pieces_dir())


@task(name="contact-sheet", cache_policy=NO_CACHE)
def contact_sheet(
    plan: Plan, clips: list[GeneratedClip], dst: Path, backend: str = "fal", frames: contactsheet.Frames | None = None
) -> Path:
    """One labelled frame per shot; `backend` words the cost (a preview's "would cost $X on fal");
    `frames`: the middle frames grabbed as the clips landed (see contactsheet.Frames)."""
    by_id = {c.shot: c.path for c in clips}
    return contactsheet.contact_sheet(
        plan.shots, [by_id.get(s.id) for s in plan.shots], dst, title=plan.title, backend=backend, frames=frames
    )


@task(name="takes-sheet", cache_policy=NO_CACHE)
def takes_sheet(
    plan: Plan, clips: list[GeneratedClip], dst: Path, backend: str = "fal", frames: contactsheet.Frames | None = None
) -> Path:
    """The takes view of a storyboard with takes: one row per shot, one labelled frame per take
    (`clips`: a clip of every take), the take the video is cut from marked."""
    by_take = {(c.shot, c.take): c.path for c in clips}
    return contactsheet.takes_sheet(
        plan.all_takes,
        [by_take.get((s.id, s.take)) for s in plan.all_takes],
        dst,
        picked={s.id: s.take for s in plan.shots},
        title=plan.title,
        backend=backend,
        frames=frames,
    )
