"""Bringing clips to the output spec, and joining them into the final video.

Every clip is normalised once, as soon as it lands, by one fixed recipe (size, fit, fps, pixel
format, x264 settings, 48 kHz stereo AAC, exact length); the result is cached next to the raw clip.
Clips made by one recipe can be joined by stream copy, so the join after the last clip lands
costs a remux, not a re-encode:

- cut: the concat demuxer copies the video; the audio is decoded and encoded once more (AAC
  packets copied across files slip). That encode is most of a cut join's time (~1 s per 40 s),
  so it can be done ahead: `clip_audio` decodes a clip's sound as `normalise` makes it to a
  WAV as soon as the clip lands (cheap), `encode_soundtrack` encodes them all once the last
  one is there, while the last clip's video is still being normalised, and `join(...,
  audio=...)` copies it.
- overlapping cuts (each cut has its own: a crossfade, a fade through black or white, a wipe or
  a slide, see `EFFECTS`; a plain cut between two clips has no overlap): only the overlaps
  (tail T of one clip, head T of the next) are rendered with xfade; the middles are read by
  the concat demuxer between keyframes the recipe forced there (at each clip's own overlaps:
  `clip_edges`) and copied. Audio cannot be cut at packets like that, so each span's audio is decoded to a WAV,
  exact to the sample, and their concatenation is encoded once (while the overlaps' video
  renders, when some must be). With `pieces_dir`, overlaps and WAVs are kept there, and
  `prepare_join` makes them as clips land, so the join after the last one only renders the
  pieces that touch it.

No ffmpeg process opens more than two clips, and a join runs a bounded number at once, so
memory does not grow with the number of shots. The output is written to a temporary file in
its folder, checked (streams, codecs, frames, length), then renamed over the destination.

This module owns the list of formats it writes (`OUTPUT_FORMATS`, by extension): .mp4 and .mov
(H.264 + AAC, joined as above) and .webm (VP9 + Opus: the same H.264 pieces, re-encoded to VP9
in the final pass). The preflight reads that list to refuse any other extension before spending.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import av
import ffmpeg as ff

from shotflow.errors import AssemblyError, MediaError
from shotflow.media import ffmpeg as runner
from shotflow.media.probe import probe
from shotflow.model import SIDECARS, GeneratedClip, OutputSpec, ShotPlan
from shotflow.store.clips import ClipStore
from shotflow.store.digest import file_sha256

# bump when anything below changes what a normalised clip looks like: cached clips are redone
RECIPE_VERSION = 1
AUDIO_RATE = 48000
AUDIO_BITRATE = "192k"
# no B-frames, so decode order is display order and a stream-copy cut at a keyframe is exact;
# forced keyframes are IDR, so nothing after a cut refers to a frame before it.
# veryfast, measured against the faster presets (720p out of 1080p/720p/portrait testsrc2 clips,
# SSIM against a lossless normalisation, 2 busy cores): decoding and scaling a 1080p source is
# ~40% of veryfast's CPU; superfast at crf 22 (SSIM as good) saved 7-15% CPU for 1.4-1.9x the
# bytes; ultrafast at crf 24-26 saved 15-35% for 2.1-2.7x (no mb-tree, CABAC or deblocking).
# The final video is these bytes, so veryfast stays (medium: 1.7x the CPU, no smaller).
X264 = {
    "c:v": "libx264",
    "preset": "veryfast",
    "crf": 20,
    "bf": 0,
    "sc_threshold": 0,
    "forced-idr": 1,
    "pix_fmt": "yuv420p",
    "profile:v": "high",
}
GOP_SECONDS = 2


def _timescale(fps: int) -> int:
    return 90000 if 90000 % fps == 0 else fps * 1000


def _video_args(out: OutputSpec) -> dict:
    return {**X264, "g": GOP_SECONDS * out.fps, "video_track_timescale": _timescale(out.fps)}


AUDIO_ARGS = {"c:a": "aac", "b:a": AUDIO_BITRATE, "ar": AUDIO_RATE, "ac": 2}

# VP9 for .webm, measured on 22.5 s of 720p on 2 busy cores: `-deadline good` took 70 s;
# realtime at cpu-used 8 with row and tile threads 7-9 s wall, ~10 s CPU (x264 veryfast's
# normalisation of the same: 5.6 s), at about the size of the recipe's H.264 (crf 20), one
# ffmpeg process and ~230 MB whatever the length. The join checks the packet count as for mp4
# (WebM holds one packet per shown frame).
VP9 = {
    "c:v": "libvpx-vp9",
    "deadline": "realtime",
    "cpu-used": 8,
    "row-mt": 1,
    "tile-columns": 2,
    "b:v": 0,
    "crf": 33,
    "pix_fmt": "yuv420p",
}
OPUS_ARGS = {"c:a": "libopus", "b:a": "160k", "ar": AUDIO_RATE, "ac": 2}


def _vp9_args(out: OutputSpec) -> dict:
    return {**VP9, "g": GOP_SECONDS * out.fps}


@dataclass(frozen=True)
class OutputFormat:
    """How the final video is written for one file extension."""

    muxer: str  # ffmpeg's -f
    description: str
    video_codec: str  # the codec names a probe of the result must show
    audio_codec: str
    # True: the normalised clips (H.264) are joined by stream copy; False: the join re-encodes
    copies_video: bool
    video_args: Callable[[OutputSpec], dict]  # the encoder when the join re-encodes the video
    audio_args: dict
    audio_suffix: str  # a soundtrack encoded ahead of the final pass is kept in this container

    def muxer_args(self) -> dict:
        return {"movflags": "+faststart"} if self.muxer in ("mp4", "mov") else {}


H264_AAC = {"video_codec": "h264", "audio_codec": "aac", "copies_video": True, "video_args": _video_args, "audio_args": AUDIO_ARGS, "audio_suffix": ".m4a"}
# what the assembly writes, by extension: the preflight refuses any other before a shot is paid
OUTPUT_FORMATS: dict[str, OutputFormat] = {
    ".mp4": OutputFormat("mp4", "MP4 (H.264 + AAC)", **H264_AAC),
    ".mov": OutputFormat("mov", "QuickTime (H.264 + AAC)", **H264_AAC),
    # the clips are normalised to H.264 (one recipe for every output); a webm join re-encodes them
    ".webm": OutputFormat("webm", "WebM (VP9 + Opus)", "vp9", "opus", False, _vp9_args, OPUS_ARGS, ".webm"),
}


def output_format(path: str | os.PathLike) -> OutputFormat:
    """The format a video at `path` is written in, by its extension (any case); AssemblyError
    naming the path and the extensions accepted when there is none for it."""
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        accepted = ", ".join(f"{ext} ({f.description})" for ext, f in OUTPUT_FORMATS.items())
        what = f"'{suffix}'" if suffix else "no extension"
        raise AssemblyError(f"{path}: cannot write a video with {what}: the output must end in {accepted}")
    return OUTPUT_FORMATS[suffix]


# --- transitions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Effect:
    """How one overlapping cut is drawn: ffmpeg xfade's transition, and whether the sound dips."""

    xfade: str
    dips: bool = False  # through silence (a fade through a colour), else a crossfade of the sound


# the effects a cut may have (plan.CutSpec.effect; "cut" is no overlap), by the storyboard's names
# (a fade is named by its colour): the wipes and slides chosen for reading well on any picture
EFFECTS: dict[str, Effect] = {
    "crossfade": Effect("fade"),
    "fadeblack": Effect("fadeblack", dips=True),
    "fadewhite": Effect("fadewhite", dips=True),
    **{name: Effect(name) for name in ("wipeleft", "wiperight", "wipeup", "wipedown", "slideleft", "slideright", "slideup", "slidedown")},
}


# --- lengths, in whole frames -------------------------------------------------------------


def frames(seconds: float, fps: int) -> int:
    return round(seconds * fps)


def transition_frames(out: OutputSpec) -> int:
    """The default cut's overlap in whole frames (a cut at a fraction of a frame is not possible)."""
    return frames(out.crossfade, out.fps)


def transition_seconds(out: OutputSpec) -> float:
    """The default cut's overlap actually used: `out.crossfade` rounded to whole frames."""
    return transition_frames(out) / out.fps


def overlap_frames(out: OutputSpec, count: int) -> list[int]:
    """The overlap of each of the `count - 1` cuts between `count` clips, in whole frames."""
    return [frames(out.cut_into(i).overlap, out.fps) for i in range(1, count)]


def clip_edges(out: OutputSpec, index: int | None = None, count: int | None = None) -> tuple[int, int]:
    """Frames of clip `index` that overlap the clip before it and the one after it.

    Without `index` (or, when the output names no cuts, without `count`), both ends are taken
    to overlap by the default transition: the keyframes forced then suit the clip anywhere."""
    if index is None:
        t = transition_frames(out)
        return (t, t)
    count = count if count is not None else (len(out.cuts) + 1 if out.cuts else None)
    head = frames(out.cut_into(index).overlap, out.fps) if index > 0 else 0
    last = count is not None and index >= count - 1
    tail = 0 if last else frames(out.cut_into(index + 1).overlap, out.fps)
    return (head, tail)


def final_seconds(durations: Sequence[float], out: OutputSpec) -> float:
    """Σ durations − Σ overlaps, each rounded to whole frames as `normalise` does."""
    total = sum(frames(d, out.fps) for d in durations) - sum(overlap_frames(out, len(durations)))
    return total / out.fps


def cut_points(seconds: float, out: OutputSpec, edges: tuple[int, int] | None = None) -> tuple[float, ...]:
    """Where a clip of this length needs keyframes so an overlapping join can cut it by stream
    copy: the end of its head overlap and the start of its tail overlap (`edges`, in frames;
    default `clip_edges(out)`)."""
    head, tail = edges if edges is not None else clip_edges(out)
    n = frames(seconds, out.fps)
    return tuple(f / out.fps for f in ((head,) if head else ()) + ((n - tail,) if tail else ()))


# --- the recipe and its cache -------------------------------------------------------------


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
    return store.derived(key, recipe_id(out, seconds, edges))


def normalise_stored(store: ClipStore, clip: GeneratedClip, shot: ShotPlan, out: OutputSpec) -> Path:
    """The normalised version of a stored clip: made once, then found next to the raw clip.

    Its keyframes suit the cuts into and out of the shot's place (`shot.index`). A normalised
    file older than its raw clip (the shot was generated again) is made again."""
    edges = clip_edges(out, shot.index)
    dst = normalised_path(store, clip.key, shot.seconds, out, edges)
    raw = Path(clip.path)
    if dst.is_file() and dst.stat().st_size > 0 and dst.stat().st_mtime_ns >= raw.stat().st_mtime_ns:
        return dst
    try:
        return normalise(raw, dst, out, seconds=shot.seconds, edges=edges)
    except AssemblyError as exc:
        raise AssemblyError(f"shot '{shot.id}': {exc}") from None


# --- normalising one clip -------------------------------------------------------------------


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
    n = frames(seconds, out.fps)
    if n < 1:
        raise AssemblyError(f"{src}: cannot normalise to {seconds} s at {out.fps} fps (no frames)")
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
    tmp = _temp_beside(dst)
    stream = ff.output(video, audio, str(tmp), f="mp4", movflags="+faststart", **_video_args(out), **AUDIO_ARGS, **extra)
    try:
        runner.run(stream, what=f"normalising {src}", timeout=timeout or 120 + 30 * length)
        os.replace(tmp, dst)
    finally:
        _remove(tmp)
    return dst


def _normalised_audio(source, has_audio: bool, length: float):
    """The recipe's sound: 48 kHz stereo, exactly `length` s (silence for a silent clip)."""
    if has_audio:
        audio = source.audio.filter("aresample", AUDIO_RATE, **{"async": 1, "first_pts": 0})
    else:
        audio = ff.input(f"anullsrc=r={AUDIO_RATE}:cl=stereo", f="lavfi", t=f"{length:.6f}").audio
    return (
        audio.filter("aformat", sample_fmts="fltp", sample_rates=AUDIO_RATE, channel_layouts="stereo")
        .filter("apad", whole_len=round(length * AUDIO_RATE))
        .filter("atrim", end_sample=round(length * AUDIO_RATE))
        .filter("asetpts", "PTS-STARTPTS")
    )


def clip_audio(src: str | os.PathLike, dst: str | os.PathLike, out: OutputSpec, *, seconds: float, timeout: float | None = None) -> Path:
    """A clip's sound exactly as `normalise` makes it (same filters, before AAC), as a WAV: what
    a cut join's soundtrack is made of. Reads only the audio: cheap next to a normalisation."""
    src, dst = Path(src), Path(dst)
    info = probe(src)
    n = frames(seconds, out.fps)
    if n < 1:
        raise AssemblyError(f"{src}: cannot take {seconds} s of sound at {out.fps} fps (no frames)")
    audio = _normalised_audio(ff.input(str(src)), info.has_audio, n / out.fps)
    tmp = _temp_beside(dst)
    try:
        stream = ff.output(audio, str(tmp), f="wav", vn=None, **{"c:a": "pcm_f32le"})
        runner.run(stream, what=f"taking the sound of {src}", timeout=timeout or 60 + 5 * seconds)
        os.replace(tmp, dst)
    finally:
        _remove(tmp)
    return dst


def encode_soundtrack(wavs: Sequence[str | os.PathLike], durations: Sequence[float], out: OutputSpec, dst: str | os.PathLike, *, timeout: float | None = None) -> Path:
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
        tmp = scratch / f"audio{fmt.audio_suffix}"
        _encode_audio(wavs, out, tmp, scratch, total, timeout or 60 + 2 * total, fmt)
        os.replace(tmp, dst)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return dst


# --- checking that clips can be stream-copied together --------------------------------------


@dataclass(frozen=True)
class StreamShape:
    """What must be equal between files whose video is stream-copied into one."""

    codec: str
    profile: str | None
    width: int
    height: int
    pix_fmt: str
    sar: str
    time_base: str
    fps: str
    extradata: str  # hash of the SPS/PPS
    audio: tuple[int, int] | None  # rate, channels


def stream_shape(path: str | os.PathLike) -> StreamShape:
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path}: no video stream")
            v = container.streams.video[0]
            cc = v.codec_context
            a = container.streams.audio[0].codec_context if container.streams.audio else None
            return StreamShape(
                codec=cc.name,
                profile=cc.profile,
                width=cc.width,
                height=cc.height,
                pix_fmt=str(cc.pix_fmt),
                sar=str(v.sample_aspect_ratio or "1"),
                time_base=str(v.time_base),
                fps=str(v.average_rate),
                extradata=hashlib.sha256(cc.extradata or b"").hexdigest()[:16],
                audio=(a.sample_rate, a.channels) if a else None,
            )
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"{path}: not a readable video ({exc})") from None


def expected_shape(out: OutputSpec) -> dict:
    return {
        "codec": "h264",
        "width": out.width,
        "height": out.height,
        "pix_fmt": "yuv420p",
        "sar": "1",
        "time_base": f"1/{_timescale(out.fps)}",
        "fps": str(out.fps),
        "audio": (AUDIO_RATE, 2),
    }


def _matches(shape: StreamShape, out: OutputSpec, reference: StreamShape | None) -> bool:
    if any(getattr(shape, k) != v for k, v in expected_shape(out).items()):
        return False
    return reference is None or (shape.extradata == reference.extradata and shape.profile == reference.profile)


# --- joining ------------------------------------------------------------------------------


@dataclass(frozen=True)
class JoinResult:
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
    clips = [Path(p) for p in normalised]
    if not clips:
        raise AssemblyError("no clips to join")
    if len(clips) != len(durations):
        raise AssemblyError(f"{len(clips)} clips but {len(durations)} durations")
    for path in clips:
        if not path.is_file():
            raise MediaError(f"{path}: missing: normalise the clip before joining")
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    overlapping = _check_lengths(clips, durations, out)
    edges = [clip_edges(out, i, len(clips)) for i in range(len(clips))]
    total = final_seconds(durations, out)
    budget = timeout or 120 + 20 * total

    scratch = Path(tempfile.mkdtemp(prefix=".join-", dir=dst.parent))
    try:
        pieces = Path(pieces_dir) if pieces_dir else scratch
        pieces.mkdir(parents=True, exist_ok=True)
        checked = pieces if pieces_dir else None
        clips, renormalised = _matching(clips, durations, out, scratch, budget, edges=edges, checked=checked)
        if overlapping:
            made = _overlap_pieces(clips, durations, out, pieces, budget, jobs or os.cpu_count() or 1, scratch, total, fmt)
            video_parts, audio_parts, overlaps, rendered = made.video, made.encoded or made.audio, made.overlaps, made.rendered
        else:
            ahead = Path(audio) if audio is not None else None
            if ahead is not None and not ahead.is_file():
                raise MediaError(f"{ahead}: the soundtrack encoded ahead is missing")
            video_parts, audio_parts, overlaps, rendered = clips, ahead, [], 0
        # the overlaps were encoded now, the clips perhaps long ago: copy only if their SPS/PPS agree
        reference = stream_shape(clips[0])
        copy = all(stream_shape(p).extradata == reference.extradata for p in overlaps)
        tmp = _temp_beside(dst)
        try:
            copy = copy and fmt.copies_video
            _final_pass(video_parts, audio_parts, out, tmp, scratch, total, fmt, copy=copy, timeout=budget)
            _check_result(tmp, dst, fmt, out, total)
            earlier, kept = _land(tmp, dst, out.existing)
        finally:
            _remove(tmp)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return JoinResult(dst, total, copy, renormalised, rendered, earlier, kept, audio_copied=not overlapping and audio is not None)


def _land(tmp: Path, dst: Path, existing: str) -> tuple[str, Path | None]:
    """Move the checked result to `dst`, never silently over an earlier video: one with the
    same bytes is left as it was (an unchanged re-run piles up no copies); a different one is
    renamed with its time, its sidecars with it (`existing` "keep"), or replaced ("replace")."""
    if not dst.exists():
        os.replace(tmp, dst)
        return "none", None
    if _same_bytes(tmp, dst):
        return "identical", None
    if existing == "replace":
        os.replace(tmp, dst)
        return "replaced", None
    kept = keep_earlier(dst)
    os.replace(tmp, dst)
    return "kept", kept


def keep_earlier(video: Path) -> Path:
    """Rename an earlier video and its sidecars (manifest, contact sheet) to NAME.<its mtime, UTC>
    (e.g. film.2026-12-01T10-00-00.mp4, film.2026-12-01T10-00-00.manifest.json); the video's new path."""
    stamp = datetime.fromtimestamp(video.stat().st_mtime, timezone.utc).strftime("%Y-%m-%dT%H-%M-%S")
    for n in range(1, 1000):
        name = stamp if n == 1 else f"{stamp}-{n}"
        moves = [(video, video.with_name(f"{video.stem}.{name}{video.suffix}"))]
        moves += [(video.with_name(f"{video.stem}.{s}"), video.with_name(f"{video.stem}.{name}.{s}")) for s in SIDECARS]
        if not any(new.exists() for _, new in moves):
            break
    else:
        raise AssemblyError(f"{video}: cannot find a free name to keep the earlier video under")
    for old, new in moves[1:]:
        if old.exists():
            os.replace(old, new)
    os.replace(*moves[0])
    return moves[0][1]


def _same_bytes(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    return file_sha256(a) == file_sha256(b)


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
    clips = [None if p is None else Path(p) for p in normalised]
    if len(clips) != len(durations):
        raise AssemblyError(f"{len(clips)} clips but {len(durations)} durations")
    for path in clips:
        if path is not None and not path.is_file():
            raise MediaError(f"{path}: missing: normalise the clip before joining")
    overlapping = _check_lengths(clips, durations, out)
    pieces = Path(pieces_dir)
    pieces.mkdir(parents=True, exist_ok=True)
    budget = timeout or 120 + 20 * final_seconds(durations, out)
    reference = None
    usable: list[Path | None] = []
    for i, (path, seconds) in enumerate(zip(clips, durations)):
        if path is not None:
            shape = stream_shape(path)
            if reference is None and _matches(shape, out, None):
                reference = shape
            if not (_matches(shape, out, reference) and _fits_checked(path, seconds, out, clip_edges(out, i, len(clips)), pieces)):
                path = None
        usable.append(path)
    if not overlapping:
        return 0
    made, audio_work, video_work = _plan_pieces(usable, durations, out, pieces, budget)
    _run_all(video_work + audio_work, jobs or os.cpu_count() or 1)
    return made.rendered


def _check_lengths(clips, durations, out: OutputSpec) -> bool:
    """Whether any cut overlaps; AssemblyError if a clip is not longer than its two overlaps."""
    if out.cuts and len(out.cuts) != len(clips) - 1:
        raise AssemblyError(f"{len(clips)} clips but the output names {len(out.cuts)} cuts between them")
    overlaps = overlap_frames(out, len(clips))
    for i, (path, seconds) in enumerate(zip(clips, durations)):
        head, tail = clip_edges(out, i, len(clips))
        if (head or tail) and frames(seconds, out.fps) <= head + tail:
            raise AssemblyError(
                f"{path}: a {seconds:g} s clip is too short for its transitions ({head / out.fps:g} s in, {tail / out.fps:g} s out)"
            )
    return any(overlaps)


def video_keyframes(path: str | os.PathLike) -> tuple[list[int], int]:
    """Indexes of the keyframes in a clip's video (by demuxing, no decoding), and the frame count."""
    with av.open(str(path)) as container:
        keys, count = [], 0
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                if packet.is_keyframe:
                    keys.append(count)
                count += 1
    return keys, count


def _fits(path: Path, seconds: float, out: OutputSpec, edges: tuple[int, int]) -> bool:
    """The clip has the recipe's length and, where it overlaps a neighbour, keyframes where the join cuts."""
    keys, count = video_keyframes(path)
    n = frames(seconds, out.fps)
    if count != n or abs(probe(path).duration - n / out.fps) > 1.5 / out.fps:
        return False
    return all(frames(c, out.fps) in keys for c in cut_points(seconds, out, edges))


def _fits_checked(path: Path, seconds: float, out: OutputSpec, edges: tuple[int, int], checked: Path | None) -> bool:
    """`_fits`, remembered in `checked` (a marker file named by the clip's name, size and mtime
    and what was checked): a clip checked when it landed is not demuxed again in the join."""
    if checked is None:
        return _fits(path, seconds, out, edges)
    marker = checked / _piece_name("fits", path, frames(seconds, out.fps), out.fps, cut_points(seconds, out, edges), suffix=".ok")
    if marker.is_file():
        return True
    if not _fits(path, seconds, out, edges):
        return False
    marker.touch()
    return True


def _matching(clips, durations, out, scratch: Path, timeout: float, *, edges: list[tuple[int, int]], checked: Path | None = None) -> tuple[list[Path], tuple[int, ...]]:
    """The clips, with any that do not match the recipe (or each other) normalised again.

    With `checked` (the pieces folder), a clip's length and keyframe check is remembered there."""
    fixed: list[Path] = []
    redone: list[int] = []
    reference = None
    for i, (path, seconds) in enumerate(zip(clips, durations)):
        shape = stream_shape(path)
        if reference is None and _matches(shape, out, None):
            reference = shape
        if not _matches(shape, out, reference) or not _fits_checked(path, seconds, out, edges[i], checked):
            path = normalise(path, scratch / f"renormalised-{i}.mp4", out, seconds=seconds, edges=edges[i], timeout=timeout)
            redone.append(i)
            if reference is None:
                reference = stream_shape(path)
        fixed.append(path)
    if redone and len(redone) < len(clips):
        # the kept clips and the redone ones must share SPS/PPS too; when not, redo them all
        ref = stream_shape(fixed[redone[0]])
        if any(stream_shape(p).extradata != ref.extradata for p in fixed):
            return _renormalise_all(clips, durations, out, scratch, timeout, edges)
    return fixed, tuple(redone)


def _renormalise_all(clips, durations, out, scratch, timeout, edges):
    fixed = [
        normalise(p, scratch / f"renormalised-{i}.mp4", out, seconds=s, edges=edges[i], timeout=timeout)
        for i, (p, s) in enumerate(zip(clips, durations))
    ]
    return fixed, tuple(range(len(clips)))


def _piece_name(kind: str, *parts, suffix: str = ".mp4") -> str:
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
class _Entry:
    """One file of a concat-demuxer list, optionally from an inpoint to an outpoint (µs)."""

    path: Path
    inpoint_us: int | None = None
    outpoint_us: int | None = None


@dataclass(frozen=True)
class _Pieces:
    video: list[_Entry]  # clip₀ up to its tail, overlap₀₁, clip₁ between head and tail, …
    audio: list[Path]  # the same spans as WAV files, exact to the sample
    overlaps: list[Path]  # the rendered overlaps' video (to check their SPS/PPS)
    rendered: int
    encoded: Path | None = None  # the whole soundtrack, encoded while overlaps rendered (see _encode_audio)


def _overlap_pieces(clips, durations, out, pieces: Path, timeout: float, jobs: int, scratch: Path, total: float, fmt: OutputFormat) -> _Pieces:
    """What the final pass concatenates, with every overlap made and the audio encoded.

    The video middles are not written anywhere: the concat demuxer reads them from the
    normalised clips between the keyframes the recipe forced (no B-frames: a cut there is
    exact). AAC cannot be cut that way (1024-sample packets), so each middle's audio, and each
    overlap's crossfaded audio, is decoded to a WAV, exact to the sample (cheap: these go
    first); then the whole soundtrack is encoded once, while the overlaps' video renders. Each
    ffmpeg here opens at most two clips (the encode: one WAV at a time, through the concat
    demuxer), and they run `jobs` at a time: memory does not grow with the number of shots."""
    made, audio_work, video_work = _plan_pieces(clips, durations, out, pieces, timeout)
    _run_all(audio_work, jobs)
    if not video_work:  # every overlap was there: the final pass encodes the audio itself
        return made
    encoded = scratch / f"audio{fmt.audio_suffix}"
    _run_all([(_encode_audio, made.audio, out, encoded, scratch, total, timeout, fmt)] + video_work, jobs)
    return _Pieces(made.video, made.audio, made.overlaps, made.rendered, encoded)


def _plan_pieces(clips, durations, out, pieces: Path, timeout: float) -> tuple[_Pieces, list, list]:
    """The pieces for these clips, and the jobs that make those not yet in `pieces`: audio
    (quick) and overlaps' video.

    A clip may be None (not landed yet): its middle and both its overlaps are left out (the
    returned _Pieces is then incomplete, only good for its jobs)."""
    fps = out.fps
    overlaps_at = overlap_frames(out, len(clips))  # [k]: the cut between clip k and clip k+1
    per_frame = AUDIO_RATE // fps if AUDIO_RATE % fps == 0 else None
    video: list[_Entry] = []
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
            video.append(_Entry(clip, _us_up(start, fps) if start else None, _us_down(end, fps) if end < n else None))
            middle = pieces / _piece_name("audio", clip, start, end, fps, suffix=".wav")
            if not middle.is_file():
                audio_work.append((_cut_audio, clip, middle, _sample(start, fps, per_frame), _sample(end, fps, per_frame), timeout))
            audio.append(middle)
        nxt = clips[i + 1] if i < last else None
        t = overlaps_at[i] if i < last else 0
        if t and clip is not None and nxt is not None:
            effect = out.cut_into(i + 1).effect
            name = _piece_name("overlap", clip, nxt, n, t, fps, out.width, out.height, effect)
            overlap, faded = pieces / name, (pieces / name).with_suffix(".wav")
            if not overlap.is_file():
                video_work.append((_render_overlap, clip, nxt, overlap, n, t, out, effect, timeout))
                rendered += 1
            if not faded.is_file():
                audio_work.append((_overlap_audio, clip, nxt, faded, n, t, fps, effect, timeout))
            video.append(_Entry(overlap))
            audio.append(faded)
            overlaps.append(overlap)
    return _Pieces(video, audio, overlaps, rendered), audio_work, video_work


def _run_all(work: list, jobs: int) -> None:
    if len(work) == 1:
        work[0][0](*work[0][1:])
    elif work:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for done in [pool.submit(*job) for job in work]:
                done.result()


def _us_up(frame: int, fps: int) -> int:
    return -(-frame * 1_000_000 // fps)


def _us_down(frame: int, fps: int) -> int:
    return frame * 1_000_000 // fps


def _sample(frame: int, fps: int, per_frame: int | None) -> int:
    return frame * per_frame if per_frame else round(frame * AUDIO_RATE / fps)


def _cut_audio(clip: Path, dst: Path, start: int, end: int, timeout: float) -> None:
    """Samples [start, end) of a clip's audio, decoded to a WAV (the video is not touched)."""
    audio = ff.input(str(clip)).audio.filter("atrim", start_sample=start, end_sample=end).filter("asetpts", "PTS-STARTPTS")
    tmp = _temp_beside(dst)
    try:
        stream = ff.output(audio, str(tmp), f="wav", **{"c:a": "pcm_f32le"})
        runner.run(stream, what=f"taking samples {start}-{end} of {clip.name}", timeout=timeout)
        os.replace(tmp, dst)
    finally:
        _remove(tmp)


def _render_overlap(a: Path, b: Path, dst: Path, n: int, t: int, out: OutputSpec, effect: str, timeout: float) -> None:
    """The last t frames of `a` giving way to the first t frames of `b` by `effect`, by the recipe."""
    fps = out.fps
    # seek to the keyframe at the tail and keep everything from it: an accurate seek would
    # compare against a timestamp rounded to microseconds and could drop that very frame
    tail_in = ff.input(str(a), ss=f"{_us_up(n - t, fps)}us", noaccurate_seek=None)
    head_in = ff.input(str(b), t=f"{(t + 0.5) / fps:.6f}")
    tail = tail_in.video.filter("trim", end_frame=t).filter("setpts", "PTS-STARTPTS")
    head = head_in.video.filter("trim", end_frame=t).filter("setpts", "PTS-STARTPTS")
    video = ff.filter([tail, head], "xfade", transition=EFFECTS[effect].xfade, duration=f"{t / fps:.6f}", offset=0)
    video = video.filter("trim", end_frame=t).filter("setpts", "PTS-STARTPTS")
    tmp = _temp_beside(dst)
    try:
        # one thread: overlaps are rendered `jobs` at a time, and for half a second of video
        # x264's thread pools cost more (in allocation) than they save
        stream = ff.output(video, str(tmp), f="mp4", threads=1, **_video_args(out))
        runner.run(stream, what=f"{effect} from {a.name} into {b.name}", timeout=timeout)
        os.replace(tmp, dst)
    finally:
        _remove(tmp)


def _overlap_audio(a: Path, b: Path, dst: Path, n: int, t: int, fps: int, effect: str, timeout: float) -> None:
    """The audio under the overlap of `a` (n frames) into `b`: exact to the sample, as a WAV.

    A fade through a colour dips through silence (out over the first half, in over the second);
    every other overlap crossfades the sound."""
    samples = round(t * AUDIO_RATE / fps)
    total = round(n * AUDIO_RATE / fps)
    # the tail cut by sample count rather than by a seek
    tail = ff.input(str(a)).audio.filter("atrim", start_sample=total - samples, end_sample=total).filter("asetpts", "PTS-STARTPTS")
    head = ff.input(str(b), t=f"{(t + 0.5) / fps:.6f}").audio.filter("atrim", end_sample=samples).filter("asetpts", "PTS-STARTPTS")
    if EFFECTS[effect].dips:
        half = samples // 2
        tail = tail.filter("afade", type="out", start_sample=0, nb_samples=half, curve="tri")
        head = head.filter("afade", type="in", start_sample=half, nb_samples=samples - half, curve="tri")
        faded = ff.filter([tail, head], "amix", inputs=2, duration="first", normalize=0)
        faded = faded.filter("atrim", end_sample=samples)
    else:
        faded = ff.filter([tail, head], "acrossfade", ns=samples, c1="tri", c2="tri")
    tmp = _temp_beside(dst)
    try:
        stream = ff.output(faded, str(tmp), f="wav", vn=None, **{"c:a": "pcm_f32le"})
        runner.run(stream, what=f"the audio of the {effect} from {a.name} into {b.name}", timeout=timeout)
        os.replace(tmp, dst)
    finally:
        _remove(tmp)


def _with_soundtrack(audio, out: OutputSpec, total_samples: int):
    """The clips' audio made exactly `total_samples` long, with the soundtrack (if any) mixed under."""
    audio = audio.filter("apad", whole_len=total_samples).filter("atrim", end_sample=total_samples)
    if out.soundtrack:
        track = Path(out.soundtrack)
        if not track.is_file():
            raise MediaError(f"soundtrack {track}: no such file")
        under = (
            ff.input(str(track), stream_loop=-1)
            .audio.filter("aformat", sample_fmts="fltp", sample_rates=AUDIO_RATE, channel_layouts="stereo")
            .filter("atrim", end_sample=total_samples)
            .filter("volume", out.soundtrack_volume)
        )
        audio = ff.filter([audio, under], "amix", inputs=2, duration="first", normalize=0)
        audio = audio.filter("atrim", end_sample=total_samples)
    return audio


def _encode_audio(parts: Sequence[Path], out: OutputSpec, dst: Path, scratch: Path, total: float, timeout: float, fmt: OutputFormat) -> None:
    """The WAV parts concatenated, the soundtrack mixed under, encoded once in `fmt`'s audio
    codec (AAC in an .m4a, Opus in an audio-only .webm), for the final pass to copy."""
    audio = ff.input(str(_concat_list(parts, scratch / "audio.ffconcat")), f="concat", safe=0).audio
    audio = _with_soundtrack(audio, out, round(total * AUDIO_RATE))
    stream = ff.output(audio, str(dst), f="webm" if dst.suffix == ".webm" else "mp4", **fmt.audio_args)
    runner.run(stream, what=f"encoding the audio of {len(parts)} pieces", timeout=timeout)


def _concat_list(entries: Sequence[_Entry | Path], dst: Path) -> Path:
    lines = ["ffconcat version 1.0"]
    for entry in entries:
        entry = entry if isinstance(entry, _Entry) else _Entry(Path(entry))
        escaped = str(entry.path.resolve()).replace("'", "'\\''")
        lines.append(f"file '{escaped}'")
        if entry.inpoint_us is not None:
            lines.append(f"inpoint {entry.inpoint_us}us")
        if entry.outpoint_us is not None:
            lines.append(f"outpoint {entry.outpoint_us}us")
    dst.write_text("\n".join(lines) + "\n")
    return dst


def _final_pass(video_parts, audio_parts: Path | Sequence[Path] | None, out: OutputSpec, tmp: Path, scratch: Path, total: float, fmt: OutputFormat, *, copy: bool, timeout: float) -> None:
    """Video: the parts concatenated (stream copy, or encoded by `fmt` when not `copy`). Audio:
    an already encoded soundtrack (a Path: copied); else the WAV parts (for a cut, None: the
    clips' own audio) concatenated, the soundtrack mixed under, encoded once.

    Memory stays flat either way: the concat demuxer opens one part at a time."""
    fps = out.fps
    video_in = ff.input(str(_concat_list(video_parts, scratch / "video.ffconcat")), f="concat", safe=0)
    if isinstance(audio_parts, Path):
        audio, aargs = ff.input(str(audio_parts)).audio, {"c:a": "copy"}
    else:
        if audio_parts is None:  # a cut: one input has it all
            audio = video_in.audio
        else:
            audio = ff.input(str(_concat_list(audio_parts, scratch / "audio.ffconcat")), f="concat", safe=0).audio
        audio, aargs = _with_soundtrack(audio, out, round(total * AUDIO_RATE)), fmt.audio_args
    video = video_in.video
    if copy:
        vargs = {"c:v": "copy", "video_track_timescale": _timescale(fps)}
    else:  # webm (VP9), or clips whose parameter sets differ
        vargs = fmt.video_args(out)
        video = video.filter("fps", fps).filter("format", "yuv420p")
    stream = ff.output(video, audio, str(tmp), f=fmt.muxer, **fmt.muxer_args(), **vargs, **aargs)
    # -copyts: the first clip's audio starts at -1024 samples (AAC priming); without it ffmpeg
    # shifts the whole input by that and the video would start 21 ms late
    stream = stream.global_args("-copyts")
    runner.run(stream, what=f"joining {len(video_parts)} pieces into {tmp.parent}", timeout=timeout)


# --- files --------------------------------------------------------------------------------


def _temp_beside(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.{os.getpid()}.{os.urandom(4).hex()}.part")


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
