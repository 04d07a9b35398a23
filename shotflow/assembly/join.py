"""Joining normalised clips into the final video: by stream copy for cuts, from pieces when cuts
overlap (`prepare_join` makes them as clips land); the result is checked before it lands."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import av
import ffmpeg as ff

from shotflow.assembly.concat import concat_input
from shotflow.assembly.conformance import RecipeCheck, matching, shape_checked, stream_shape, video_keyframes
from shotflow.assembly.destination import land, temporary_beside
from shotflow.assembly.encoding import AUDIO_RATE, encode_into, timescale
from shotflow.assembly.formats import OutputFormat, output_format
from shotflow.assembly.pieces import Pieces, plan_pieces, run_all
from shotflow.assembly.recipe import check_lengths, clip_edges, final_seconds
from shotflow.assembly.soundtrack import encode_audio, with_soundtrack
from shotflow.errors import AssemblyError, MediaError
from shotflow.media.probe import probe
from shotflow.model import OutputSpec


@dataclass(frozen=True)
class JoinResult:
    """What a join made, and what became of an earlier video at its path."""

    path: Path
    seconds: float  # the length the video was made to have: Σ durations − (n−1)·T
    video_copied: bool  # True when no clip's video was re-encoded in the join
    renormalised: tuple[int, ...]  # indexes of clips that did not match the recipe and were re-encoded
    transitions_rendered: int  # overlaps rendered in this call (not found in pieces_dir)
    # what became of an earlier video at `path`: "none" (there was none), "identical" (the same
    # bytes: left as it was), "kept" (renamed to `kept`, with its sidecars) or "replaced"
    earlier: str = "none"
    kept: Path | None = None
    audio_copied: bool = False  # True: the soundtrack was encoded ahead (`audio`) and copied


def join(
    normalised: Sequence[str | os.PathLike],
    durations: Sequence[float],
    out: OutputSpec,
    dst: str | os.PathLike,
    *,
    pieces_dir: str | os.PathLike | None = None,
    jobs: int | None = None,
    timeout: float | None = None,
    audio: str | os.PathLike | None = None,
) -> JoinResult:
    """Join normalised clips (in order, each `durations[i]` long) into `dst`, per `out`.

    `audio`: for cuts, the soundtrack `encode_soundtrack` made ahead from these clips, copied
    instead of encoding the clips' sound now (ignored when a cut overlaps).

    Clips that do not match the recipe (probed) are normalised again first, so stream copy is
    only ever used on matching clips. Crossfade overlaps are rendered `jobs` at a time (default:
    one per core) and kept in `pieces_dir` when given (a re-run after one shot changed renders
    only its two overlaps), else in a temporary folder removed afterwards. `dst` is replaced
    atomically or not at all.
    """
    fmt = output_format(dst)  # before any work: an extension we do not write is refused
    if not normalised:
        raise AssemblyError("no clips to join")
    clips = _landed(normalised, durations)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    overlapping = check_lengths(clips, durations, out)
    edges = [clip_edges(out, i, len(clips)) for i in range(len(clips))]
    total = final_seconds(durations, out)
    budget = _budget(timeout, total)

    scratch = Path(tempfile.mkdtemp(prefix=".join-", dir=dst.parent))
    try:
        pieces = Path(pieces_dir) if pieces_dir else scratch
        pieces.mkdir(parents=True, exist_ok=True)
        checked = pieces if pieces_dir else None
        clips, renormalised = matching(clips, durations, out, scratch, budget, edges=edges, checked=checked)
        if overlapping:
            made = _overlap_pieces(clips, durations, out, pieces, budget, _workers(jobs), scratch, total, fmt)
            video_parts, audio_parts, overlaps, rendered = made.video, made.encoded or made.audio, made.overlaps, made.rendered
        else:
            ahead = Path(audio) if audio is not None else None
            if ahead is not None and not ahead.is_file():
                raise MediaError(f"{ahead}: the soundtrack encoded ahead is missing")
            video_parts, audio_parts, overlaps, rendered = clips, ahead, [], 0
        # the overlaps were encoded now, the clips perhaps long ago: copy only if their SPS/PPS agree
        reference = shape_checked(clips[0], checked if 0 not in renormalised else None)
        copy = all(stream_shape(p).extradata == reference.extradata for p in overlaps)
        with temporary_beside(dst) as tmp:
            copy = copy and fmt.copies_video
            _final_pass(video_parts, audio_parts, out, tmp, scratch, total, fmt, copy=copy, timeout=budget)
            _check_result(tmp, dst, fmt, out, total)
            earlier, kept = land(tmp, dst, out.existing)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return JoinResult(dst, total, copy, renormalised, rendered, earlier, kept, audio_copied=not overlapping and audio is not None)


def prepare_join(
    normalised: Sequence[str | os.PathLike | None],
    durations: Sequence[float],
    out: OutputSpec,
    pieces_dir: str | os.PathLike,
    *,
    jobs: int | None = None,
    timeout: float | None = None,
) -> int:
    """Render into `pieces_dir` every piece a later `join(..., pieces_dir=pieces_dir)` of these
    clips will need that can be made already; returns the number of overlaps rendered.

    `normalised[i]` is None for a clip that has not landed yet; `durations` has every clip's
    length (the final order and count must be known: the first and last clips have one overlap).
    Call it each time a clip lands: it renders that clip's audio middle and its overlaps with
    neighbours already present, and records that the clip matches the recipe, so the final join
    only renders what touches the last clip. Clips that do not match the recipe are skipped
    (the join normalises them again). Pieces already in `pieces_dir` are not made again.
    """
    clips = _landed(normalised, durations)
    overlapping = check_lengths(clips, durations, out)
    pieces = Path(pieces_dir)
    pieces.mkdir(parents=True, exist_ok=True)
    budget = _budget(timeout, final_seconds(durations, out))
    check = RecipeCheck(out, pieces)
    usable = [
        path if path is not None and check.conforms(path, seconds, clip_edges(out, i, len(clips))) else None
        for i, (path, seconds) in enumerate(zip(clips, durations))
    ]
    if not overlapping:
        return 0
    made, audio_work, video_work = plan_pieces(usable, durations, out, pieces, budget)
    run_all(video_work + audio_work, _workers(jobs))
    return made.rendered


def _landed(normalised: Sequence[str | os.PathLike | None], durations: Sequence[float]) -> list[Path | None]:
    """The clips as paths (None: not landed yet); AssemblyError/MediaError when they do not fit `durations` or are gone."""
    clips = [None if p is None else Path(p) for p in normalised]
    if len(clips) != len(durations):
        raise AssemblyError(f"{len(clips)} clips but {len(durations)} durations")
    for path in clips:
        if path is not None and not path.is_file():
            raise MediaError(f"{path}: missing: normalise the clip before joining")
    return clips


def _budget(timeout: float | None, total: float) -> float:
    """How long one ffmpeg of a join may take: `timeout`, else by the length of the video."""
    return timeout or 120 + 20 * total


def _workers(jobs: int | None) -> int:
    return jobs or os.cpu_count() or 1


def _overlap_pieces(
    clips, durations, out, pieces: Path, timeout: float, jobs: int, scratch: Path, total: float, fmt: OutputFormat
) -> Pieces:
    """What the final pass concatenates, with every overlap made and the audio encoded.

    The video middles are not written anywhere: the concat demuxer reads them from the
    normalised clips between the keyframes the recipe forced (no B-frames: a cut there is
    exact). AAC cannot be cut that way (1024-sample packets), so each middle's audio, and each
    overlap's crossfaded audio, is decoded to a WAV, exact to the sample (cheap: these go
    first); then the whole soundtrack is encoded once, while the overlaps' video renders. Each
    ffmpeg here opens at most two clips (the encode: one WAV at a time, through the concat
    demuxer), and they run `jobs` at a time: memory does not grow with the number of shots."""
    made, audio_work, video_work = plan_pieces(clips, durations, out, pieces, timeout)
    run_all(audio_work, jobs)
    if not video_work:  # every overlap was there: the final pass encodes the audio itself
        return made
    encoded = scratch / f"audio{fmt.audio_suffix}"
    run_all([(encode_audio, made.audio, out, encoded, scratch, total, timeout, fmt)] + video_work, jobs)
    return Pieces(made.video, made.audio, made.overlaps, made.rendered, encoded)


def _final_pass(
    video_parts,
    audio_parts: Path | Sequence[Path] | None,
    out: OutputSpec,
    tmp: Path,
    scratch: Path,
    total: float,
    fmt: OutputFormat,
    *,
    copy: bool,
    timeout: float,
) -> None:
    """Video: the parts concatenated (stream copy, or encoded by `fmt` when not `copy`). Audio:
    an already encoded soundtrack (a Path: copied); else the WAV parts (for a cut, None: the
    clips' own audio) concatenated, the soundtrack mixed under, encoded once.

    Memory stays flat either way: the concat demuxer opens one part at a time."""
    fps = out.fps
    video_in = concat_input(video_parts, scratch / "video.ffconcat")
    if isinstance(audio_parts, Path):
        audio, aargs = ff.input(str(audio_parts)).audio, {"c:a": "copy"}
    else:
        if audio_parts is None:  # a cut: one input has it all
            audio = video_in.audio
        else:
            audio = concat_input(audio_parts, scratch / "audio.ffconcat").audio
        audio, aargs = with_soundtrack(audio, out, round(total * AUDIO_RATE)), fmt.audio_args
    video = video_in.video
    if copy:
        vargs = {"c:v": "copy", "video_track_timescale": timescale(fps)}
    else:  # webm (VP9), or clips whose parameter sets differ
        vargs = fmt.video_args(out)
        video = video.filter("fps", fps).filter("format", "yuv420p")
    # -copyts: the first clip's audio starts at -1024 samples (AAC priming); without it ffmpeg
    # shifts the whole input by that and the video would start 21 ms late
    what = f"joining {len(video_parts)} pieces into {tmp.parent}"
    encode_into(
        tmp, video, audio, what=what, timeout=timeout, global_args=("-copyts",), f=fmt.muxer, **fmt.muxer_args(), **vargs, **aargs
    )


def _check_result(tmp: Path, dst: Path, fmt: OutputFormat, out: OutputSpec, total: float) -> None:
    """The joined file has one video and one audio stream in the format's codecs, every frame
    (demuxed, not decoded) and the planned length; else AssemblyError, and `dst` is untouched."""
    try:
        with av.open(str(tmp)) as container:
            video = [s.codec_context.name for s in container.streams.video]
            audio = [s.codec_context.name for s in container.streams.audio]
    except (av.error.FFmpegError, OSError) as exc:
        raise AssemblyError(f"joining into {dst}: the result cannot be read ({exc}); {dst} was left as it was") from None
    if (video, audio) != ([fmt.video_codec], [fmt.audio_codec]):
        raise AssemblyError(
            f"joining into {dst}: the result has video {video or 'none'} and audio {audio or 'none'}, "
            f"expected one {fmt.video_codec} and one {fmt.audio_codec} stream; {dst} was left as it was"
        )
    result = probe(tmp)
    _, count = video_keyframes(tmp)
    expected = round(total * out.fps)
    if count != expected or abs(result.duration - total) > 1.5 / out.fps:
        raise AssemblyError(
            f"joining into {dst}: the result has {count} frames and lasts {result.duration:.3f} s, "
            f"expected {expected} frames, {total:.3f} s; {dst} was left as it was"
        )
