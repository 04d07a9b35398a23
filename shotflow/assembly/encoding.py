"""The recipe's encoder settings: x264 and 48 kHz stereo AAC, and where ffmpeg's output files are written."""

from __future__ import annotations

import os
from pathlib import Path

from shotflow.model import OutputSpec


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


def timescale(fps: int) -> int:
    return 90000 if 90000 % fps == 0 else fps * 1000


def video_args(out: OutputSpec) -> dict:
    return {**X264, "g": GOP_SECONDS * out.fps, "video_track_timescale": timescale(out.fps)}


AUDIO_ARGS = {"c:a": "aac", "b:a": AUDIO_BITRATE, "ar": AUDIO_RATE, "ac": 2}


def temp_beside(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.{os.getpid()}.{os.urandom(4).hex()}.part")


def remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
