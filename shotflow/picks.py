"""The picks of a storyboard: which take of each shot the video uses, and the takes bought one at a time.

They are kept beside the storyboard file as NAME.picks.yaml (human-readable, safe to commit), or,
for a storyboard given inline (a deployment parameter, the UI), in the clip store's folder under
picks/, named by the storyboard's hash. `shotflow pick`, `shotflow reroll` and the review gates
write them; every later run reads them. A shot not listed uses take 1.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shotflow.errors import Problem, StoryboardError
from shotflow.store.atomic import write_text_atomic
from shotflow.storyboard.yamlsource import load_yaml

SUFFIX = ".picks.yaml"


@dataclass(frozen=True)
class ExtraTake:
    """A take bought after the storyboard's own (`shotflow reroll`, or "another take" at a review gate)."""

    take: int
    prompt: str | None = None  # the prompt it was made with, when it was edited; None: the shot's own


@dataclass(frozen=True)
class Picks:
    file: str  # where they are kept
    picked: dict[str, int] = field(default_factory=dict)  # shot id -> take
    extra: dict[str, tuple[ExtraTake, ...]] = field(default_factory=dict)  # shot id -> its extra takes

    def with_pick(self, shot: str, take: int) -> Picks:
        return dataclasses.replace(self, picked={**self.picked, shot: take})

    def with_extra_take(self, shot: str, takes_now: int, prompt: str | None = None) -> tuple[Picks, int]:
        """One more take of `shot`, numbered after every take it has (`takes_now`, extras included)."""
        take = max([takes_now, *(t.take for t in self.extra.get(shot, ()))]) + 1
        extra = {**self.extra, shot: (*self.extra.get(shot, ()), ExtraTake(take, prompt or None))}
        return dataclasses.replace(self, extra=extra), take

    def to_yaml(self, storyboard: str) -> str:
        lines = [
            f"# The takes picked for {storyboard}: written by shotflow pick, shotflow reroll and the review",
            "# gates, read by every run. picks: the take of each shot the video uses (take 1 when a shot is",
            "# not listed). extra_takes: takes bought one at a time, with the prompt when it was edited.",
        ]
        data: dict[str, Any] = {}
        if self.picked:
            data["picks"] = dict(self.picked)
        if self.extra:
            data["extra_takes"] = {
                shot: [{"take": t.take, **({"prompt": t.prompt} if t.prompt else {})} for t in takes]
                for shot, takes in self.extra.items()
            }
        body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100) if data else "{}\n"
        return "\n".join(lines) + "\n" + body


def picks_path(source: str, storyboard_hash: str, cache_dir: Path) -> Path:
    """NAME.picks.yaml beside a storyboard file; <cache>/picks/<hash>.yaml for one given inline."""
    if source.startswith("<"):
        return Path(cache_dir) / "picks" / f"{storyboard_hash}.yaml"
    path = Path(source)
    name = path.name.removesuffix(".yaml").removesuffix(".yml")
    return path.with_name(name + SUFFIX)


def load_picks(path: str | Path) -> Picks:
    """The picks kept at `path` (none if the file does not exist); a malformed file is an error
    naming the file and line."""
    file = str(path)
    if not Path(path).exists():
        return Picks(file)
    located = load_yaml(path)
    data = located.data if located.data is not None else {}

    def problem(where: tuple, message: str) -> StoryboardError:
        return StoryboardError([Problem(file, located.line(where), message)])

    if not isinstance(data, dict) or set(data) - {"picks", "extra_takes"}:
        raise problem((), "a picks file holds `picks:` (shot: take) and `extra_takes:` (shot: list of takes)")
    picked: dict[str, int] = {}
    for shot, take in (data.get("picks") or {}).items():
        if not _whole(take) or take < 1:
            raise problem(("picks", shot), f"picks: shot '{shot}': {take!r} is not a take number (1, 2, ...)")
        picked[str(shot)] = take
    extra: dict[str, tuple[ExtraTake, ...]] = {}
    for shot, takes in (data.get("extra_takes") or {}).items():
        found = []
        for i, item in enumerate(takes if isinstance(takes, list) else [takes]):
            if not isinstance(item, dict) or not _whole(item.get("take")) or item["take"] < 2 or set(item) - {"take", "prompt"}:
                raise problem(
                    ("extra_takes", shot, i), f"extra_takes: shot '{shot}': give each as take: N (N >= 2), prompt: TEXT"
                )
            prompt = item.get("prompt")
            if prompt is not None and (not isinstance(prompt, str) or not prompt.strip()):
                raise problem(("extra_takes", shot, i, "prompt"), f"extra_takes: shot '{shot}': the prompt must be text")
            found.append(ExtraTake(item["take"], prompt))
        extra[str(shot)] = tuple(found)
    return Picks(file, picked, extra)


def save_picks(picks: Picks, storyboard: str) -> Path:
    path = Path(picks.file)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, picks.to_yaml(storyboard))


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
