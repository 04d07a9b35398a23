"""What goes where: each cut's overlap, each clip's edges and keyframes, the final length, in whole frames."""

from __future__ import annotations

from typing import Sequence

from shotflow.errors import AssemblyError
from shotflow.model import OutputSpec


def frames(seconds: float, fps: int) -> int:
    """`seconds` in whole frames at `fps` (every length the assembly uses is one)."""
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


def check_lengths(clips, durations, out: OutputSpec) -> bool:
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


def us_up(frame: int, fps: int) -> int:
    """The time of `frame` in whole microseconds, rounded up (the concat demuxer's inpoints, seeks)."""
    return -(-frame * 1_000_000 // fps)


def us_down(frame: int, fps: int) -> int:
    """The time of `frame` in whole microseconds, rounded down (the concat demuxer's outpoints)."""
    return frame * 1_000_000 // fps
