"""`{{ name }}` placeholders in prompts, titles and output paths.

Values come from the storyboard's `vars:`, overrides given at run time, and the run's date
(`{{ date }}`, `{{ time }}`, `{{ datetime }}`), so one scheduled storyboard renders a new video
each time. An unknown placeholder is an error, never an empty string.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Mapping

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
ANY_BRACES = re.compile(r"\{\{.*?\}\}")
BUILTINS = ("date", "time", "datetime")


def run_vars(now: datetime) -> dict[str, str]:
    return {"date": now.strftime("%Y-%m-%d"), "time": now.strftime("%H%M"), "datetime": now.strftime("%Y-%m-%dT%H%M")}


def placeholders(text: str) -> list[str]:
    return PLACEHOLDER.findall(text)


def malformed(text: str) -> list[str]:
    """`{{ ... }}` groups that are not a plain name (e.g. `{{ topic | upper }}`)."""
    return [m for m in ANY_BRACES.findall(text) if not PLACEHOLDER.fullmatch(m)]


def fill(text: str, values: Mapping[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)
