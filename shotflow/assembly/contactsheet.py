"""A contact sheet: one frame from the middle of every shot, labelled, in one PNG.

People would rather look than read: a glance shows a wrong framing, a black clip or a shot in
the wrong place. A clip that is missing or unreadable gets a labelled empty box, not an error.

Each frame keeps its own aspect ratio and gets the same area on the sheet, so a 9:16 frame is
as tall as a 16:9 one is wide (equally easy to read, not a strip in a landscape cell), and a
row holds as many frames as fit: more vertical frames per row than wide ones. Frames stay in
storyboard order, rows wrap like text. Every frame is labelled with its shot id, model,
duration and cost (for a preview: what it would cost on fal).

The takes view (`takes_sheet`, NAME.takes.png beside a video whose storyboard has takes, and the
review gates' picture of what there is to pick from): one row per shot, one frame per take in
take order, each labelled with the shot id, take, model, duration and cost, the picked take
framed and labelled "picked". `take_frames` writes each take's frame as its own PNG.

Decoding the frames is most of a sheet's cost: `Frames` grabs them in the background as clips
land (while others still generate), so the sheet drawn after the final file is only drawing.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import av
from PIL import Image, ImageDraw, ImageFont, ImageOps

from shotflow.assembly.destination import replacing
from shotflow.model import ShotPlan
from shotflow.money import on_fal, usd

BACKGROUND = (24, 24, 28)
CELL = (40, 40, 46)
TEXT = (235, 235, 235)
DIM = (160, 160, 168)
WARN = (240, 120, 100)
PICKED = (250, 200, 60)  # the frame around the take a video is cut from, and its label
# a 32:9 panorama or a 9:32 strip is drawn in the box of the nearest of these, letterboxed
WIDEST, TALLEST = 21 / 9, 9 / 21


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


class Frames:
    """Middle frames grabbed in the background (`grab(path)` as each clip lands), for
    `contact_sheet(..., frames=...)`: a clip grabbed earlier is not decoded again, one not
    grabbed (or changed since) is decoded when the sheet is drawn. Frames are kept at most
    `max_side` pixels on their longer side (a sheet's boxes are far smaller). One worker: a
    frame is cheap, and the cores are for the clips' normalisation."""

    def __init__(self, max_side: int = 640):
        self.max_side = max_side
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="contact-frames")
        self._grabbed: dict[str, tuple[tuple[int, int], Future]] = {}
        self._lock = threading.Lock()

    def grab(self, path: str | os.PathLike) -> None:
        key = _identity(path)
        if key is None:
            return
        with self._lock:
            if self._grabbed.get(key[0], (None,))[0] == key[1]:
                return
            self._grabbed[key[0]] = (key[1], self._pool.submit(self._frame, path))

    def frame(self, path: str | os.PathLike) -> Image.Image | None:
        """The clip's middle frame: the one grabbed for this very file (same size and mtime), else decoded now."""
        key = _identity(path)
        with self._lock:
            grabbed = self._grabbed.get(key[0]) if key else None
        if grabbed is not None and grabbed[0] == key[1] and not grabbed[1].cancelled():
            return grabbed[1].result()
        return self._frame(path)

    def _frame(self, path) -> Image.Image | None:
        frame = middle_frame(path)
        if frame is not None:
            frame.thumbnail((self.max_side, self.max_side))
        return frame

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _identity(path) -> tuple[str, tuple[int, int]] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return str(Path(path).resolve()), (st.st_size, st.st_mtime_ns)


# --- what each frame is labelled with ----------------------------------------------------------


def cost_label(shot: ShotPlan, backend: str) -> str:
    """A shot's cost as the sheet shows it: a preview spent nothing, so it says what fal would charge."""
    if shot.cost is None:
        return "price unknown"
    return on_fal(usd(shot.cost), backend)


def label_lines(index: int, shot: ShotPlan, backend: str) -> tuple[str, str, str]:
    """The three lines under a frame: number and shot id; model and duration; cost."""
    return f"{index + 1}. {shot.id}", f"{shot.model} · {shot.seconds:g} s", cost_label(shot, backend)


# --- where each frame goes ---------------------------------------------------------------------


def frame_box(aspect: float, thumb_width: int) -> tuple[int, int]:
    """The box of a frame with this aspect ratio (width / height): the area of a 16:9 frame
    `thumb_width` wide, so 16:9 is thumb_width wide, 9:16 thumb_width tall, 1:1 in between."""
    aspect = min(max(aspect, TALLEST), WIDEST)
    area = thumb_width * thumb_width * 9 / 16
    width = math.sqrt(area * aspect)
    return round(width), round(area / width)


@dataclass(frozen=True)
class Tile:
    """One frame's place on the sheet: its box (x, y, width, height) and where its label starts."""

    x: int
    y: int
    width: int
    height: int
    label_y: int


def layout(
    boxes: Sequence[tuple[int, int]], *, max_width: int, pad: int, label_h: int, top: int = 0
) -> tuple[list[Tile], int, int]:
    """Frames in order, left to right, wrapped into rows no wider than `max_width`; in a row the
    frames stand on one line (bottom-aligned) with their labels under it. Returns the tiles and
    the sheet's width (the widest row) and height."""
    tiles: list[Tile] = []
    rows: list[list[tuple[int, int]]] = [[]]
    x = pad
    for w, h in boxes:
        if rows[-1] and x + w + pad > max_width:
            rows.append([])
            x = pad
        rows[-1].append((w, h))
        x += w + pad
    y, widest = top + pad, 0
    for row in rows:
        tallest = max((h for _, h in row), default=0)
        x = pad
        for w, h in row:
            tiles.append(Tile(x, y + tallest - h, w, h, y + tallest))
            x += w + pad
        widest = max(widest, x)
        y += tallest + label_h + pad
    return tiles, widest, y


# --- drawing -------------------------------------------------------------------------------------


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
    backend: str = "fal",
    columns: int = 4,
    thumb_width: int = 320,
    frames: Frames | None = None,
) -> Path:
    """Write a PNG with one labelled frame per shot (clips[i] is shots[i]'s clip) to `dst`.

    A 16:9 frame is `thumb_width` wide and a row is as wide as `columns` of those (other
    aspect ratios: see `frame_box`); `backend` words the cost ("would cost ... on fal" for a
    preview). A frame's shape is the clip's own; without a readable clip, the shot's. `frames`:
    middle frames grabbed ahead (see `Frames`), else each clip is decoded now."""
    if len(shots) != len(clips):
        raise ValueError(f"{len(shots)} shots but {len(clips)} clips")
    dst = Path(dst)
    grab = frames.frame if frames is not None else middle_frame
    pictures = [grab(c) if c is not None and Path(c).is_file() else None for c in clips]
    aspects = [f.width / f.height if f is not None else s.width / s.height for s, f in zip(shots, pictures)]
    boxes = [frame_box(a, thumb_width) for a in aspects]

    pad, label_font, meta_font, header_font, label_h, header_h = _lettering(thumb_width, title)
    max_width = columns * (thumb_width + pad) + pad
    tiles, width, height = layout(boxes, max_width=max_width, pad=pad, label_h=label_h, top=header_h)
    if title:
        width = max(width, min(max_width, round(header_font.getlength(title)) + 2 * pad))
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, pad), _fit_text(title, header_font, width - 2 * pad), font=header_font, fill=TEXT)

    for i, (shot, clip, frame, tile) in enumerate(zip(shots, clips, pictures, tiles)):
        draw.rectangle((tile.x, tile.y, tile.x + tile.width - 1, tile.y + tile.height - 1), fill=CELL)
        if frame is not None:
            frame = ImageOps.contain(frame, (tile.width, tile.height))
            sheet.paste(frame, (tile.x + (tile.width - frame.width) // 2, tile.y + (tile.height - frame.height) // 2))
        else:
            note = "no clip" if clip is None or not Path(clip).is_file() else "unreadable clip"
            at = (tile.x + tile.width // 2, tile.y + tile.height // 2)
            draw.text(at, _fit_text(note, meta_font, tile.width - pad), font=meta_font, fill=WARN, anchor="mm")
        name, model, cost = label_lines(i, shot, backend)
        ty = tile.label_y + pad // 3
        draw.text((tile.x, ty), _fit_text(name, label_font, tile.width), font=label_font, fill=TEXT)
        ty += _line(label_font)
        for text in (model, cost):
            draw.text((tile.x, ty), _fit_text(text, meta_font, tile.width), font=meta_font, fill=DIM)
            ty += _line(meta_font)

    dst.parent.mkdir(parents=True, exist_ok=True)
    with replacing(dst) as tmp:
        sheet.save(tmp, format="PNG", optimize=False)
    return dst


# --- the takes view ------------------------------------------------------------------------------


def take_lines(shot: ShotPlan, backend: str, picked: bool) -> tuple[str, str, str]:
    """The three lines under a take: shot id and take (and "picked"); model and duration; cost."""
    name = f"{shot.id} · take {shot.take}" + (" · picked" if picked else "")
    return name, f"{shot.model} · {shot.seconds:g} s", cost_label(shot, backend)


def _line(font) -> int:
    """The height of one line of `font` on a sheet."""
    return font.getbbox("Ag")[3] + 4


def _lettering(thumb_width: int, title: str | None):
    """A sheet's spacing and fonts for frames `thumb_width` wide: pad, the label's, meta's and
    header's fonts, the height of a frame's label (a name and two lines) and of the header."""
    pad = max(6, thumb_width // 24)
    label_font, meta_font = _font(max(10, thumb_width // 18)), _font(max(9, thumb_width // 24))
    header_font = _font(max(12, thumb_width // 12))
    label_h = _line(label_font) + 2 * _line(meta_font) + pad // 2
    header_h = _line(header_font) + pad if title else 0
    return pad, label_font, meta_font, header_font, label_h, header_h


def takes_sheet(
    takes: Sequence[ShotPlan],
    clips: Sequence[str | os.PathLike | None],
    dst: str | os.PathLike,
    *,
    picked: Mapping[str, int] | None = None,
    title: str | None = None,
    backend: str = "fal",
    thumb_width: int = 240,
    frames: Frames | None = None,
) -> Path:
    """Write a PNG with one row per shot and one labelled frame per take to `dst` (clips[i] is
    takes[i]'s clip; None, or a missing file: a labelled empty box).

    Rows are in the order the shots first appear in `takes`, a row's takes in take order, so column
    k holds every shot's k-th take; every column is as wide as the widest frame (frames keep their
    shape: see `frame_box`). `picked` (shot id -> take): the takes a video is cut from, framed and
    labelled "picked". `backend` words the cost; `frames`: middle frames grabbed ahead. Used for
    NAME.takes.png and by the review gates (any set of shots: those of one level of `from:`)."""
    if len(takes) != len(clips):
        raise ValueError(f"{len(takes)} takes but {len(clips)} clips")
    picked = picked or {}
    grab = frames.frame if frames is not None else middle_frame
    rows: dict[str, list[tuple[ShotPlan, str | os.PathLike | None, Image.Image | None]]] = {}
    for take, clip in zip(takes, clips):
        picture = grab(clip) if clip is not None and Path(clip).is_file() else None
        rows.setdefault(take.id, []).append((take, clip, picture))
    boxes = {}
    for shot_id, row in rows.items():
        row.sort(key=lambda cell: cell[0].take)
        seen = next((p for _, _, p in row if p is not None), None)
        aspect = seen.width / seen.height if seen is not None else row[0][0].width / row[0][0].height
        boxes[shot_id] = frame_box(aspect, thumb_width)

    pad, label_font, meta_font, header_font, label_h, header_h = _lettering(thumb_width, title)
    column = max(w for w, _ in boxes.values()) + pad
    width = pad + column * max(len(row) for row in rows.values())
    height = header_h + pad + sum(h + label_h + pad for _, h in boxes.values())
    if title:
        width = max(width, round(header_font.getlength(title)) + 2 * pad)
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, pad), _fit_text(title, header_font, width - 2 * pad), font=header_font, fill=TEXT)

    y = header_h + pad
    for shot_id, row in rows.items():
        w, h = boxes[shot_id]
        for k, (take, clip, picture) in enumerate(row):
            x = pad + k * column
            chosen = picked.get(take.id) == take.take
            if chosen:
                edge = max(2, pad // 3)
                draw.rectangle((x - edge, y - edge, x + w - 1 + edge, y + h - 1 + edge), fill=PICKED)
            draw.rectangle((x, y, x + w - 1, y + h - 1), fill=CELL)
            if picture is not None:
                picture = ImageOps.contain(picture, (w, h))
                sheet.paste(picture, (x + (w - picture.width) // 2, y + (h - picture.height) // 2))
            else:
                note = "no clip" if clip is None or not Path(clip).is_file() else "unreadable clip"
                draw.text((x + w // 2, y + h // 2), _fit_text(note, meta_font, w - pad), font=meta_font, fill=WARN, anchor="mm")
            name, model, cost = take_lines(take, backend, chosen)
            ty = y + h + pad // 3
            draw.text((x, ty), _fit_text(name, label_font, column - pad), font=label_font, fill=PICKED if chosen else TEXT)
            ty += _line(label_font)
            for text in (model, cost):
                draw.text((x, ty), _fit_text(text, meta_font, column - pad), font=meta_font, fill=DIM)
                ty += _line(meta_font)
        y += h + label_h + pad

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with replacing(dst) as tmp:
        sheet.save(tmp, format="PNG", optimize=False)
    return dst


def take_frames(
    takes: Sequence[ShotPlan],
    clips: Sequence[str | os.PathLike | None],
    folder: str | os.PathLike,
    *,
    max_side: int = 320,
    frames: Frames | None = None,
) -> dict[tuple[str, int], Path]:
    """Each take's middle frame as its own PNG, `<folder>/<shot id>.take<N>.png`, at most
    `max_side` pixels on its longer side (clips[i] is takes[i]'s clip); a take without a readable
    clip gets none. Returns {(shot id, take): path}: e.g. for an artifact that shows each take."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for take, clip in zip(takes, clips):
        if clip is None or not Path(clip).is_file():
            continue
        picture = frames.frame(clip) if frames is not None else middle_frame(clip)
        if picture is None:
            continue
        picture = picture.copy()
        picture.thumbnail((max_side, max_side))
        dst = folder / f"{take.id}.take{take.take}.png"
        with replacing(dst) as tmp:
            picture.save(tmp, format="PNG")
        written[take.id, take.take] = dst
    return written
