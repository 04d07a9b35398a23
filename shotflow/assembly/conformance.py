"""Whether clips can be stream-copied together: each one's shape, length and keyframes checked
against the recipe (and each other), and the ones that do not match normalised again."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import av

from shotflow.assembly.destination import replacing
from shotflow.assembly.encoding import AUDIO_RATE, timescale
from shotflow.assembly.normalise import normalise, normalise_stored
from shotflow.assembly.pieces import piece_name, pieces_folder
from shotflow.assembly.recipe import clip_edges, cut_points, frames
from shotflow.errors import MediaError
from shotflow.media.probe import probe
from shotflow.model import GeneratedClip, OutputSpec, ShotPlan
from shotflow.store.clips import ClipStore


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
    """A clip's StreamShape, read from its headers (no demuxing); MediaError when it is no video."""
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
    """What the recipe's clips have for `out` (StreamShape's fields by name)."""
    return {
        "codec": "h264",
        "width": out.width,
        "height": out.height,
        "pix_fmt": "yuv420p",
        "sar": "1",
        "time_base": f"1/{timescale(out.fps)}",
        "fps": str(out.fps),
        "audio": (AUDIO_RATE, 2),
    }


def matches(shape: StreamShape, out: OutputSpec, reference: StreamShape | None) -> bool:
    """`shape` is the recipe's for `out`, with the same SPS/PPS and profile as `reference` (if any)."""
    if any(getattr(shape, k) != v for k, v in expected_shape(out).items()):
        return False
    return reference is None or (shape.extradata == reference.extradata and shape.profile == reference.profile)


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


def fits_checked(path: Path, seconds: float, out: OutputSpec, edges: tuple[int, int], checked: Path | None) -> bool:
    """`_fits`, remembered in `checked` (a marker file named by the clip's name, size and mtime
    and what was checked): a clip checked when it landed is not demuxed again in the join."""
    if checked is None:
        return _fits(path, seconds, out, edges)
    marker = checked / piece_name("fits", path, frames(seconds, out.fps), out.fps, cut_points(seconds, out, edges), suffix=".ok")
    if marker.is_file():
        return True
    if not _fits(path, seconds, out, edges):
        return False
    marker.touch()
    return True


def shape_checked(path: Path, checked: Path | None) -> StreamShape:
    """`stream_shape`, remembered in `checked` (a file named by the clip's name, size and mtime):
    a clip read when it landed is not opened again by the join."""
    try:
        if checked is None:
            raise FileNotFoundError
        marker = checked / piece_name("shape", path, suffix=".json")
    except OSError:  # no folder, or no clip: read it (and say what is wrong with it)
        return stream_shape(path)
    try:
        known = json.loads(marker.read_text())
        return StreamShape(**{**known, "audio": tuple(known["audio"]) if known["audio"] else None})
    except (OSError, ValueError, TypeError, KeyError):
        pass
    shape = stream_shape(path)
    with contextlib.suppress(OSError):  # only an optimisation
        with replacing(marker) as tmp:
            tmp.write_text(json.dumps(dataclasses.asdict(shape)))
    return shape


def normalise_checked(store: ClipStore, clip: GeneratedClip, shot: ShotPlan, out: OutputSpec) -> Path:
    """`normalise_stored`, and the result's shape, length and keyframes checked now, as the clip
    lands (remembered in the store's pieces folder): the join after the last clip then reads only
    what it has not seen, the last clip."""
    path = normalise_stored(store, clip, shot, out)
    try:
        pieces = pieces_folder(store.root)
        pieces.mkdir(parents=True, exist_ok=True)
        shape_checked(path, pieces)
        fits_checked(path, shot.seconds, out, clip_edges(out, shot.index), pieces)
    except Exception:  # only an optimisation: the join checks the clip again, and says what is wrong
        pass
    return path


class RecipeCheck:
    """Checks clips, in order, against the recipe and against the first clip that matched it
    (their SPS/PPS and profile must agree too for a stream copy). With `checked` (the pieces
    folder), each clip's shape and its length and keyframe check are remembered there."""

    def __init__(self, out: OutputSpec, checked: Path | None = None):
        self.out, self.checked = out, checked
        self.reference: StreamShape | None = None

    def conforms(self, path: Path, seconds: float, edges: tuple[int, int]) -> bool:
        shape = shape_checked(path, self.checked)
        if self.reference is None and matches(shape, self.out, None):
            self.reference = shape
        return matches(shape, self.out, self.reference) and fits_checked(path, seconds, self.out, edges, self.checked)

    def adopt(self, path: Path) -> None:
        """Take `path` (just normalised again) as the reference when no clip matched before it."""
        if self.reference is None:
            self.reference = stream_shape(path)


def matching(
    clips, durations, out, scratch: Path, timeout: float, *, edges: list[tuple[int, int]], checked: Path | None = None
) -> tuple[list[Path], tuple[int, ...]]:
    """The clips, with any that do not match the recipe (or each other) normalised again.

    With `checked` (the pieces folder), a clip's shape and its length and keyframe check are remembered there."""
    fixed: list[Path] = []
    redone: list[int] = []
    check = RecipeCheck(out, checked)
    for i, (path, seconds) in enumerate(zip(clips, durations)):
        if not check.conforms(path, seconds, edges[i]):
            path = _renormalised(path, i, seconds, out, scratch, timeout, edges)
            redone.append(i)
            check.adopt(path)
        fixed.append(path)
    if redone and len(redone) < len(clips):
        # the kept clips and the redone ones must share SPS/PPS too; when not, redo them all
        ref = stream_shape(fixed[redone[0]])
        if any(stream_shape(p).extradata != ref.extradata for p in fixed):
            fixed = [_renormalised(p, i, s, out, scratch, timeout, edges) for i, (p, s) in enumerate(zip(clips, durations))]
            return fixed, tuple(range(len(clips)))
    return fixed, tuple(redone)


def _renormalised(
    path: Path, i: int, seconds: float, out: OutputSpec, scratch: Path, timeout: float, edges: list[tuple[int, int]]
) -> Path:
    return normalise(path, scratch / f"renormalised-{i}.mp4", out, seconds=seconds, edges=edges[i], timeout=timeout)
