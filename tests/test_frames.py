"""Continuity's frames: a clip's exact last frame, stills from a file or an https URL (fetched once),
each kept within its data-URI limit, and a dependent shot resolved with them (shotflow.media.frames,
shotflow.generation.continuity)."""

from __future__ import annotations

import base64
import io
import json
import os
import ssl
import subprocess
import threading
from collections import Counter
from contextlib import contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from shotflow.errors import GenerationError, ShotflowError
from shotflow.generation import continuity
from shotflow.generation.retry import RetryLater
from shotflow.media import frames
from shotflow.media.ffmpeg import ffmpeg_exe
from shotflow.model import FRAME_REF, GeneratedClip, ShotPlan
from shotflow.store.clips import ClipStore
from shotflow.store.digest import file_sha256


def make_clip(path: Path, *, size: str = "160x90", seconds: float = 1, pattern: str = "testsrc2") -> Path:
    """A moving test pattern encoded with B-frames (x264's default preset): its last frame in
    display order is not the last one decoded, so only a full decode finds it."""
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"{pattern}=s={size}:r=24:d={seconds}",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    return path


def decoded(clip: Path) -> list[np.ndarray]:
    with av.open(str(clip)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def pixels(path: str | Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture
def clip(tmp_path) -> Path:
    return make_clip(tmp_path / "raw.mp4")


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


# --- the last frame ----------------------------------------------------------------------------


def test_the_last_frame_is_the_clips_last_decoded_frame_pixel_for_pixel(clip, cache):
    stored = frames.last_frame(clip, cache)
    every = decoded(clip)
    assert stored.path == cache / "frames" / f"{stored.sha256}.png" and file_sha256(stored.path) == stored.sha256
    assert np.array_equal(pixels(stored.path), every[-1])
    assert not np.array_equal(every[-2], every[-1])  # the pattern moves: one frame off would fail


def test_the_last_frame_is_remembered_by_the_clip_and_made_again_if_its_file_changed(clip, cache):
    first = frames.last_frame(clip, cache)
    (memo,) = (cache / "frames" / "clips").glob("*.json")
    assert json.loads(memo.read_text())["clip_sha256"] == file_sha256(clip)
    assert frames.last_frame(clip, cache) == first
    first.path.write_bytes(b"changed on disk")
    again = frames.last_frame(clip, cache)
    assert again == first and file_sha256(again.path) == first.sha256


def test_a_frame_too_big_for_its_data_uri_becomes_jpeg_then_is_scaled_down(tmp_path, cache):
    clip = make_clip(tmp_path / "big.mp4", size="320x180")
    png = frames.last_frame(clip, cache)
    png_uri = len(frames.data_uri(png.path))
    assert png_uri == frames.data_uri_length(png.path.stat().st_size, "png")

    jpeg = frames.last_frame(clip, cache, max_uri_bytes=png_uri - 1)
    assert jpeg.path.suffix == ".jpg" and len(frames.data_uri(jpeg.path)) < png_uri
    assert Image.open(jpeg.path).size == (320, 180)  # high-quality JPEG first: every pixel kept
    assert np.abs(pixels(jpeg.path).astype(int) - pixels(png.path).astype(int)).mean() < 12

    limit = len(frames.data_uri(jpeg.path)) // 3
    small = frames.last_frame(clip, cache, max_uri_bytes=limit)
    width, height = Image.open(small.path).size
    assert len(frames.data_uri(small.path)) <= limit and width < 320 and width / height == pytest.approx(16 / 9, rel=0.03)

    with pytest.raises(frames.FrameError, match="cannot be made small enough"):
        frames.last_frame(clip, cache, max_uri_bytes=200)


def test_a_file_that_is_not_a_clip_is_a_clear_error(tmp_path, cache):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"<html>not a video</html>")
    with pytest.raises(frames.FrameError, match=str(bad)):
        frames.last_frame(bad, cache)


def test_a_data_uri_decodes_to_the_stored_bytes(clip, cache):
    stored = frames.last_frame(clip, cache)
    head, data = frames.data_uri(stored.path).split(",", 1)
    assert head == "data:image/png;base64" and base64.b64decode(data) == stored.path.read_bytes()


# --- stills from a file ------------------------------------------------------------------------


def write_image(path: Path, fmt: str, size=(64, 48), colour=(200, 30, 40)) -> Path:
    Image.new("RGB", size, colour).save(path, fmt)
    return path


def test_a_png_or_jpeg_still_is_sent_as_it_is(tmp_path, cache):
    for name, fmt in (("a.png", "PNG"), ("b.jpeg", "JPEG")):
        source = write_image(tmp_path / name, fmt)
        stored = frames.still(str(source), cache)
        assert stored.sha256 == file_sha256(source) and stored.path.read_bytes() == source.read_bytes()
        assert stored.path.parent == cache / "frames"
    assert frames.still(str(source), cache).path.suffix == ".jpg"


def test_another_format_or_a_still_too_big_is_re_encoded(tmp_path, cache):
    bmp = frames.still(str(write_image(tmp_path / "c.bmp", "BMP")), cache)
    assert bmp.path.suffix == ".png" and pixels(bmp.path)[0, 0].tolist() == [200, 30, 40]
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 255, (300, 400, 3), dtype=np.uint8))
    noise.save(tmp_path / "noise.png")
    small = frames.still(str(tmp_path / "noise.png"), cache, max_uri_bytes=60_000)
    assert small.path.suffix == ".jpg" and len(frames.data_uri(small.path)) <= 60_000


def test_a_still_that_is_not_an_image_names_its_path(tmp_path, cache):
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(frames.FrameError, match="notes.png is not an image"):
        frames.still(str(text), cache)
    with pytest.raises(frames.FrameError, match="cannot read the image .*missing.png"):
        frames.still(str(tmp_path / "missing.png"), cache)


# --- stills from an https URL --------------------------------------------------------------------


class StillServer:
    """A small HTTPS server for stills: /still.png, /missing (404), /busy (503), /big, /plain (a
    redirect to http://). `gets` counts requests per path."""

    def __init__(self, tmp_path: Path):
        import trustme

        ca = trustme.CA()
        self.bundle = tmp_path / "ca-bundle.pem"
        # the fake fal server's CA stays trusted beside ours (it is the process's SSL_CERT_FILE)
        previous = Path(os.environ["SSL_CERT_FILE"]).read_text() if os.environ.get("SSL_CERT_FILE") else ""
        self.bundle.write_text(previous + ca.cert_pem.bytes().decode())
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        self.png = io.BytesIO()
        Image.new("RGB", (48, 32), (10, 120, 230)).save(self.png, "PNG")
        self.gets: Counter = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                server.gets[path] += 1
                if path == "/still.png":
                    return self._send(200, server.png.getvalue())
                if path == "/big":
                    return self._send(200, b"\0" * 5000)
                if path == "/plain":
                    self.send_response(302)
                    self.send_header("Location", "http://127.0.0.1:1/still.png")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                return self._send(503 if path == "/busy" else 404, b"no")

            def _send(self, code, data):
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.base = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


@contextmanager
def still_server(tmp_path, monkeypatch):
    server = StillServer(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(server.bundle))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def served(tmp_path, monkeypatch):
    with still_server(tmp_path, monkeypatch) as server:
        yield server


def test_a_url_still_is_fetched_once_and_found_by_its_url_later(served, cache):
    url = f"{served.base}/still.png?sig=secret"
    first = frames.still(url, cache, timeout=10.0)
    assert first.path.read_bytes() == served.png.getvalue() and first.sha256 == file_sha256(first.path)
    again = frames.still(url, cache, timeout=10.0)
    assert again == first and served.gets["/still.png"] == 1
    (memo,) = (cache / "frames" / "urls").glob("*.json")  # named by the URL's hash: the query tells signed URLs apart
    assert json.loads(memo.read_text())["url"] == f"{served.base}/still.png?…" and "secret" not in memo.read_text()
    first.path.unlink()  # the stored copy is gone: fetched again, same bytes, same hash
    assert frames.still(url, cache, timeout=10.0) == first and served.gets["/still.png"] == 2


@pytest.mark.parametrize(
    "path, transient, says",
    [("/missing", False, "answered 404"), ("/busy", True, "answered 503"), ("/big", False, "over the 1000 bytes"),
     ("/plain", False, "not https")],
)  # fmt: skip
def test_a_url_still_that_cannot_be_fetched_is_a_clear_error(served, cache, path, transient, says):
    with pytest.raises(frames.FrameError, match=says) as caught:
        frames.still(f"{served.base}{path}?sig=secret", cache, max_bytes=1000, timeout=10.0)
    assert caught.value.transient is transient
    assert path in str(caught.value) and "secret" not in str(caught.value)
    assert not any((cache / "frames" / "urls").glob("*.json"))  # nothing remembered: a later run fetches again


def test_only_https_urls_are_fetched(cache):
    with pytest.raises(frames.FrameError, match="only https"):
        frames.still("http://127.0.0.1:1/still.png", cache, timeout=10.0)


# --- resolving a dependent shot ----------------------------------------------------------------

SHOT = ShotPlan(
    id="arrival",
    index=1,
    line=4,
    model="kling",
    endpoint="fal-ai/kling-video/v2/master/image-to-video",
    body={"prompt": "the car stops"},
    seconds=5,
    aspect_ratio="16:9",
    resolution="720p",
    width=160,
    height=90,
    fps=24,
    audio=False,
    cost=None,
    source="approach",
    image_field="image_url",
)


def upstream(clip: Path) -> GeneratedClip:
    return GeneratedClip("approach", clip, "k" * 64, "fal", cache_hit=False)


def test_a_dependent_shot_has_no_key_until_resolved_then_its_key_holds_the_frame(tmp_path, clip, cache):
    with pytest.raises(ShotflowError, match="first frame"):
        ClipStore.key("fal", SHOT)
    shot = continuity.resolve(SHOT, upstream(clip), cache)
    (frame,) = shot.frames
    assert shot.body == {"prompt": "the car stops", "image_url": FRAME_REF + frame.sha256}
    assert frame.origin == "last frame of approach" and frame.sha256 == frames.last_frame(clip, cache).sha256
    assert continuity.resolve(shot, None, cache) is shot  # resolved once
    other = continuity.resolve(SHOT, upstream(make_clip(tmp_path / "other.mp4", seconds=2)), cache)
    assert ClipStore.key("fal", other) != ClipStore.key("fal", shot)  # another upstream clip, another key


def test_the_request_body_is_the_only_place_with_the_data(clip, cache):
    shot = continuity.resolve(SHOT, upstream(clip), cache)
    body = continuity.request_body(shot)
    assert body["image_url"] == frames.data_uri(shot.frames[0].path) and "data:" not in json.dumps(shot.body)
    with pytest.raises(GenerationError, match="resolve the shot first"):
        continuity.request_body(SHOT)
    Path(shot.frames[0].path).write_bytes(b"changed")
    with pytest.raises(GenerationError, match="missing or changed") as caught:
        continuity.request_body(shot)
    assert caught.value.shot == "arrival" and not caught.value.transient


def test_a_source_without_a_clip_fails_the_shot_naming_its_source(cache):
    with pytest.raises(GenerationError, match="last frame of shot 'approach', which has no clip") as caught:
        continuity.resolve(SHOT, None, cache)
    assert caught.value.shot == "arrival" and not caught.value.transient


def test_a_still_shot_is_resolved_with_its_first_and_last_frames(tmp_path, cache):
    start, end = write_image(tmp_path / "start.png", "PNG"), write_image(tmp_path / "end.png", "PNG", colour=(1, 2, 3))
    shot = replace(SHOT, source=None, image=str(start), end_image=str(end), end_field="tail_image_url")
    resolved = continuity.resolve(shot, None, cache)
    assert [(f.field, f.sha256, f.origin) for f in resolved.frames] == [
        ("image_url", file_sha256(start), str(start)),
        ("tail_image_url", file_sha256(end), str(end)),
    ]
    assert continuity.frame_limit(shot) == frames.DEFAULT_MAX_URI_BYTES // 2  # two frames share the request


def test_a_url_stills_origin_leaves_out_its_query(served, cache):
    shot = continuity.resolve(replace(SHOT, source=None, image=f"{served.base}/still.png?sig=secret"), None, cache)
    assert shot.frames[0].origin == f"{served.base}/still.png?…"


def test_a_still_url_that_fails_fails_the_shot_naming_it_and_costs_nothing(served, cache):
    missing = replace(SHOT, source=None, image=f"{served.base}/missing")
    with pytest.raises(GenerationError, match=f"shot 'arrival': could not fetch the image at {served.base}/missing") as caught:
        continuity.resolve(missing, None, cache)
    assert not caught.value.transient and "nothing was sent" in str(caught.value)
    with pytest.raises(RetryLater):  # a 503 may pass: the task tries the shot again
        continuity.resolve(replace(missing, image=f"{served.base}/busy"), None, cache)
