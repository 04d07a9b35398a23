"""How the assembly encodes, and the one way it runs ffmpeg into a file.

The recipe's settings: x264 without B-frames (a stream-copy cut at a forced keyframe is exact)
and 48 kHz stereo AAC, the same for every normalised clip and every rendered overlap, so their
video can be joined by stream copy; WAV for the sound spans cut exact to the sample. `encode`
runs ffmpeg into a temporary file beside the destination and renames it over it once ffmpeg
has finished (`destination.replacing`); `encode_into` writes a path the caller owns (the join
checks its result before it lands).
"""

from __future__ import annotations

from pathlib import Path

import ffmpeg as ff

from shotflow.assembly.destination import replacing
from shotflow.media import ffmpeg as runner
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
    """The mp4 video track's timescale: 90 kHz when every frame falls on a tick of it."""
    return 90000 if 90000 % fps == 0 else fps * 1000


def video_args(out: OutputSpec) -> dict:
    """The recipe's x264 settings at `out`'s frame rate (a keyframe at least every GOP_SECONDS)."""
    return {**X264, "g": GOP_SECONDS * out.fps, "video_track_timescale": timescale(out.fps)}


AUDIO_ARGS = {"c:a": "aac", "b:a": AUDIO_BITRATE, "ar": AUDIO_RATE, "ac": 2}
# the sound spans of an overlapping join, decoded exact to the sample
WAV_ARGS = {"f": "wav", "vn": None, "c:a": "pcm_f32le"}


def recipe_sound(audio):
    """An ffmpeg-python audio stream in the recipe's sample format, rate and layout."""
    return audio.filter("aformat", sample_fmts="fltp", sample_rates=AUDIO_RATE, channel_layouts="stereo")


def encode_into(path: Path, *streams, what: str, timeout: float, global_args: tuple[str, ...] = (), **args) -> Path:
    """ffmpeg writes `streams` (ffmpeg-python nodes) to `path` with `args` (muxer, codecs);
    AssemblyError naming `what` when it fails or outlasts `timeout`."""
    stream = ff.output(*streams, str(path), **args)
    if global_args:
        stream = stream.global_args(*global_args)
    runner.run(stream, what=what, timeout=timeout)
    return path


def encode(dst: Path, *streams, what: str, timeout: float, **args) -> Path:
    """`encode_into` a temporary file beside `dst`, renamed over `dst` once complete: `dst` is
    never half-written, and left as it was when ffmpeg fails."""
    with replacing(dst) as tmp:
        encode_into(tmp, *streams, what=what, timeout=timeout, **args)
    return dst
