"""The offline backend: an animatic clip per shot, of the exact shape the model would deliver.

Each clip shows the shot id, the model, the length and the wrapped prompt over a slowly moving
gradient in a colour of its own, with a bar filling up as the shot plays; a model that makes
sound (Veo 3 with generate_audio) gets a quiet tone. A shot that continues another (continuity)
opens on its first frame (the upstream animatic's last frame, or its still), which fades into
the animatic, and ends on its `end_image` if it has one: the cut shows the continuity. Its key,
like fal's, holds its frames' hashes (they are in its resolved body). Size, frame rate and length are the
shot's, so the rest of the pipeline (normalising, joining, the contact sheet) runs as it would
on paid clips. Preview clips are stored under their own key, never confused with fal clips.

The text is drawn with Pillow's embedded FreeType font into a PNG that ffmpeg overlays: no
system font is assumed.
"""

from __future__ import annotations

import colorsys
import hashlib
import os
import tempfile
import threading
from pathlib import Path

import ffmpeg as ff
from PIL import Image, ImageDraw, ImageFont

from shotflow.errors import GenerationError, MediaError
from shotflow.media import ffmpeg as runner
from shotflow.media.probe import verify
from shotflow.model import GeneratedClip, OnEvent, ShotEvent, ShotPlan, ignore_events
from shotflow.store.clips import ClipStore

NAME = "preview"
TONE_HZ = 220
TONE_VOLUME = 0.05
FRAME_FADE = 1.0  # seconds a dependent shot's first frame takes to fade into its animatic


_GUARD = threading.Lock()
_LOCKS: dict[str, threading.Lock] = {}


class PreviewBackend:
    name = NAME

    def __init__(self, store: ClipStore):
        self.store = store

    def _lock(self, key: str) -> threading.Lock:
        # one lock per clip in this process: every task builds its own backend, and two shots
        # with the same body must draw the clip once
        with _GUARD:
            return _LOCKS.setdefault(key, threading.Lock())

    def generate(self, shot: ShotPlan, *, force: bool = False, on_event: OnEvent = ignore_events) -> GeneratedClip:
        if not shot.resolved:
            raise GenerationError(shot.label, "its first frame does not exist yet (resolve the shot first)", transient=False)
        key = ClipStore.key(NAME, shot)
        # two shots with the same body share a clip: render it once
        with self._lock(key):
            found = None if force else self.store.find(key)
            if found is not None:
                on_event(ShotEvent(shot.label, "cached", "preview clip from the clip store"))
                return GeneratedClip(shot.id, found, key, NAME, cache_hit=True, frames=shot.frames, take=shot.take)
            on_event(ShotEvent(shot.label, "running", f"drawing a {shot.seconds} s {shot.width}x{shot.height} animatic"))
            tmp = self.store.temp_path(key).with_suffix(f".{os.urandom(4).hex()}.part")
            try:
                render_preview(shot, tmp)
                verify(tmp, expected_seconds=shot.seconds, tolerance=1 / shot.fps)
                path = self.store.put(key, tmp, keep_previous=False).path  # an animatic costs nothing to draw again
            except MediaError as exc:
                raise GenerationError(shot.label, f"preview clip came out wrong: {exc}", transient=False) from None
            finally:
                tmp.unlink(missing_ok=True)
            return GeneratedClip(shot.id, path, key, NAME, cache_hit=False, frames=shot.frames, take=shot.take)

    def close(self) -> None:
        return None  # nothing held between shots


def render_preview(shot: ShotPlan, dst: str | os.PathLike, *, timeout: float | None = None) -> Path:
    """Draw the shot's animatic into `dst` (mp4): shot.width x shot.height, shot.fps, shot.seconds."""
    dst = Path(dst)
    w, h, fps, seconds = shot.width, shot.height, shot.fps, shot.seconds
    n = round(seconds * fps)
    light, dark = shot_colours(shot.id)
    with tempfile.TemporaryDirectory(prefix="shotflow-preview-") as tmpdir:
        card = Path(tmpdir) / "card.png"
        draw_card(shot).save(card)
        background = ff.input(
            f"gradients=s={max(w // 4, 2)}x{max(h // 4, 2)}:r={fps}:d={seconds}:speed=0.04"
            f":c0=0x{light}:c1=0x{dark}:n=2:seed={int(hashlib.sha256(shot.id.encode()).hexdigest()[:6], 16)}",
            f="lavfi",
        ).video.filter("scale", w, h)
        text = ff.input(str(card), loop=1, framerate=fps, t=seconds).video
        bar_height = max(2, h // 90)
        bar = ff.input(f"color=c=white:s={w}x{bar_height}:r={fps}:d={seconds}", f="lavfi").video
        first, last = frame_file(shot, shot.image_field), frame_file(shot, shot.end_field)
        fade = min(FRAME_FADE, seconds / 2)
        if first is not None:  # opens on its first frame, which fades into the animatic
            background = background.overlay(_still(first, shot).filter("fade", t="out", st=0, d=fade, alpha=1))
            text = text.filter("fade", t="in", st=0, d=fade, alpha=1)
        video = background.overlay(text).overlay(bar, x=f"-w+w*t/{seconds}", y="H-h")
        if last is not None:  # ... and ends on its last frame
            video = video.overlay(
                _still(last, shot).filter("fade", t="in", st=max(0.0, seconds - fade - 1 / fps), d=fade, alpha=1)
            )
        video = video.filter("format", "yuv420p").filter("trim", end_frame=n)
        streams = [video]
        kwargs = {
            "c:v": "libx264",
            "preset": "ultrafast",
            "crf": 28,
            "r": fps,
            "frames:v": n,
            "f": "mp4",
            "movflags": "+faststart",
        }
        if shot.audio:
            tone = ff.input(f"sine=f={TONE_HZ}:r=48000:d={seconds}", f="lavfi").audio
            streams.append(tone.filter("volume", TONE_VOLUME).filter("aformat", channel_layouts="stereo"))
            kwargs.update({"c:a": "aac", "b:a": "96k", "ar": 48000, "ac": 2})
        runner.run(
            ff.output(*streams, str(dst), **kwargs),
            what=f"drawing the preview of shot '{shot.label}'",
            timeout=timeout or 60 + 10 * seconds,
            error=MediaError,
        )
    return dst


def frame_file(shot: ShotPlan, field: str | None) -> str | None:
    """The stored file of the shot's frame sent in body field `field`, if it has one."""
    return next((f.path for f in shot.frames if field and f.field == field), None)


def _still(path: str, shot: ShotPlan):
    """A frame as a video stream of the shot's size (fitted, black bars) and length, with alpha."""
    w, h = shot.width, shot.height
    return (
        ff.input(path, loop=1, framerate=shot.fps, t=shot.seconds)
        .video.filter("scale", w, h, force_original_aspect_ratio="decrease")
        .filter("pad", w, h, "(ow-iw)/2", "(oh-ih)/2", color="black")
        .filter("setsar", 1)
        .filter("format", "rgba")
    )


def shot_colours(shot_id: str) -> tuple[str, str]:
    """A light and a dark tone of one hue per shot id, as hex RGB: neighbouring shots look different."""
    hue = int(hashlib.sha256(shot_id.encode()).hexdigest()[:4], 16) / 0xFFFF
    light = colorsys.hsv_to_rgb(hue, 0.55, 0.62)
    dark = colorsys.hsv_to_rgb(hue, 0.7, 0.22)
    return tuple("".join(f"{round(c * 255):02x}" for c in rgb) for rgb in (light, dark))  # type: ignore[return-value]


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)  # Pillow's embedded scalable font: no system font needed


def wrap(text: str, font, width: float) -> list[str]:
    """Greedy word wrap by measured width; a word longer than a line is cut."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if font.getlength(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            while font.getlength(word) > width and len(word) > 1:
                cut = max(1, int(len(word) * width / font.getlength(word)))
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    return lines


def draw_card(shot: ShotPlan) -> Image.Image:
    """The text layer: a translucent panel with the shot id, what would render it, and the prompt."""
    w, h = shot.width, shot.height
    base = min(w, h)
    margin = max(4, base // 20)
    title, meta, body = _font(max(8, base // 9)), _font(max(6, base // 20)), _font(max(6, base // 17))
    image = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, w, h), fill=(0, 0, 0, 90))
    y = margin
    for line in wrap(shot.label, title, w - 2 * margin)[:2]:
        draw.text((margin, y), line, font=title, fill=(255, 255, 255, 255))
        y += _line_height(title)
    y += _line_height(title) * 0.2
    details = f"{shot.model} · {shot.seconds} s · {w}x{h} @ {shot.fps} fps" + (" · audio" if shot.audio else "")
    details += f" · continues {shot.source}" if shot.source else (" · from a still" if shot.image else "")
    for line in wrap(details, meta, w - 2 * margin):
        draw.text((margin, y), line, font=meta, fill=(255, 255, 255, 210))
        y += _line_height(meta)
    y += _line_height(meta) * 0.6
    bottom = h - margin - _line_height(meta) * 1.5
    lines = wrap(str(shot.body.get("prompt", "")), body, w - 2 * margin)
    fits = max(0, int((bottom - y) // _line_height(body)))
    if len(lines) > fits:
        lines = lines[:fits]
        if lines:
            lines[-1] = lines[-1].rstrip(" .,") + " …"
    for line in lines:
        draw.text((margin, y), line, font=body, fill=(255, 255, 255, 240))
        y += _line_height(body)
    draw.text((margin, h - margin - _line_height(meta)), "PREVIEW · not generated", font=meta, fill=(255, 220, 120, 230))
    return image


def _line_height(font) -> float:
    top, bottom = font.getbbox("Ag")[1::2]
    return (bottom - top) * 1.35
