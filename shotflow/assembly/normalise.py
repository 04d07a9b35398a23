"""Bringing one clip to the output spec by the one fixed recipe, cached next to the raw clip;
and a clip's sound as that recipe makes it (a cut join's soundtrack is made of these)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Sequence

import ffmpeg as ff

from shotflow.assembly.encoding import AUDIO_ARGS, AUDIO_RATE, RECIPE_VERSION, WAV_ARGS, encode, recipe_sound, video_args
from shotflow.assembly.recipe import clip_edges, cut_points, frames
from shotflow.errors import AssemblyError
from shotflow.media.probe import probe
from shotflow.model import GeneratedClip, OutputSpec, ShotPlan
from shotflow.store.clips import ClipStore


def recipe_id(out: OutputSpec, seconds: float, edges: tuple[int, int] | None = None) -> str:
    """Names one normalisation: the output shape, the length, the overlaps at the clip's ends
    (where keyframes are forced; default `clip_edges(out)`) and the recipe version."""
    recipe = {
        "version": RECIPE_VERSION,
        "width": out.width,
        "height": out.height,
        "fps": out.fps,
        "fit": out.fit,
        "frames": frames(seconds, out.fps),
        "edges": list(edges if edges is not None else clip_edges(out)),
    }
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
    return f"norm-{digest[:16]}"


def normalised_path(store: ClipStore, key: str, seconds: float, out: OutputSpec, edges: tuple[int, int] | None = None) -> Path:
    """Where the store keeps clip `key` normalised by this recipe (next to the raw clip)."""
    return store.derived(key, recipe_id(out, seconds, edges))


def normalise_stored(store: ClipStore, clip: GeneratedClip, shot: ShotPlan, out: OutputSpec) -> Path:
    """The normalised version of a stored clip: made once, then found next to the raw clip.

    Its keyframes suit the cuts into and out of the shot's place (`shot.index`). A normalised
    file older than its raw clip (the shot was generated again) is made again. A second caller
    in this process while it is being made (the early start's thread and the flow's task) waits
    for it instead of making it too."""
    edges = clip_edges(out, shot.index)
    dst = normalised_path(store, clip.key, shot.seconds, out, edges)
    raw = Path(clip.path)
    with _making(dst):
        if _made_from(dst, raw):
            return dst
        try:
            return normalise(raw, dst, out, seconds=shot.seconds, edges=edges)
        except AssemblyError as exc:
            raise AssemblyError(f"shot '{shot.id}': {exc}") from None


_locks_lock = threading.Lock()
_locks: dict[Path, threading.Lock] = {}


def _making(dst: Path) -> threading.Lock:
    """The one lock of normalised file `dst` in this process."""
    with _locks_lock:
        return _locks.setdefault(dst, threading.Lock())


def clip_audio_stored(store: ClipStore, clip: GeneratedClip, shot: ShotPlan, out: OutputSpec) -> Path:
    """A stored clip's sound as the recipe makes it (`clip_audio`), a WAV kept next to the raw
    clip: made once, again when the raw clip is newer."""
    dst = store.derived(clip.key, recipe_id(out, shot.seconds) + "-sound", suffix=".wav")
    raw = Path(clip.path)
    if _made_from(dst, raw):
        return dst
    return clip_audio(raw, dst, out, seconds=shot.seconds)


def _made_from(derived: Path, raw: Path) -> bool:
    """Whether `derived` is there, not empty, and made since `raw` was (last) stored."""
    return derived.is_file() and derived.stat().st_size > 0 and derived.stat().st_mtime_ns >= raw.stat().st_mtime_ns


def normalise(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    out: OutputSpec,
    *,
    seconds: float,
    keyframes_at: Sequence[float] | None = None,
    edges: tuple[int, int] | None = None,
    timeout: float | None = None,
) -> Path:
    """Bring one clip to the output spec, exactly `seconds` long (frozen last frame or silence pad).

    `keyframes_at` defaults to `cut_points(seconds, out, edges)`: where an overlapping join will cut.
    Written to a temporary file beside `dst`, then renamed; returns `dst`.
    """
    src, dst = Path(src), Path(dst)
    info = probe(src)
    n = _frame_count(src, seconds, out, f"normalise to {seconds} s")
    length = n / out.fps
    keyframes = cut_points(seconds, out, edges) if keyframes_at is None else tuple(keyframes_at)
    forced = sorted({frames(t, out.fps) for t in keyframes} - {0})
    if any(k >= n for k in forced):
        raise AssemblyError(f"{src}: keyframes at {keyframes} do not fit in a {length:g} s clip")

    source = ff.input(str(src))
    w, h = out.width, out.height
    video = source.video.filter("setpts", "PTS-STARTPTS")
    if out.fit == "crop":
        video = video.filter("scale", w, h, force_original_aspect_ratio="increase").filter("crop", w, h)
    elif out.fit == "pad":
        video = video.filter("scale", w, h, force_original_aspect_ratio="decrease", force_divisible_by=2)
        video = video.filter("pad", w, h, "(ow-iw)/2", "(oh-ih)/2", color="black")
    else:
        raise AssemblyError(f"output fit '{out.fit}' is not one of pad, crop")
    video = (
        video.filter("setsar", 1)
        .filter("fps", out.fps)
        .filter("format", "yuv420p")
        .filter("tpad", stop_mode="clone", stop=n)  # a clip that is too short holds its last frame
        .filter("trim", end_frame=n)
        .filter("setpts", "PTS-STARTPTS")
    )
    audio = _normalised_audio(source, info.has_audio, length)
    extra = {}
    if forced:
        extra["force_key_frames"] = "expr:" + "+".join(f"eq(n,{k})" for k in forced)
    args = {"f": "mp4", "movflags": "+faststart", **video_args(out), **AUDIO_ARGS, **extra}
    return encode(dst, video, audio, what=f"normalising {src}", timeout=timeout or 120 + 30 * length, **args)


def _frame_count(src: Path, seconds: float, out: OutputSpec, doing: str) -> int:
    """`seconds` in whole frames at `out.fps`; AssemblyError naming the clip when that is none."""
    n = frames(seconds, out.fps)
    if n < 1:
        raise AssemblyError(f"{src}: cannot {doing} at {out.fps} fps (no frames)")
    return n


def _normalised_audio(source, has_audio: bool, length: float):
    """The recipe's sound: 48 kHz stereo, exactly `length` s (silence for a silent clip)."""
    if has_audio:
        audio = source.audio.filter("aresample", AUDIO_RATE, **{"async": 1, "first_pts": 0})
    else:
        audio = ff.input(f"anullsrc=r={AUDIO_RATE}:cl=stereo", f="lavfi", t=f"{length:.6f}").audio
    return (
        recipe_sound(audio)
        .filter("apad", whole_len=round(length * AUDIO_RATE))
        .filter("atrim", end_sample=round(length * AUDIO_RATE))
        .filter("asetpts", "PTS-STARTPTS")
    )


def clip_audio(
    src: str | os.PathLike, dst: str | os.PathLike, out: OutputSpec, *, seconds: float, timeout: float | None = None
) -> Path:
    """A clip's sound exactly as `normalise` makes it (same filters, before AAC), as a WAV: what
    a cut join's soundtrack is made of. Reads only the audio: cheap next to a normalisation."""
    src, dst = Path(src), Path(dst)
    info = probe(src)
    n = _frame_count(src, seconds, out, f"take {seconds} s of sound")
    audio = _normalised_audio(ff.input(str(src)), info.has_audio, n / out.fps)
    return encode(dst, audio, what=f"taking the sound of {src}", timeout=timeout or 60 + 5 * seconds, **WAV_ARGS)
