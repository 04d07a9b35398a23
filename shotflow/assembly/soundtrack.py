"""The join's soundtrack: the clips' audio made to the final length, the storyboard's soundtrack
mixed under, encoded once (ahead of the join for cuts: `encode_soundtrack`, kept between runs
by `soundtrack_stored`)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import ffmpeg as ff

from shotflow.assembly.concat import concat_input
from shotflow.assembly.encoding import AUDIO_RATE, encode, recipe_sound
from shotflow.assembly.formats import OutputFormat, output_format
from shotflow.assembly.pieces import piece_name
from shotflow.assembly.recipe import final_seconds, overlap_frames
from shotflow.errors import AssemblyError, MediaError
from shotflow.model import OutputSpec


def soundtrack_stored(
    wavs: Sequence[str | os.PathLike], durations: Sequence[float], out: OutputSpec, pieces_dir: str | os.PathLike
) -> Path:
    """`encode_soundtrack`, kept in `pieces_dir` under a name made from what it is made of (the
    clips' sounds, the soundtrack file and its volume, the lengths, the format's audio): made once."""
    suffix = output_format(out.path).audio_suffix
    track = Path(out.soundtrack) if out.soundtrack else None
    under = (
        [str(track), track.stat().st_size, track.stat().st_mtime_ns, out.soundtrack_volume]
        if track is not None and track.is_file()
        else None
    )
    dst = Path(pieces_dir) / piece_name("soundtrack", *map(Path, wavs), under, list(durations), out.fps, suffix=suffix)
    if dst.is_file() and dst.stat().st_size > 0:
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    return encode_soundtrack(wavs, durations, out, dst)


def encode_soundtrack(
    wavs: Sequence[str | os.PathLike],
    durations: Sequence[float],
    out: OutputSpec,
    dst: str | os.PathLike,
    *,
    timeout: float | None = None,
) -> Path:
    """The cut join's soundtrack, encoded once, ahead of the join: the clips' WAVs (`clip_audio`,
    in order) concatenated, `out.soundtrack` mixed under, in the audio codec of `out.path`'s
    format; `join(..., audio=dst)` copies it. AssemblyError when a cut overlaps (those joins
    make their own audio, from pieces)."""
    fmt = output_format(out.path)
    wavs = [Path(p) for p in wavs]
    if len(wavs) != len(durations):
        raise AssemblyError(f"{len(wavs)} sounds but {len(durations)} durations")
    if any(overlap_frames(out, len(wavs))):
        raise AssemblyError("a soundtrack ahead of the join is for cuts only: these clips overlap")
    for path in wavs:
        if not path.is_file():
            raise MediaError(f"{path}: missing: take the clip's sound before encoding the soundtrack")
    dst = Path(dst)
    total = final_seconds(durations, out)
    scratch = Path(tempfile.mkdtemp(prefix=".soundtrack-", dir=dst.parent))
    try:
        return encode_audio(wavs, out, dst, scratch, total, timeout or 60 + 2 * total, fmt)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def with_soundtrack(audio, out: OutputSpec, total_samples: int):
    """The clips' audio made exactly `total_samples` long, with the soundtrack (if any) mixed under."""
    audio = audio.filter("apad", whole_len=total_samples).filter("atrim", end_sample=total_samples)
    if out.soundtrack:
        track = Path(out.soundtrack)
        if not track.is_file():
            raise MediaError(f"soundtrack {track}: no such file")
        under = (
            recipe_sound(ff.input(str(track), stream_loop=-1).audio)
            .filter("atrim", end_sample=total_samples)
            .filter("volume", out.soundtrack_volume)
        )
        audio = ff.filter([audio, under], "amix", inputs=2, duration="first", normalize=0)
        audio = audio.filter("atrim", end_sample=total_samples)
    return audio


def encode_audio(
    parts: Sequence[Path], out: OutputSpec, dst: Path, scratch: Path, total: float, timeout: float, fmt: OutputFormat
) -> Path:
    """The WAV parts concatenated, the soundtrack mixed under, encoded once in `fmt`'s audio
    codec (AAC in an .m4a, Opus in an audio-only .webm) into `dst`, for the final pass to copy."""
    audio = concat_input(parts, scratch / "audio.ffconcat").audio
    audio = with_soundtrack(audio, out, round(total * AUDIO_RATE))
    muxer = "webm" if dst.suffix == ".webm" else "mp4"
    return encode(dst, audio, what=f"encoding the audio of {len(parts)} pieces", timeout=timeout, f=muxer, **fmt.audio_args)
