"""The contact sheet: one labelled frame per shot, from the middle of its clip."""

from __future__ import annotations

import subprocess
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from shotflow.contactsheet import BACKGROUND, CELL, contact_sheet, middle_frame
from shotflow.ffmpeg import ffmpeg_exe
from shotflow.plan import ShotPlan

SHOT = ShotPlan("opening", 0, 2, "kling-v2", "fal-ai/kling", {"prompt": "p"}, 1, "16:9", "720p", 64, 36, 25, False, None)


def solid_thirds(path, colours=("red", "lime", "blue"), size="64x36"):
    """A 0.9 s clip: one colour per third, so the middle frame is the second colour."""
    inputs = []
    for c in colours:
        inputs += ["-f", "lavfi", "-i", f"color=c={c}:s={size}:r=25:d=0.3"]
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *inputs,
         "-filter_complex", "concat=n=3:v=1:a=0", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
        check=True, timeout=60,
    )
    return path


def test_the_frame_is_taken_from_the_middle(tmp_path):
    frame = np.asarray(middle_frame(solid_thirds(tmp_path / "c.mp4")))
    assert frame[..., 1].mean() > 200 and frame[..., 0].mean() < 60  # lime, not red or blue


def test_sheet_has_a_cell_per_shot_with_its_frame(tmp_path):
    clips = [solid_thirds(tmp_path / "a.mp4"), solid_thirds(tmp_path / "b.mp4", ("black", "blue", "black"), "36x64"), None]
    shots = [SHOT, replace(SHOT, id="portrait", width=36, height=64), replace(SHOT, id="lost")]
    sheet = contact_sheet(shots, clips, tmp_path / "sheets" / "contact.png", title="Demo", columns=3, thumb_width=192)
    image = np.asarray(Image.open(sheet).convert("RGB"))
    assert image.shape[1] == 3 * 192 + 4 * 8  # three columns of 192 px with 8 px gutters
    cells = image[image.shape[0] // 2 - 20 : image.shape[0] // 2]  # a band through the thumbnails
    first, second, third = (cells[:, 8 + i * 200 : 8 + i * 200 + 192] for i in range(3))
    assert first[..., 1].mean() > 200 and first[..., 0].mean() < 60  # lime, scaled up to fill the cell
    assert second[:, 96, 2].mean() > 200  # the portrait clip's blue middle ...
    assert {tuple(px) for px in second[:, :10].reshape(-1, 3)} == {CELL}  # ... with empty bars at its sides
    assert (third[..., 1] < 200).all() and (third[..., 2] < 200).all()  # no picture where the clip is missing
    assert set(map(tuple, image[:6, :6].reshape(-1, 3))) == {BACKGROUND}
    assert not list(sheet.parent.glob(".*part"))


def test_labels_are_drawn(tmp_path):
    clip = solid_thirds(tmp_path / "a.mp4")
    plain = np.asarray(Image.open(contact_sheet([SHOT], [clip], tmp_path / "1.png")).convert("L")).astype(int)
    other = np.asarray(Image.open(contact_sheet([replace(SHOT, id="another-name")], [clip], tmp_path / "2.png")).convert("L")).astype(int)
    assert plain.shape == other.shape and (plain != other).any()  # the shot id is written on the sheet


def test_mismatched_lists_are_refused(tmp_path):
    with pytest.raises(ValueError):
        contact_sheet([SHOT], [], tmp_path / "x.png")
