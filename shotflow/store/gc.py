"""Pruning the clip store (`shotflow gc`): which files nothing needs any more, and deleting them.

What is needed comes in as `shotflow.needs.Needs` (known storyboards' plans with their picks, and
their videos' manifests); the journal and the ledger are read here. The rules, one per place in
the store:

- `clips/<key>.mp4` (and its `.meta.json`): kept while a video is cut from it, and while it is a
  take of a known shot younger than `older_than_days` (default: every take is kept). Never
  deleted while the journal's record of its key is not settled (a request still running or
  uncertain: its clip is on its way or being collected) or cannot be read. A clip the ledger shows
  as paid for is the only copy of something paid for (fal keeps a result's media only for a while):
  kept unless `include_only_copies`. A clip nobody paid for (a preview's) is made again for free.
- `clips/<key>.<recipe>.mp4|wav` (normalised copies and their sound): kept with a clip a video is
  cut from, or when a manifest names it (an editor's timeline points at it); remade for free.
- `clips/superseded/`: paid clips replaced by a forced regeneration; only copies, so deleted only
  with `include_only_copies`, and never one a kept manifest's video was cut from.
- `clips/.*.part`: downloads and previews left unfinished by a stopped process.
- `frames/`: a last-frame memo (`frames/clips/`) stays while its clip does (it keeps the keys of
  the shots continuing that clip exact); a frame stays while a memo, a plan, a manifest or a kept
  clip's journal record names it. Stills fetched from a URL (`frames/urls/`) always stay: fetched
  again, their bytes (and so the keys of the shots starting on them) could differ.
- `pieces/`: the join's overlaps, sound spans and checks, remade by the next render that needs them.
- Never touched: the journal (`jobs/`), `clips/quarantine/`, `clips/corrupt/`, locks, picks.

A store shared by many machines (SHOTFLOW_STORE=s3://...) is refused: not supported yet.

Anything changed in the last `recent` seconds (an hour) stays: a run may be using it. `sweep`
deletes under each clip's store and journal locks, checking again that the record is settled.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from shotflow.errors import ShotflowError
from shotflow.money import usd
from shotflow.settings import Settings, get_settings
from shotflow.store.clips import ClipStore
from shotflow.store.digest import file_sha256
from shotflow.store.journal import JobRecord, Journal, JournalError
from shotflow.store.ledger import maybe_billed, request_rows

if TYPE_CHECKING:
    from shotflow.needs import Needs

RECENT = 3600.0  # seconds: a file changed this recently may be in use by a run
DAY = 86400.0
SETTLED = frozenset({"downloaded", "refused", "failed", "lost", "quarantined"})  # a request at the end of its road
KEY = r"[0-9a-f]{64}"
CLIP = re.compile(rf"^({KEY})\.mp4$")
META = re.compile(rf"^({KEY})\.meta\.json$")
DERIVED = re.compile(rf"^({KEY})\.[^.]+\.(mp4|wav)$")
MEMO = re.compile(r"^([0-9a-f]{64})\.\d+\.json$")
FRAME = re.compile(r"^([0-9a-f]{64})\.[a-z]+$")
ONLY_COPY = "the only copy of something paid for"


@dataclass(frozen=True)
class Entry:
    """A file (with the files that go with it: a clip's meta, a superseded clip's note) and why it
    goes, or why it stays although nothing needs it."""

    path: Path
    size: int
    why: str
    key: str | None = None  # a clip's key: deleted under its locks
    paid: str | None = None  # the ledger's request, when it is the only copy of something paid for
    also: tuple[Path, ...] = ()
    mtime_ns: int = 0


@dataclass
class Survey:
    root: Path
    doomed: list[Entry] = field(default_factory=list)  # what goes
    spared: dict[str, list[Entry]] = field(default_factory=dict)  # nothing needs them, yet they stay: by reason

    @property
    def size(self) -> int:
        return sum(e.size for e in self.doomed)

    def spare(self, reason: str, entry: Entry) -> None:
        self.spared.setdefault(reason, []).append(entry)


LIVE = "its fal request is not settled (still running, or uncertain): the journal needs it"
RECENTLY = "changed in the last hour: a run may be using it"


def survey(
    cache_dir: str | os.PathLike,
    needs: Needs,
    *,
    older_than_days: float | None = None,
    include_only_copies: bool = False,
    now: float | None = None,
    recent: float = RECENT,
) -> Survey:
    """What `sweep` would delete from the store at `cache_dir`, and what stays although nothing needs it.

    Refused (ShotflowError) when SHOTFLOW_STORE is shared by many machines: see `refuse_shared`."""
    refuse_shared()
    root = Path(cache_dir)
    now = time.time() if now is None else now
    found = Survey(root)
    records, unreadable = _records(root)
    clips = root / "clips"
    files = sorted(p for p in clips.iterdir() if p.is_file()) if clips.is_dir() else []
    keys = [m.group(1) for p in files if (m := CLIP.match(p.name))]
    kept: set[str] = set()  # clips that stay
    cut: set[str] = {k for k, uses in needs.clips.items() if any(u.cut for u in uses)}

    def young(path: Path) -> bool:
        return now - _stat(path).st_mtime < recent

    for key in keys:
        clip, meta = clips / f"{key}.mp4", clips / f"{key}.meta.json"
        uses = needs.clips.get(key, [])
        record = records.get(key)
        paid = _paid(record)
        entry = _entry(clip, "", key=key, paid=paid, also=(meta,) if meta.is_file() else ())
        age = (now - _stat(clip).st_mtime) / DAY
        if key in cut:
            kept.add(key)
            continue
        if uses and (older_than_days is None or age < older_than_days):
            kept.add(key)
            continue
        why = (
            f"{uses[0].what}: no video is cut from it, stored {age:.0f} days ago"
            if uses
            else "no known storyboard, manifest or journal entry needs it"
        )
        entry = replace(entry, why=why)
        if key in unreadable or (record is not None and record.state not in SETTLED):
            found.spare(LIVE, entry)
        elif young(clip):
            found.spare(RECENTLY, entry)
        elif paid and not include_only_copies:
            found.spare(ONLY_COPY, entry)
        else:
            found.doomed.append(entry)
            continue
        kept.add(key)

    for path in files:
        if CLIP.match(path.name) or (META.match(path.name) and path.name[:64] in keys):
            continue
        if path.name.startswith(".") and path.name.endswith(".part"):
            why = "left unfinished by a stopped download or preview"
        elif META.match(path.name):
            why = "the size and hash of a clip no longer stored"
        elif DERIVED.match(path.name):
            if path.resolve() in needs.files or path.name[:64] in cut:
                continue
            why = (
                "a normalised copy (or its sound) of a clip no video is cut from: made again, for free, if one is"
                if path.name[:64] in kept
                else "made from a clip that is not kept"
            )
        else:
            continue  # not the store's: left alone
        entry = _entry(path, why)
        (found.spare(RECENTLY, entry) if young(path) else found.doomed.append(entry))

    _superseded(found, clips / "superseded", needs, include_only_copies, young)
    _frames(found, root / "frames", needs, records, unreadable, _kept_hashes(clips, kept), kept, young)
    pieces = root / "pieces"
    for path in sorted(p for p in pieces.rglob("*") if p.is_file()) if pieces.is_dir() else []:
        entry = _entry(path, "a piece of a join (overlap, sound, check): remade by the next render that needs it")
        (found.spare(RECENTLY, entry) if young(path) else found.doomed.append(entry))
    return found


def sweep(found: Survey) -> tuple[list[Entry], list[tuple[Entry, str]]]:
    """Delete what `found` lists; returns what was deleted, and what was not, with why (changed
    since, or its request came alive: a run is using it)."""
    refuse_shared()
    store = ClipStore(found.root)
    journal = Journal.in_cache(found.root, lock_timeout=1.0)
    deleted, skipped = [], []
    for entry in found.doomed:
        try:
            if entry.key is None:
                if _stat(entry.path).st_mtime_ns != entry.mtime_ns:
                    skipped.append((entry, "changed since it was looked at"))
                    continue
                _unlink(entry)
                deleted.append(entry)
                continue
            with journal.submit_lock(entry.key), store._locked(entry.key):  # no run decides about this clip meanwhile
                record = journal.read(entry.key)
                if record is not None and record.state not in SETTLED:
                    skipped.append((entry, "a request for it was sent meanwhile"))
                elif _stat(entry.path).st_mtime_ns != entry.mtime_ns:
                    skipped.append((entry, "stored again since it was looked at"))
                else:
                    _unlink(entry)
                    deleted.append(entry)
        except JournalError as exc:  # its lock is held by a run, or its record became unreadable
            skipped.append((entry, str(exc)))
    return deleted, skipped


def refuse_shared(settings: Settings | None = None) -> None:
    """ShotflowError when SHOTFLOW_STORE is an object store many machines share: what other workers'
    runs need is not known here, and their journal and clips are not in this folder. Not supported yet."""
    settings = settings or get_settings()
    if settings.shared_store:
        raise ShotflowError(
            f"gc: SHOTFLOW_STORE={settings.store} is shared by many machines, and shotflow gc prunes only a local "
            f"clip store (a shared one is not supported yet): nothing was deleted. {settings.cache_dir} is only this "
            "machine's cache of it"
        )


# --- the parts ---------------------------------------------------------------------------------


def _records(root: Path) -> tuple[dict[str, JobRecord], set[str]]:
    """The journal's records by key, and the keys whose record cannot be read (kept: it may name
    a request still running)."""
    journal = Journal.in_cache(root)
    records, unreadable = {}, set()
    for path in sorted(journal.root.glob("*.json")):
        try:
            record = journal.read(path.stem)
        except JournalError:
            unreadable.add(path.stem)
            continue
        if record is not None:
            records[path.stem] = record
    return records, unreadable


def _paid(record: JobRecord | None) -> str | None:
    """The ledger's last request of this clip that fal may have billed, worded; None if none."""
    if record is None:
        return None
    rows = [r for r in request_rows(record.to_json()) if maybe_billed(r)]
    if not rows:
        return None
    last = rows[-1]
    return f"fal request {last.get('request_id') or '(id unknown)'}, estimated {usd(last.get('estimated_cost_usd'))}"


def _superseded(found: Survey, folder: Path, needs: Needs, include: bool, young) -> None:
    """Paid clips a forced regeneration replaced: each is the only copy of an earlier request."""
    if not folder.is_dir():
        return
    for path in sorted(p for p in folder.glob("*.mp4") if p.is_file()):
        note = path.with_suffix(".json")
        also = (note,) if note.is_file() else ()
        entry = _entry(path, "replaced by a forced regeneration", paid="an earlier fal request", also=also)
        if young(path):
            found.spare(RECENTLY, entry)
        elif not include:
            found.spare(ONLY_COPY, entry)
        elif file_sha256(path) not in needs.clip_hashes:  # a kept manifest's video may have been cut from it
            found.doomed.append(entry)


def _kept_hashes(clips: Path, kept: set[str]) -> set[str]:
    """The sha256 of every clip that stays, and of those waiting in quarantine (one may be accepted)."""
    hashes = set()
    for key in kept:
        try:
            hashes.add(json.loads((clips / f"{key}.meta.json").read_text(encoding="utf-8"))["sha256"])
        except (OSError, ValueError, KeyError, TypeError):
            try:
                hashes.add(file_sha256(clips / f"{key}.mp4"))
            except OSError:
                pass
    for note in (clips / "quarantine").glob("*.json") if (clips / "quarantine").is_dir() else []:
        try:
            hashes.add(json.loads(note.read_text(encoding="utf-8"))["sha256"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return hashes


def _frames(found: Survey, folder: Path, needs: Needs, records, unreadable, hashes: set[str], kept: set[str], young) -> None:
    if not folder.is_dir():
        return
    named = set(needs.frames)
    for key, record in records.items():  # what a kept clip, or a request not settled, was sent with
        if key in kept or record.state not in SETTLED:
            named.update(f["sha256"] for f in record.frames if isinstance(f.get("sha256"), str))
    memos = sorted(p for p in (folder / "clips").glob("*.json") if p.is_file()) if (folder / "clips").is_dir() else []
    for memo in memos:
        m = MEMO.match(memo.name)
        if m is None or m.group(1) in hashes or young(memo):
            named.update(_memo_frame(memo))
            continue
        found.doomed.append(_entry(memo, "the last frame of a clip no longer stored (its memo)"))
    for memo in (folder / "urls").glob("*.json") if (folder / "urls").is_dir() else []:
        named.update(_memo_frame(memo))  # fetched again, a still could differ: it stays
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        m = FRAME.match(path.name)
        if m is None or m.group(1) in named:
            continue
        entry = _entry(path, "a frame no kept clip, storyboard or manifest is sent with")
        (found.spare(RECENTLY, entry) if young(path) else found.doomed.append(entry))


def _memo_frame(memo: Path) -> set[str]:
    try:
        return {str(json.loads(memo.read_text(encoding="utf-8"))["sha256"])}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _entry(path: Path, why: str, **more) -> Entry:
    size = _size(path) + sum(_size(p) for p in more.get("also", ()))
    return Entry(path, size, why, mtime_ns=_stat(path).st_mtime_ns, **more)


def _unlink(entry: Entry) -> None:
    entry.path.unlink(missing_ok=True)
    for other in entry.also:
        other.unlink(missing_ok=True)


class _Gone:
    st_size = 0
    st_mtime = 0.0
    st_mtime_ns = 0


def _stat(path: Path):
    try:
        return path.stat()
    except OSError:
        return _Gone()


def _size(path: Path) -> int:
    return _stat(path).st_size
