"""Frames sent as a shot's first (or last) frame: the exact last frame of a clip, and stills from a
file or an https URL, kept by content under `<cache_dir>/frames/<sha256>.<ext>`.

- `last_frame(clip, cache_dir)`: the clip's last decoded frame (every frame is decoded: no seek
  guess), as PNG: the model's own pixels, from the RAW clip in the clip store, never the
  normalised copy. The result is remembered by the clip's sha256 (`frames/clips/`), so a later
  run resolves the same shot without decoding the clip again.
- `still(source, cache_dir)`: a local file (hashed and copied into the store) or an https URL
  (fetched once, with a size bound and a timeout, and remembered by its URL in `frames/urls/`: a
  later run finds it without fetching it again, so the frame, and the key made from its hash,
  stay exactly what they were). PNG, JPEG and WebP are sent as they are; other formats are
  re-encoded.
- `data_uri(path)`: the frame as `data:image/...;base64,...`, what fal receives. Only
  `shotflow.generation.continuity.request_body` calls it, at the submit.

Size: a frame is sent inside the request's JSON as a data URI, and fal's request body has a
limit. fal documents that file inputs take data URIs, not how large they may be, so the data URI
is kept within `max_uri_bytes`: the endpoint's `ImageEndpoint.max_image_bytes` when the catalog
gives one, else `DEFAULT_MAX_URI_BYTES` (8 MiB, a request body under fal's common 10 MB with room
for the rest of the JSON), shared by the frames of one request. A frame too large is encoded as
high-quality JPEG (quality 95, no chroma subsampling), and scaled down (aspect kept) only if that
is still too large. Every file is written with `shotflow.store.atomic`.

PyAV and Pillow are imported when a frame is first made: `shotflow run` sends its first requests
before they load.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import math
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from shotflow.errors import MediaError
from shotflow.store.atomic import write_bytes_atomic
from shotflow.store.digest import file_sha256
from shotflow.store.locks import flocked

if TYPE_CHECKING:
    from PIL import Image

DEFAULT_MAX_URI_BYTES = 8 * 1024 * 1024
MAX_STILL_BYTES = 64 * 1024 * 1024  # the largest still read from disk or fetched
JPEG_QUALITY = 95
MIN_SIDE = 16  # a frame is never scaled below this many pixels on its shorter side
# the formats sent as they are: Pillow's name -> (extension, MIME type)
SENT_AS_IS = {"PNG": ("png", "image/png"), "JPEG": ("jpg", "image/jpeg"), "WEBP": ("webp", "image/webp")}
MIME = {ext: mime for ext, mime in SENT_AS_IS.values()}


class FrameError(MediaError):
    """A frame that cannot be had: `transient` when trying again may help (a network failure, a
    server error), not when the file or answer is wrong (not an image, too large, a 404)."""

    def __init__(self, message: str, *, transient: bool = False):
        self.transient = transient
        super().__init__(message)

    def __reduce__(self):
        return (_frame_error, (str(self), self.transient))


def _frame_error(message: str, transient: bool) -> FrameError:
    return FrameError(message, transient=transient)


@dataclass(frozen=True)
class StoredFrame:
    """A frame in the store: its file (named by its sha256) and that hash."""

    path: Path
    sha256: str


def frames_dir(cache_dir: str | os.PathLike) -> Path:
    return Path(cache_dir) / "frames"


def data_uri_length(size: int, ext: str) -> int:
    """Characters of the data URI of a `size`-byte file with extension `ext`."""
    return len(f"data:{MIME[ext]};base64,") + 4 * math.ceil(size / 3)


def data_uri(path: str | os.PathLike) -> str:
    """The stored frame as a base64 data URI (its MIME type from its extension)."""
    path = Path(path)
    mime = MIME.get(path.suffix.lstrip(".").lower())
    if mime is None:
        raise FrameError(f"{path}: not a stored frame (PNG, JPEG or WebP)")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


# --- the last frame of a clip --------------------------------------------------------------------


def last_frame(
    clip: str | os.PathLike, cache_dir: str | os.PathLike, *, max_uri_bytes: int = DEFAULT_MAX_URI_BYTES
) -> StoredFrame:
    """The exact last frame of `clip` (every frame decoded), stored as PNG (or, if its data URI
    would exceed `max_uri_bytes`, as JPEG, scaled down if need be)."""
    clip = Path(clip)
    root = frames_dir(cache_dir)
    try:
        clip_sha = file_sha256(clip)
    except OSError as exc:
        raise FrameError(f"{clip}: cannot read the clip to take its last frame ({exc.strerror or exc})") from None
    memo = root / "clips" / f"{clip_sha}.{max_uri_bytes}.json"
    with _locked(root, f"clip-{clip_sha}"):
        found = _remembered(root, memo)
        if found is not None:
            return found
        data, ext = fit(decode_last(clip), max_uri_bytes, what=f"the last frame of {clip}")
        stored = _store(root, data, ext)
        _remember(memo, {"clip_sha256": clip_sha, "sha256": stored.sha256, "ext": ext})
        return stored


def decode_last(clip: str | os.PathLike) -> Image.Image:
    """The last frame a full decode of `clip`'s first video stream yields, as an RGB image."""
    import av

    last = None
    try:
        with av.open(str(clip)) as container:
            if not container.streams.video:
                raise FrameError(f"{clip}: no video stream to take a frame from")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                last = frame
    except (av.error.FFmpegError, OSError) as exc:
        raise FrameError(f"{clip}: cannot decode its frames ({exc})") from None
    if last is None:
        raise FrameError(f"{clip}: no video frames")
    return last.to_image()


# --- stills ----------------------------------------------------------------------------------


def still(
    source: str,
    cache_dir: str | os.PathLike,
    *,
    max_uri_bytes: int = DEFAULT_MAX_URI_BYTES,
    timeout: float | None = None,
    max_bytes: int = MAX_STILL_BYTES,
) -> StoredFrame:
    """The still `source` (a local path, or an https URL fetched once) in the frame store, as it
    will be sent: the file itself when it is PNG, JPEG or WebP and small enough, else re-encoded.
    `timeout`: the seconds a URL's fetch may stall, which the caller gives for a URL (the setting
    `download_timeout`)."""
    root = frames_dir(cache_dir)
    if is_url(source):
        if timeout is None:
            raise TypeError(f"still({show_url(source)!r}): a URL is fetched within a timeout, and none was given")
        original = _fetched(source, root, timeout=timeout, max_bytes=max_bytes)
        data, what = original.path.read_bytes(), f"the image at {show_url(source)}"
    else:
        data, what = _read_local(Path(source), max_bytes), f"the image {source}"
    image, ext = _open_image(data, what)
    if ext is not None and data_uri_length(len(data), ext) <= max_uri_bytes:
        return _store(root, data, ext)
    from PIL import ImageOps

    return _store(root, *fit(ImageOps.exif_transpose(image), max_uri_bytes, what=what))


def is_url(source: str) -> bool:
    return "://" in source


def show_url(url: str) -> str:
    """A URL fit for a message: its query (a signed URL's credentials) left out."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?…" if parts.query else "")


def _read_local(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise FrameError(f"the image {path} is {size} bytes, over the {max_bytes} bytes a still may have")
        return path.read_bytes()
    except OSError as exc:
        raise FrameError(f"cannot read the image {path} ({exc.strerror or exc})") from None


def _fetched(url: str, root: Path, *, timeout: float, max_bytes: int) -> StoredFrame:
    """The still at `url` as first fetched (remembered by its URL), fetching it only the first time."""
    if urlsplit(url).scheme != "https":
        raise FrameError(f"the image {show_url(url)}: only https URLs are fetched")
    name = hashlib.sha256(url.encode()).hexdigest()
    memo = root / "urls" / f"{name}.json"
    with _locked(root, f"url-{name}"):
        found = _remembered(root, memo)
        if found is not None:
            return found
        from shotflow.media.fetch import fetch_bytes  # httpx: only when a URL is fetched

        shown = show_url(url)  # in messages and in the memo (named by the URL's hash): a signed URL's query left out
        data = fetch_bytes(url, timeout=timeout, max_bytes=max_bytes, shown=shown)
        _, ext = _open_image(data, f"the image at {shown}")
        stored = _store(root, data, ext or "img")
        fetched_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        note = {"url": shown, "sha256": stored.sha256, "ext": ext or "img", "bytes": len(data), "fetched_at": fetched_at}
        _remember(memo, note)
        return stored


def _open_image(data: bytes, what: str) -> tuple[Image.Image, str | None]:
    """The decoded image, and the extension it is sent under as it is (None: it must be re-encoded)."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise FrameError(f"{what} is not an image Pillow can read ({exc})") from None
    sent = SENT_AS_IS.get(image.format or "")
    return image, sent[0] if sent else None


# --- encoding within the limit ---------------------------------------------------------------


def fit(image: Image.Image, max_uri_bytes: int, *, what: str) -> tuple[bytes, str]:
    """`image` encoded so that its data URI stays within `max_uri_bytes`: PNG, else JPEG at quality
    95, else JPEG scaled down (aspect kept). Returns (bytes, extension)."""
    from PIL import Image

    image = image.convert("RGBA" if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info else "RGB")
    data = _encode(image, "PNG")
    if data_uri_length(len(data), "png") <= max_uri_bytes:
        return data, "png"
    flat = image.convert("RGB")
    scaled = flat
    while True:
        data = _encode(scaled, "JPEG")
        length = data_uri_length(len(data), "jpg")
        if length <= max_uri_bytes:
            return data, "jpg"
        factor = min(0.9, math.sqrt(max_uri_bytes / length) * 0.95)
        width, height = round(scaled.width * factor), round(scaled.height * factor)
        if min(width, height) < MIN_SIDE:
            raise FrameError(f"{what} cannot be made small enough for a {max_uri_bytes}-byte data URI")
        scaled = flat.resize((width, height), Image.Resampling.LANCZOS)


def _encode(image: Image.Image, kind: str) -> bytes:
    out = io.BytesIO()
    if kind == "PNG":
        image.save(out, "PNG")
    else:
        image.save(out, "JPEG", quality=JPEG_QUALITY, subsampling=0)
    return out.getvalue()


# --- the store -------------------------------------------------------------------------------


def _store(root: Path, data: bytes, ext: str) -> StoredFrame:
    """Keep `data` as `<root>/<sha256>.<ext>` (written once: the name is its content)."""
    sha = hashlib.sha256(data).hexdigest()
    path = root / f"{sha}.{ext}"
    if not (path.is_file() and path.stat().st_size == len(data) and file_sha256(path) == sha):
        root.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, data, mode=0o644)
    return StoredFrame(path, sha)


def _remembered(root: Path, memo: Path) -> StoredFrame | None:
    """The frame a memo file names, if it is still there and unchanged."""
    try:
        note = json.loads(memo.read_text(encoding="utf-8"))
        path = root / f"{note['sha256']}.{note['ext']}"
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if path.is_file() and file_sha256(path) == note["sha256"]:
        return StoredFrame(path, note["sha256"])
    return None


def _remember(memo: Path, note: dict) -> None:
    memo.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(memo, json.dumps(note, indent=2, sort_keys=True).encode() + b"\n", mode=0o644)


def _locked(root: Path, name: str) -> contextlib.AbstractContextManager[None]:
    """One maker of a frame at a time, across threads and processes (a clip decoded once, a URL
    fetched once)."""
    return flocked(root / ".locks" / f"{name}.lock")
