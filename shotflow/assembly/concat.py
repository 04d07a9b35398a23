"""The concat demuxer: a list file naming the files it reads in order, each from an inpoint to
an outpoint, and the ffmpeg input that reads them one at a time (memory stays flat)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import ffmpeg as ff


@dataclass(frozen=True)
class Entry:
    """One file of a concat-demuxer list, optionally from an inpoint to an outpoint (µs)."""

    path: Path
    inpoint_us: int | None = None
    outpoint_us: int | None = None


def concat_input(entries: Sequence[Entry | Path], list_path: Path):
    """An ffmpeg-python input reading `entries` one after the other (their list written to `list_path`)."""
    return ff.input(str(concat_list(entries, list_path)), f="concat", safe=0)


def concat_list(entries: Sequence[Entry | Path], dst: Path) -> Path:
    """Write the concat demuxer's list of `entries` (absolute paths, quoted) to `dst`."""
    lines = ["ffconcat version 1.0"]
    for entry in entries:
        entry = entry if isinstance(entry, Entry) else Entry(Path(entry))
        escaped = str(entry.path.resolve()).replace("'", "'\\''")
        lines.append(f"file '{escaped}'")
        if entry.inpoint_us is not None:
            lines.append(f"inpoint {entry.inpoint_us}us")
        if entry.outpoint_us is not None:
            lines.append(f"outpoint {entry.outpoint_us}us")
    dst.write_text("\n".join(lines) + "\n")
    return dst
