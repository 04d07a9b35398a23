"""`shotflow new NAME`: a commented starter storyboard that validates and renders as written.

The file teaches the format by example (every section, with what it accepts) and opens with
the `yaml-language-server` line that gives editors completion from the storyboard's JSON Schema.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from shotflow.errors import ShotflowError

# the committed schema of a source checkout (`shotflow schema -o storyboard.schema.json` writes it)
REPO_SCHEMA = Path(__file__).resolve().parents[2] / "storyboard.schema.json"

TEMPLATE = """\
@SCHEMA_LINE@
# @TITLE@: a starter storyboard written by `shotflow new`. Lines starting with # are comments.
#   shotflow validate @FILE@                    checks it; nothing is spent
#   shotflow estimate @FILE@                    what each shot would cost on fal
#   shotflow run @FILE@ --backend preview       an offline animatic, free
#   shotflow run @FILE@                         generates on fal (needs FAL_KEY): costs money
version: 1
title: @TITLE_YAML@

# Values for {{ name }} placeholders in prompts and paths; `--var city=Porto` overrides one for a run.
vars:
  city: Lisbon

# What every shot inherits unless it sets its own. `shotflow models` lists the ten models.
defaults:
  model: kling-2.0-master
  aspect_ratio: "16:9"        # keep the quotes: unquoted, YAML reads 16:9 as a number
  negative_prompt: blur, distort, and low quality

# The final video. output.path is relative to the folder you run shotflow in.
output:
  path: out/@STEM@.mp4
  resolution: 720p            # 360p, 480p, 540p, 720p or 1080p
  fps: 24
  fit: pad                    # pad (letterbox) or crop clips of another shape
  transition: {type: crossfade, seconds: 0.5}   # or {type: cut}
  # audio: {path: music.mp3, volume: 0.8}       # a soundtrack, relative to this file's folder

# Render on a schedule when served (`shotflow serve`): uncomment to use.
# schedule:
#   cron: "0 9 * * 1"         # Mondays at 09:00
#   timezone: Europe/Lisbon

shots:
  - id: opening               # letters, digits, - and _; it names the shot's files
    prompt: >-
      A slow aerial shot over the rooftops of {{ city }} at sunrise, warm light on the tiles.
    duration: 5               # seconds; each model renders only some lengths (`shotflow models`)
  - id: street
    prompt: A yellow tram climbs a narrow cobbled street in {{ city }} as people step aside.
    model: hailuo-02          # a shot may use another model
    duration: 6
  - id: closing
    prompt: "Waves roll onto an empty beach at dusk: the city lights glow far behind."
    model: luma-ray-2-flash
    resolution: 540p          # what this shot asks its model for; the final video stays 720p
    duration: 5
    # seed: 42                # models with a seed field give the same clip for the same seed and prompt
    # params: {loop: true}    # model-specific fields: `shotflow models luma` lists them
"""


def starter_path(name: str) -> Path:
    """NAME -> NAME.yaml (a name already ending in .yaml or .yml is kept)."""
    path = Path(name)
    return path if path.suffix in (".yaml", ".yml") else path.with_name(path.name + ".yaml")


def schema_line(path: Path) -> str:
    """The editor's schema line for a file at `path`: the repo's schema, relative to the file."""
    if not REPO_SCHEMA.is_file():
        return (
            "# For completion in your editor: shotflow schema -o storyboard.schema.json, then put its path here:\n"
            "# yaml-language-server: $schema=storyboard.schema.json"
        )
    try:
        target = os.path.relpath(REPO_SCHEMA, path.resolve().parent)
    except ValueError:  # another drive (Windows): an absolute path works as well
        target = str(REPO_SCHEMA)
    return f"# yaml-language-server: $schema={Path(target).as_posix()}"


def starter_text(path: Path) -> str:
    stem = path.stem
    title = re.sub(r"[-_]+", " ", stem).strip().capitalize() or "My storyboard"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "storyboard"
    text = TEMPLATE.replace("@SCHEMA_LINE@", schema_line(path))
    text = text.replace("@TITLE_YAML@", json.dumps(title, ensure_ascii=False))  # a JSON string is a YAML string
    return text.replace("@TITLE@", title).replace("@FILE@", str(path)).replace("@STEM@", slug)


def write_starter(name: str) -> Path:
    """Write the starter storyboard for NAME; never replaces an existing file."""
    path = starter_path(name)
    if not path.parent.is_dir():
        raise ShotflowError(f"cannot write {path}: there is no folder {path.parent}")
    try:
        with open(path, "x", encoding="utf-8") as fh:
            fh.write(starter_text(path))
    except FileExistsError:
        raise ShotflowError(f"{path} already exists: pick another name, or remove it first") from None
    except OSError as exc:
        raise ShotflowError(f"cannot write {path}: {exc.strerror}") from None
    return path
