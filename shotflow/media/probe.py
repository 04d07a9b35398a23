"""What a clip really is, read in-process with PyAV (the bundled ffmpeg has no ffprobe). PyAV is
imported at the first probe: `shotflow run` sends its first requests before it loads."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from shotflow.errors import MediaError


@dataclass(frozen=True)
class ClipInfo:
    path: str
    width: int
    height: int
    fps: float
    duration: float  # seconds, of the container
    video_codec: str
    pix_fmt: str
    sar: str
    has_audio: bool
    audio_rate: int | None
    audio_channels: int | None
    video_packets: int | None = None  # counted only by verify()
    frames_expected: int | None = None


def _open(path: str | Path):
    import av

    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"{path}: not a readable video ({exc})") from None


def probe(path: str | Path) -> ClipInfo:
    """Stream facts of a clip; MediaError if it is not a video at all."""
    with _open(path) as container:
        return _info(path, container)


def _info(path, container) -> ClipInfo:
    import av

    if not container.streams.video:
        raise MediaError(f"{path}: no video stream")
    v = container.streams.video[0]
    a = container.streams.audio[0] if container.streams.audio else None
    rate = v.average_rate or v.guessed_rate or Fraction(0)
    if container.duration:
        duration = container.duration / av.time_base
    elif v.duration and v.time_base:
        duration = float(v.duration * v.time_base)
    else:
        duration = 0.0
    sar = v.sample_aspect_ratio
    return ClipInfo(
        path=str(path),
        width=v.codec_context.width,
        height=v.codec_context.height,
        fps=float(rate),
        duration=float(duration),
        video_codec=v.codec_context.name,
        pix_fmt=str(v.codec_context.pix_fmt),
        sar=f"{sar.numerator}:{sar.denominator}" if sar else "1:1",
        has_audio=a is not None,
        audio_rate=a.codec_context.sample_rate if a else None,
        audio_channels=a.codec_context.channels if a else None,
        frames_expected=v.frames or None,
    )


def verify(path: str | Path, *, expected_seconds: float | None = None, tolerance: float = 0.5) -> ClipInfo:
    """Probe and demux every video packet.

    A plain probe passes a truncated faststart mp4 (its index is at the front); counting the
    packets against the index's frame count catches it, at the cost of a demux (no decode).
    """
    import av

    with _open(path) as container:
        info = _info(path, container)
        packets = 0
        try:
            for packet in container.demux(container.streams.video[0]):
                if packet.size:
                    packets += 1
        except (av.error.FFmpegError, OSError) as exc:
            raise MediaError(f"{path}: damaged after {packets} video packets ({exc})") from None
    if info.frames_expected and packets < info.frames_expected:
        raise MediaError(f"{path}: truncated: {packets} of {info.frames_expected} video packets present")
    if packets == 0:
        raise MediaError(f"{path}: no video frames")
    if expected_seconds is not None and abs(info.duration - expected_seconds) > tolerance:
        raise MediaError(f"{path}: lasts {info.duration:.2f} s, expected {expected_seconds} s (±{tolerance} s)")
    return ClipInfo(**{**info.__dict__, "video_packets": packets})
