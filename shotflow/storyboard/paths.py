"""Paths a storyboard names: the one rule for where an input is read and an output written."""

from __future__ import annotations

import os
from pathlib import Path

def input_path(text: str, storyboard: str) -> Path:
    """A file a storyboard names as an input (the soundtrack): relative to the storyboard's
    folder; an inline storyboard (no file) has none, so the folder the run starts in."""
    path = Path(text)
    if path.is_absolute():
        return path
    base = Path.cwd() if storyboard.startswith("<") else Path(storyboard).resolve().parent
    return base / path


def output_path(text: str, cwd: str | Path | None = None) -> Path:
    """Where a run writes (`output.path`, `--out`): relative to the folder the run starts in
    (`cwd`, default the working directory: a deployment's, for scheduled and UI runs), resolved."""
    path = Path(text)
    path = path if path.is_absolute() else Path(cwd if cwd is not None else Path.cwd()) / path
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: the preflight says what is wrong with it
        return Path(os.path.abspath(path))
