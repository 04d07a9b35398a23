"""The picks of a storyboard: which take of each shot the video uses, and the takes bought one at a time.

They are kept beside the storyboard file as NAME.picks.yaml (human-readable, safe to commit), or,
for a storyboard given inline (a deployment parameter, the UI), in the clip store's folder under
picks/, named by the storyboard's hash; with a shared store (SHOTFLOW_STORE=s3://...), there, as
`picks/<hash>.yaml`, so every worker reads the same picks (written only if unchanged since read:
two reviewers saving at once do not silently undo each other). `shotflow pick`, `shotflow reroll` and the review gates
write them; every later run reads them. A shot not listed uses take 1.

Each pick and extra take records the request it was made for (`request:`, the start of the hash
of the shot's request as written: prompt, vars filled, model, settings). A shot whose request
has changed since (its prompt edited, or another value of a var in it) is another shot: the pick
and the extra takes do not apply to it (the plan says so in a warning), so one var's run never
cuts a take made for another. A pick written by hand without `request:` applies to any version.
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
# picks in a shared store saved by this process: (url, the version it replaced) -> the version it wrote,
# so picks read once and saved at each review round replace only this process's own writes
_OWN_WRITES: dict[tuple[str, str | None], str] = {}


@dataclass(frozen=True)
class ExtraTake:
    """A take bought after the storyboard's own (`shotflow reroll`, or "another take" at a review gate)."""

    take: int
    prompt: str | None = None  # the prompt it was made with, when it was edited; None: the shot's own
    request: str | None = None  # what the shot's request was (see the module's docstring); None: any


@dataclass(frozen=True)
class Pick:
    take: int
    request: str | None = None  # what the shot's request was when it was picked; None: any

    def applies(self, request: str) -> bool:
        return self.request is None or request.startswith(self.request)


@dataclass(frozen=True)
class Picks:
    file: str  # where they are kept
    picked: dict[str, Pick] = field(default_factory=dict)  # shot id -> its pick
    extra: dict[str, tuple[ExtraTake, ...]] = field(default_factory=dict)  # shot id -> its extra takes
    lines: dict[str, int] = field(default_factory=dict, compare=False)  # shot id -> its line, for messages
    etag: str | None = field(default=None, compare=False)  # in a shared store: the version read (None: none was)

    def with_pick(self, shot: str, take: int, request: str | None = None) -> Picks:
        """`request`: the picked shot's `ShotPlan.request` (so the pick holds for that version only)."""
        return dataclasses.replace(self, picked={**self.picked, shot: Pick(take, _short(request))})

    def with_extra_take(
        self, shot: str, takes_now: int, prompt: str | None = None, request: str | None = None
    ) -> tuple[Picks, int]:
        """One more take of `shot`, numbered after every take it has (`takes_now`, extras included)."""
        take = max([takes_now, *(t.take for t in self.extra.get(shot, ()))]) + 1
        extra = {**self.extra, shot: (*self.extra.get(shot, ()), ExtraTake(take, prompt or None, _short(request)))}
        return dataclasses.replace(self, extra=extra), take

    def pick_for(self, shot: str, request: str) -> int | None:
        """The take picked for this version of the shot, if any."""
        pick = self.picked.get(shot)
        return pick.take if pick is not None and pick.applies(request) else None

    def extra_for(self, shot: str, request: str) -> tuple[ExtraTake, ...]:
        """The extra takes bought for this version of the shot."""
        return tuple(t for t in self.extra.get(shot, ()) if t.request is None or request.startswith(t.request))

    def stale(self, requests: dict[str, str]) -> list[str]:
        """What in the file no longer applies, given each shot's request now: one sentence each."""
        found = []
        for shot in dict.fromkeys([*self.picked, *self.extra]):
            where = f"{self.file}:{self.lines[shot]}" if shot in self.lines else self.file
            if shot not in requests:
                found.append(f"{where}: no shot '{shot}' in the storyboard: its picks are not used")
                continue
            pick = self.picked.get(shot)
            ignored = [t.take for t in self.extra.get(shot, ()) if t not in self.extra_for(shot, requests[shot])]
            if pick is not None and not pick.applies(requests[shot]):
                ignored.insert(0, pick.take)
            if ignored:
                found.append(
                    f"{where}: shot '{shot}' changed since its takes were picked or bought (its request is another): "
                    f"take(s) {', '.join(map(str, dict.fromkeys(ignored)))} recorded there are not used"
                )
        return found

    def to_yaml(self, storyboard: str) -> str:
        lines = [
            f"# The takes picked for {storyboard}: written by shotflow pick, shotflow reroll and the review",
            "# gates, read by every run. picks: the take of each shot the video uses (take 1 when a shot is",
            "# not listed). extra_takes: takes bought one at a time, with the prompt when it was edited.",
        ]
        data: dict[str, Any] = {}
        if self.picked:
            data["picks"] = {
                shot: {"take": p.take, "request": p.request} if p.request else p.take for shot, p in self.picked.items()
            }
        if self.extra:
            data["extra_takes"] = {
                shot: [
                    {
                        "take": t.take,
                        **({"prompt": t.prompt} if t.prompt else {}),
                        **({"request": t.request} if t.request else {}),
                    }
                    for t in takes
                ]
                for shot, takes in self.extra.items()
            }
        body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100) if data else "{}\n"
        return "\n".join(lines) + "\n" + body


def picks_path(source: str, storyboard_hash: str, cache_dir: Path) -> Path | str:
    """NAME.picks.yaml beside a storyboard file; for one given inline, <cache>/picks/<hash>.yaml,
    or with a shared store the URL of picks/<hash>.yaml there."""
    if source.startswith("<"):
        from shotflow.settings import get_settings

        settings = get_settings()
        if settings.shared_store:
            from shotflow.store.team import store_location

            return store_location(settings).url_of(f"picks/{storyboard_hash}.yaml")
        return Path(cache_dir) / "picks" / f"{storyboard_hash}.yaml"
    path = Path(source)
    name = path.name.removesuffix(".yaml").removesuffix(".yml")
    return path.with_name(name + SUFFIX)


def load_picks(path: str | Path) -> Picks:
    """The picks kept at `path` (none if the file does not exist); a malformed file is an error
    naming the file and line."""
    file = str(path)
    etag = None
    if _in_store(file):
        store, key = _store_key(file)
        found = store.get_bytes(key)
        if found is None:
            return Picks(file)
        etag, path = found.etag, _local_copy(file, found.data)
    if not Path(path).exists():
        return Picks(file)
    try:
        located = load_yaml(path)
    except StoryboardError as exc:  # a copy of a picks file in the store: name the store's URL
        raise StoryboardError([dataclasses.replace(p, file=file) for p in exc.problems]) from None
    data = located.data if located.data is not None else {}

    def problem(where: tuple, message: str) -> StoryboardError:
        return StoryboardError([Problem(file, located.line(where), message)])

    if not isinstance(data, dict) or set(data) - {"picks", "extra_takes"}:
        raise problem((), "a picks file holds `picks:` (shot: take) and `extra_takes:` (shot: list of takes)")
    for part in ("picks", "extra_takes"):
        if not isinstance(data.get(part) or {}, dict):
            raise problem((part,), f"{part}: give one entry per shot id (shot: ...), not a list or a value")
    picked: dict[str, Pick] = {}
    lines: dict[str, int] = {}
    for shot, entry in (data.get("picks") or {}).items():
        take, request = (entry.get("take"), entry.get("request")) if isinstance(entry, dict) else (entry, None)
        bad_keys = isinstance(entry, dict) and set(entry) - {"take", "request"}
        if not _whole(take) or take < 1 or bad_keys or (request is not None and not isinstance(request, str)):
            raise problem(("picks", shot), f"picks: shot '{shot}': {entry!r} is not a take number (1, 2, ...)")
        picked[str(shot)] = Pick(take, request)
        lines[str(shot)] = located.line(("picks", shot)) or 0
    extra: dict[str, tuple[ExtraTake, ...]] = {}
    for shot, takes in (data.get("extra_takes") or {}).items():
        found = []
        for i, item in enumerate(takes if isinstance(takes, list) else [takes]):
            if (
                not isinstance(item, dict)
                or not _whole(item.get("take"))
                or item["take"] < 2
                or set(item) - {"take", "prompt", "request"}
            ):
                raise problem(
                    ("extra_takes", shot, i), f"extra_takes: shot '{shot}': give each as take: N (N >= 2), prompt: TEXT"
                )
            prompt = item.get("prompt")
            if prompt is not None and (not isinstance(prompt, str) or not prompt.strip()):
                raise problem(("extra_takes", shot, i, "prompt"), f"extra_takes: shot '{shot}': the prompt must be text")
            request = item.get("request")
            if request is not None and not isinstance(request, str):
                raise problem(("extra_takes", shot, i, "request"), f"extra_takes: shot '{shot}': request is shotflow's hash")
            found.append(ExtraTake(item["take"], prompt, request))
        extra[str(shot)] = tuple(found)
        lines.setdefault(str(shot), located.line(("extra_takes", shot)) or 0)
    return Picks(file, picked, extra, lines, etag)


def save_picks(picks: Picks, storyboard: str) -> Path | str:
    if _in_store(picks.file):  # only if unchanged since read (or still absent): never over another's picks
        from shotflow.store.shared import ConditionFailed

        store, key = _store_key(picks.file)
        data = picks.to_yaml(storyboard).encode()
        etag = picks.etag
        while (picks.file, etag) in _OWN_WRITES:  # picks read before this process saved them again
            etag = _OWN_WRITES[picks.file, etag]
        try:
            if etag is None:
                written = store.put_bytes_if_absent(key, data)
            else:
                written = store.put_bytes_if_match(key, data, etag)
            _OWN_WRITES[picks.file, etag] = written
        except ConditionFailed:
            raise StoryboardError(
                [Problem(picks.file, None, "changed by another run since it was read: nothing saved; pick again")]
            ) from None
        return picks.file
    path = Path(picks.file)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, picks.to_yaml(storyboard))


def _in_store(file: str) -> bool:
    return "://" in file and not file.startswith("file://")


def _store_key(url: str):
    """The shared store and the key of a picks file's URL in it."""
    from shotflow.settings import get_settings
    from shotflow.store.publish import url_key
    from shotflow.store.team import shared_store

    store = shared_store(get_settings())
    return store, url_key(url, store.location if store else None)


def _local_copy(url: str, data: bytes) -> Path:
    """A picks file read from the store, as a local file the YAML reader takes (messages name the URL)."""
    import hashlib

    from shotflow.settings import get_settings

    path = get_settings().cache_dir / "picks" / "from-store" / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, data.decode("utf-8", errors="replace"))


def _short(request: str | None) -> str | None:
    return request[:12] if request else None  # enough to tell versions of one shot apart, short to read


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
