"""A contact sheet: one frame from the middle of every shot, labelled, in one PNG.

People would rather look than read: a glance shows a wrong framing, a black clip or a shot in
the wrong place. A clip that is missing or unreadable gets a labelled empty cell, not an error.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import av
from PIL import Image, ImageDraw, ImageFont, ImageOps

from shotflow.plan import ShotPlan

BACKGROUND = (24, 24, 28)
CELL = (40, 40, 46)
TEXT = (235, 235, 235)
DIM = (160, 160, 168)
WARN = (240, 120, 100)


def middle_frame(path: str | os.PathLike) -> Image.Image | None:
    """The frame nearest the middle of a clip, or None when it cannot be decoded."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            middle = (container.duration or 0) / av.time_base / 2
            if middle > 0:
                container.seek(int(middle * av.time_base), backward=True, any_frame=False)
            picked = None
            for frame in container.decode(stream):
                picked = frame
                if frame.time is None or frame.time >= middle:
                    break
            return picked.to_image() if picked is not None else None
    except (av.error.FFmpegError, OSError, IndexError):
        return None


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)  # Pillow's embedded scalable font: no system font needed


def _fit_text(text: str, font, width: float) -> str:
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def contact_sheet(
    shots: Sequence[ShotPlan],
    clips: Sequence[str | os.PathLike | None],
    dst: str | os.PathLike,
    *,
    title: str | None = None,
    columns: int | None = None,
    thumb_width: int = 320,
) -> Path:
    """Write a PNG with one labelled frame per shot (clips[i] is shots[i]'s clip) to `dst`."""
    if len(shots) != len(clips):
        raise ValueError(f"{len(shots)} shots but {len(clips)} clips")
    dst = Path(dst)
    n = len(shots)
    columns = columns or max(1, min(n, 4))
    rows = max(1, math.ceil(n / columns))
    thumb_h = round(thumb_width * 9 / 16)
    pad = max(6, thumb_width // 24)
    label_font, meta_font = _font(max(10, thumb_width // 18)), _font(max(9, thumb_width // 24))
    line = lambda font: font.getbbox("Ag")[3] + 4  # noqa: E731
    label_h = line(label_font) + line(meta_font) + pad // 2
    header_font = _font(max(12, thumb_width // 12))
    header_h = line(header_font) + pad if title else 0
    width = columns * (thumb_width + pad) + pad
    height = header_h + rows * (thumb_h + label_h + pad) + pad
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, pad), _fit_text(title, header_font, width - 2 * pad), font=header_font, fill=TEXT)

    for i, (shot, clip) in enumerate(zip(shots, clips)):
        x = pad + (i % columns) * (thumb_width + pad)
        y = header_h + pad + (i // columns) * (thumb_h + label_h + pad)
        draw.rectangle((x, y, x + thumb_width - 1, y + thumb_h - 1), fill=CELL)
        frame = middle_frame(clip) if clip is not None and Path(clip).is_file() else None
        if frame is not None:
            frame = ImageOps.contain(frame, (thumb_width, thumb_h))
            sheet.paste(frame, (x + (thumb_width - frame.width) // 2, y + (thumb_h - frame.height) // 2))
        else:
            note = "no clip" if clip is None or not Path(clip).is_file() else "unreadable clip"
            draw.text((x + pad, y + thumb_h // 2 - line(meta_font) // 2), note, font=meta_font, fill=WARN)
        ty = y + thumb_h + pad // 3
        draw.text((x, ty), _fit_text(f"{i + 1}. {shot.id}", label_font, thumb_width), font=label_font, fill=TEXT)
        meta = f"{shot.model} · {shot.seconds} s · {shot.width}x{shot.height}"
        draw.text((x, ty + line(label_font)), _fit_text(meta, meta_font, thumb_width), font=meta_font, fill=DIM)

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.{os.urandom(4).hex()}.part")
    try:
        sheet.save(tmp, format="PNG", optimize=False)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst
