"""The pieces an overlapping join concatenates: each clip's middle (read in place, between forced
keyframes), each overlap rendered by its transition, and every span's audio as a WAV exact to the
sample; named by their inputs (`piece_name`), so pieces kept between runs are not made again."""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import ffmpeg as ff

from shotflow.assembly.concat import Entry
from shotflow.assembly.encoding import AUDIO_RATE, RECIPE_VERSION, WAV_ARGS, encode
from shotflow.assembly.recipe import frames, overlap_frames, us_down, us_up
from shotflow.assembly.transitions import overlap_audio, render_overlap


def pieces_folder(cache_dir: str | os.PathLike) -> Path:
    """Where a cache keeps the join's pieces between runs: overlaps, audio spans, the soundtrack
    encoded ahead, and which clips were checked against the recipe (a clip is checked once)."""
    return Path(cache_dir) / "pieces"


def piece_name(kind: str, *parts, suffix: str = ".mp4") -> str:
    """A content-derived name: the inputs' names, sizes and mtimes, the cut and the recipe."""
    ident = []
    for p in parts:
        if isinstance(p, Path):
            st = p.stat()
            ident.append([p.name, st.st_size, st.st_mtime_ns])
        else:
            ident.append(p)
    digest = hashlib.sha256(json.dumps([RECIPE_VERSION, kind, ident]).encode()).hexdigest()
    return f"{kind}-{digest[:24]}{suffix}"


@dataclass(frozen=True)
class Pieces:
    """What the final pass of an overlapping join reads, in order."""

    video: list[Entry]  # clip₀ up to its tail, overlap₀₁, clip₁ between head and tail, …
    audio: list[Path]  # the same spans as WAV files, exact to the sample
    overlaps: list[Path]  # the rendered overlaps' video (to check their SPS/PPS)
    rendered: int
    encoded: Path | None = None  # the whole soundtrack, encoded while overlaps rendered (see join)


def plan_pieces(clips, durations, out, pieces: Path, timeout: float) -> tuple[Pieces, list, list]:
    """The pieces for these clips, and the jobs that make those not yet in `pieces`: audio
    (quick) and overlaps' video.

    A clip may be None (not landed yet): its middle and both its overlaps are left out (the
    returned Pieces is then incomplete, only good for its jobs)."""
    fps = out.fps
    overlaps_at = overlap_frames(out, len(clips))  # [k]: the cut between clip k and clip k+1
    per_frame = AUDIO_RATE // fps if AUDIO_RATE % fps == 0 else None
    video: list[Entry] = []
    audio: list[Path] = []
    overlaps: list[Path] = []
    audio_work: list = []
    video_work: list = []
    rendered = 0
    last = len(clips) - 1
    for i, (clip, seconds) in enumerate(zip(clips, durations)):
        n = frames(seconds, fps)
        start, end = (overlaps_at[i - 1] if i > 0 else 0), (n - overlaps_at[i] if i < last else n)
        if clip is not None:
            # a keyframe is found at or before the inpoint, so round it up; packets with a dts at
            # or after the outpoint are dropped, so round it down (both off by under a microsecond)
            video.append(Entry(clip, us_up(start, fps) if start else None, us_down(end, fps) if end < n else None))
            middle = pieces / piece_name("audio", clip, start, end, fps, suffix=".wav")
            if not middle.is_file():
                audio_work.append(
                    (_cut_audio, clip, middle, _sample(start, fps, per_frame), _sample(end, fps, per_frame), timeout)
                )
            audio.append(middle)
        nxt = clips[i + 1] if i < last else None
        t = overlaps_at[i] if i < last else 0
        if t and clip is not None and nxt is not None:
            effect = out.cut_into(i + 1).effect
            name = piece_name("overlap", clip, nxt, n, t, fps, out.width, out.height, effect)
            overlap, faded = pieces / name, (pieces / name).with_suffix(".wav")
            if not overlap.is_file():
                video_work.append((render_overlap, clip, nxt, overlap, n, t, out, effect, timeout))
                rendered += 1
            if not faded.is_file():
                audio_work.append((overlap_audio, clip, nxt, faded, n, t, fps, effect, timeout))
            video.append(Entry(overlap))
            audio.append(faded)
            overlaps.append(overlap)
    return Pieces(video, audio, overlaps, rendered), audio_work, video_work


def run_all(work: list, jobs: int) -> None:
    """Run the jobs (a function and its arguments each), `jobs` at a time; the first failure raises."""
    if len(work) == 1:
        work[0][0](*work[0][1:])
    elif work:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for done in [pool.submit(*job) for job in work]:
                done.result()


def _sample(frame: int, fps: int, per_frame: int | None) -> int:
    return frame * per_frame if per_frame else round(frame * AUDIO_RATE / fps)


def _cut_audio(clip: Path, dst: Path, start: int, end: int, timeout: float) -> None:
    """Samples [start, end) of a clip's audio, decoded to a WAV (the video is not touched)."""
    audio = ff.input(str(clip)).audio.filter("atrim", start_sample=start, end_sample=end).filter("asetpts", "PTS-STARTPTS")
    encode(dst, audio, what=f"taking samples {start}-{end} of {clip.name}", timeout=timeout, **WAV_ARGS)
