"""The contact sheet: one labelled frame per shot, from the middle of its clip, laid out by aspect ratio; and the
takes view: a row per shot, a frame per take, the picked take marked."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from decimal import Decimal

import numpy as np
import pytest
from PIL import Image

from shotflow.assembly.contactsheet import (
    BACKGROUND,
    CELL,
    PICKED,
    Frames,
    contact_sheet,
    frame_box,
    label_lines,
    layout,
    middle_frame,
    take_frames,
    take_lines,
    takes_sheet,
)
from shotflow.media.ffmpeg import ffmpeg_exe
from shotflow.model import ShotPlan

SHOT = ShotPlan(
    "opening", 0, 2, "kling-v2", "fal-ai/kling", {"prompt": "p"}, 5, "16:9", "720p", 64, 36, 25, False, Decimal("1.40")
)
PORTRAIT = replace(SHOT, id="portrait", aspect_ratio="9:16", width=36, height=64)


def solid_thirds(path, colours=("red", "lime", "blue"), size="64x36"):
    """A 0.9 s clip: one colour per third, so the middle frame is the second colour."""
    inputs = []
    for c in colours:
        inputs += ["-f", "lavfi", "-i", f"color=c={c}:s={size}:r=25:d=0.3"]
    subprocess.run(
        [
            ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            *inputs,
            "-filter_complex",
            "concat=n=3:v=1:a=0",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            str(path),
        ],
        check=True,
        timeout=60,
    )
    return path


def box_of(image: np.ndarray, mask: np.ndarray) -> tuple[int, int, int, int]:
    """x, y, width, height of the pixels where `mask` holds."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def lime(image):
    return (image[..., 1] > 200) & (image[..., 0] < 60) & (image[..., 2] < 60)


def blue(image):
    return (image[..., 2] > 200) & (image[..., 0] < 60) & (image[..., 1] < 60)


def test_the_frame_is_taken_from_the_middle(tmp_path):
    frame = np.asarray(middle_frame(solid_thirds(tmp_path / "c.mp4")))
    assert frame[..., 1].mean() > 200 and frame[..., 0].mean() < 60  # lime, not red or blue


# --- layout --------------------------------------------------------------------------------------


def test_every_aspect_ratio_gets_the_same_area_in_its_own_shape():
    assert frame_box(16 / 9, 320) == (320, 180)
    assert frame_box(9 / 16, 320) == (180, 320)  # as tall as a wide frame is wide: not a strip
    assert frame_box(1, 320) == (240, 240)
    assert frame_box(4 / 3, 320)[0] * frame_box(4 / 3, 320)[1] == pytest.approx(320 * 180, rel=0.01)
    assert frame_box(32 / 9, 320) == frame_box(21 / 9, 320)  # a panorama is letterboxed in a 21:9 box


def test_vertical_frames_sit_in_a_wider_grid_than_landscape_ones():
    width = 4 * (320 + 13) + 13

    def per_row(box):
        tiles, _, _ = layout([box] * 12, max_width=width, pad=13, label_h=40)
        return sum(1 for t in tiles if t.y == tiles[0].y)

    assert per_row(frame_box(16 / 9, 320)) == 4
    assert per_row(frame_box(1, 320)) == 5
    assert per_row(frame_box(9 / 16, 320)) == 6


def test_a_mixed_storyboard_keeps_its_order_and_each_frame_its_shape():
    boxes = [frame_box(a, 320) for a in (16 / 9, 9 / 16, 1, 16 / 9, 9 / 16, 16 / 9)]
    tiles, width, height = layout(boxes, max_width=4 * 333 + 13, pad=13, label_h=40, top=50)
    assert [(t.width, t.height) for t in tiles] == boxes
    first_row = [t for t in tiles if t.label_y == tiles[0].label_y]
    assert len(first_row) == 5 and [t.x for t in first_row] == sorted(t.x for t in first_row)
    assert tiles[5].x == 13 and tiles[5].y > tiles[0].label_y  # the sixth does not fit: a new row
    assert {t.y + t.height for t in first_row} == {tiles[0].label_y}  # frames stand on one line, labels under it
    assert tiles[1].y == 50 + 13  # the tallest frame starts under the title
    assert width == max(t.x + t.width for t in tiles) + 13 and height == tiles[5].label_y + 40 + 13


# --- the picture ---------------------------------------------------------------------------------


def test_a_vertical_clip_fills_a_tall_box_and_a_wide_one_a_wide_box(tmp_path):
    clips = [solid_thirds(tmp_path / "wide.mp4"), solid_thirds(tmp_path / "tall.mp4", ("black", "blue", "black"), "36x64"), None]
    shots = [SHOT, PORTRAIT, replace(PORTRAIT, id="lost")]
    sheet = contact_sheet(shots, clips, tmp_path / "sheets" / "contact.png", title="Demo", thumb_width=192)
    image = np.asarray(Image.open(sheet).convert("RGB"))
    wide, tall = box_of(image, lime(image)), box_of(image, blue(image))
    assert (wide[2], wide[3]) == pytest.approx(frame_box(16 / 9, 192), abs=2)  # 192 x 108
    assert (tall[2], tall[3]) == pytest.approx(frame_box(9 / 16, 192), abs=2)  # 108 x 192, not 61 x 108
    assert wide[1] + wide[3] == tall[1] + tall[3]  # standing on one line
    lost = box_of(image, (image == CELL).all(axis=2))  # the missing clip: an empty box of the shot's shape
    assert (lost[2], lost[3]) == pytest.approx(frame_box(36 / 64, 192), abs=2)
    assert lost[0] > tall[0] > wide[0]  # in storyboard order
    assert set(map(tuple, image[:6, :6].reshape(-1, 3))) == {BACKGROUND}
    assert not list(sheet.parent.glob(".*part"))


def test_a_sheet_of_few_shots_is_only_as_wide_as_they_are(tmp_path):
    clip = solid_thirds(tmp_path / "a.mp4")
    one = Image.open(contact_sheet([SHOT], [clip], tmp_path / "1.png", thumb_width=192))
    assert one.width == 192 + 2 * 8


# --- labels --------------------------------------------------------------------------------------


def test_labels_name_the_shot_model_duration_and_cost():
    assert label_lines(0, SHOT, "fal") == ("1. opening", "kling-v2 · 5 s", "$1.40 on fal")
    assert label_lines(2, SHOT, "preview") == ("3. opening", "kling-v2 · 5 s", "would cost $1.40 on fal")
    assert label_lines(0, replace(SHOT, cost=None), "preview")[2] == "price unknown"
    assert label_lines(0, replace(SHOT, cost=Decimal("0.004")), "fal")[2] == "$0.004 on fal"


def test_labels_are_drawn(tmp_path):
    clip = solid_thirds(tmp_path / "a.mp4")

    def pixels(shot, backend="fal"):
        return np.asarray(Image.open(contact_sheet([shot], [clip], tmp_path / "s.png", backend=backend)).convert("L")).astype(int)

    plain = pixels(SHOT)
    assert (plain != pixels(replace(SHOT, id="another-name"))).any()  # the shot id is written on the sheet
    assert (plain != pixels(replace(SHOT, model="veo3"))).any()
    assert (plain != pixels(replace(SHOT, seconds=8))).any()
    assert (plain != pixels(SHOT, backend="preview")).any()


def test_mismatched_lists_are_refused(tmp_path):
    with pytest.raises(ValueError):
        contact_sheet([SHOT], [], tmp_path / "x.png")


# --- frames grabbed as clips land ----------------------------------------------------------------


def test_a_frame_grabbed_as_the_clip_landed_is_the_one_drawn(tmp_path, monkeypatch):
    clip = solid_thirds(tmp_path / "c.mp4")
    frames = Frames()
    frames.grab(clip)
    assert np.asarray(frames.frame(clip))[..., 1].mean() > 200  # the middle frame: lime
    # the sheet draws the grabbed frame: nothing is decoded once the clips have landed
    monkeypatch.setattr("shotflow.assembly.contactsheet.middle_frame", lambda path: pytest.fail(f"{path} decoded again"))
    sheet = np.asarray(Image.open(contact_sheet([SHOT], [clip], tmp_path / "sheet.png", frames=frames)).convert("RGB"))
    assert lime(sheet).sum() > 100
    frames.close()


def test_a_clip_replaced_after_its_frame_was_grabbed_is_decoded_again(tmp_path):
    clip = solid_thirds(tmp_path / "c.mp4")
    frames = Frames()
    frames.grab(clip)
    frames.frame(clip)
    solid_thirds(tmp_path / "c.mp4", colours=("red", "blue", "red"), size="96x36")  # generated again: another file
    again = np.asarray(frames.frame(clip))
    assert again.shape[1] == 96 and again[..., 2].mean() > 200
    frames.close()


def test_grabbed_frames_are_kept_small_and_in_their_shape(tmp_path):
    clip = solid_thirds(tmp_path / "wide.mp4", size="1280x720")
    frames = Frames(max_side=320)
    frames.grab(clip)
    assert frames.frame(clip).size == (320, 180)
    assert frames.frame(tmp_path / "missing.mp4") is None  # a missing clip: no frame, no error
    frames.close()


# --- the takes view ------------------------------------------------------------------------------


def near(image, rgb, tolerance=60):
    return (np.abs(image.astype(int) - np.array(rgb)) < tolerance).all(axis=2)


def test_the_takes_view_has_a_row_per_shot_and_a_column_per_take_with_the_pick_marked(tmp_path):
    colours = {  # the middle colour of each take's clip
        ("wide", 1): ("lime", (0, 255, 0)),
        ("wide", 2): ("blue", (0, 0, 255)),
        ("wide", 3): ("red", (255, 0, 0)),
        ("tall", 1): ("magenta", (255, 0, 255)),
        ("pair", 1): ("cyan", (0, 255, 255)),
    }
    wide = [replace(SHOT, id="wide", take=k, takes=3) for k in (1, 2, 3)]
    tall = [replace(PORTRAIT, id="tall")]
    pair = [replace(SHOT, id="pair", take=k, takes=2, model="veo3") for k in (1, 2)]
    takes = [*wide, *tall, *pair]
    clips = []
    for t in takes:
        if (t.id, t.take) not in colours:
            clips.append(None)  # pair take 2: not generated
            continue
        size = "36x64" if t.id == "tall" else "64x36"
        clips.append(solid_thirds(tmp_path / f"{t.id}{t.take}.mp4", ("black", colours[t.id, t.take][0], "black"), size))
    sheet = takes_sheet(takes, clips, tmp_path / "film.takes.png", picked={"wide": 2, "tall": 1}, title="Film", thumb_width=192)
    image = np.asarray(Image.open(sheet).convert("RGB"))
    boxes = {k: box_of(image, near(image, rgb)) for k, (_, rgb) in colours.items()}
    # rows: one per shot, in order; a row's takes side by side, in take order
    assert boxes["wide", 1][1] == boxes["wide", 2][1] == boxes["wide", 3][1]
    assert boxes["wide", 1][0] < boxes["wide", 2][0] < boxes["wide", 3][0]
    assert boxes["wide", 1][1] + boxes["wide", 1][3] < boxes["tall", 1][1] < boxes["pair", 1][1]
    # columns: take k of every shot in column k, as many columns as the most takes
    assert boxes["wide", 1][0] == boxes["tall", 1][0] == boxes["pair", 1][0] == 8
    column = boxes["wide", 2][0] - boxes["wide", 1][0]
    assert boxes["wide", 3][0] - boxes["wide", 2][0] == column and image.shape[1] == 8 + 3 * column
    assert (boxes["tall", 1][2], boxes["tall", 1][3]) == pytest.approx(frame_box(9 / 16, 192), abs=2)  # its own shape
    # pair's take 2 has no clip: an empty box of its shot's shape in column 2
    empty = box_of(image, (image == CELL).all(axis=2) & (np.arange(image.shape[0])[:, None] >= boxes["pair", 1][1]))
    assert empty[0] == boxes["wide", 2][0] and empty[1] == boxes["pair", 1][1]
    # the picked takes are framed; the others are not
    x, y, w, h = boxes["wide", 2]
    assert tuple(image[y + h // 2, x - 2]) == PICKED and tuple(image[y - 2, x + w // 2]) == PICKED
    x, y, w, h = boxes["wide", 1]
    assert tuple(image[y + h // 2, x - 2]) == BACKGROUND
    assert tuple(image[boxes["pair", 1][1] + 5, boxes["pair", 1][0] - 2]) == BACKGROUND  # pair: none picked here
    assert take_lines(wide[1], "fal", True) == ("wide · take 2 · picked", "kling-v2 · 5 s", "$1.40 on fal")
    assert take_lines(pair[0], "preview", False) == ("pair · take 1", "veo3 · 5 s", "would cost $1.40 on fal")
    # each take's frame as its own picture, for whoever shows them apart (the review gates)
    written = take_frames(takes, clips, tmp_path / "frames", max_side=32)
    assert set(written) == set(colours) and written["wide", 3] == tmp_path / "frames" / "wide.take3.png"
    assert Image.open(written["wide", 3]).size == (32, 18)
    assert near(np.asarray(Image.open(written["wide", 3]).convert("RGB")), (255, 0, 0)).all()
