"""The formats the final video is written in, by extension (`OUTPUT_FORMATS`): .mp4 and .mov
(H.264 + AAC, joined by stream copy) and .webm (VP9 + Opus: the same H.264 pieces, re-encoded to
VP9 in the final pass). The preflight reads that list to refuse any other extension before spending.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from shotflow.assembly.encoding import AUDIO_ARGS, AUDIO_RATE, GOP_SECONDS, video_args
from shotflow.errors import AssemblyError
from shotflow.model import OutputSpec

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


H264_AAC = {
    "video_codec": "h264",
    "audio_codec": "aac",
    "copies_video": True,
    "video_args": video_args,
    "audio_args": AUDIO_ARGS,
    "audio_suffix": ".m4a",
}
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
