"""Paths a storyboard names: the one rule for where an input is read (a soundtrack, a still, or a
still's https URL) and an output written."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit


def input_path(text: str, storyboard: str) -> Path:
    """A file a storyboard names as an input (the soundtrack, a still): relative to the storyboard's
    folder; an inline storyboard (no file) has none, so the folder the run starts in."""
    path = Path(text)
    if path.is_absolute():
        return path
    base = Path.cwd() if storyboard.startswith("<") else Path(storyboard).resolve().parent
    return base / path


def output_path(text: str, cwd: str | Path | None = None) -> Path:
    """Where a run writes (`output.path`, `--out`): relative to the folder the run starts in
    (`cwd`, default the working directory: a deployment's, for scheduled and UI runs), resolved.
    An output that is a URL of the shared store (s3://...) is not a path: the preflight renders
    it in the cache and the run publishes it there (shotflow.store.publish)."""
    path = Path(text)
    path = path if path.is_absolute() else Path(cwd if cwd is not None else Path.cwd()) / path
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: the preflight says what is wrong with it
        return Path(os.path.abspath(path))


def still_source(text: str, storyboard: str) -> tuple[str, str | None]:
    """A still a storyboard names (`image:`, `end_image:`): an https URL as written (fetched when
    the shot runs), else a file relative to the storyboard's folder (as `input_path`), resolved,
    that Pillow reads (PNG, JPEG and WebP are sent as they are, others re-encoded); and what is
    wrong with it (None: nothing)."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text) or text[:5].lower() == "data:":
        url = urlsplit(text)
        # as messages show it: a signed URL's query (its credentials) left out
        shown = f"{url.scheme}:{'//' + url.netloc if '://' in text else ''}{url.path[:40]}" + ("?..." if url.query else "")
        if url.scheme != "https":
            return (
                text,
                f"'{shown}': give a file (relative to the storyboard's folder) or an https URL ({url.scheme}: is not fetched)",
            )
        if not url.hostname:
            return text, f"'{shown}' names no host"
        return text, None
    path = input_path(text, storyboard).resolve()
    if not path.is_file():
        return str(path), f"no such file {path}"
    from PIL import Image, UnidentifiedImageError  # only a storyboard with a still pays for this import

    try:
        with Image.open(path):
            pass
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        return str(path), f"{path} is not a picture (Pillow cannot read it)"
    return str(path), None
