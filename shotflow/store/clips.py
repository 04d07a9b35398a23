"""Clips stored by content: the key is derived from the backend, the endpoint and the exact body.

Any run of any storyboard that needs the same clip finds it here and pays nothing. A preview
clip and a fal clip of the same body have different keys, so an animatic is never mistaken for
a paid generation.

Layout under `<root>/clips/`:
- `<key>.mp4` the clip, `<key>.meta.json` its `{"sha256", "bytes"}` (written after the clip);
  `<key>.<recipe>.mp4` files derived from it (assemble's normalisations).
- `superseded/<key>.<ns>.mp4` a paid clip replaced by a forced regeneration.
- `corrupt/<key>.<ns>.mp4` (+ `.json`, the reason) a stored clip whose size or hash no longer
  matches: moved aside, not served, never deleted.
- `quarantine/<key>.mp4` (+ `<key>.json`: reason, when) a paid download that failed
  verification; the user accepts it into the store (`accept`) or buys a new one.
- `.locks/<key>.lock` one flock per key: puts and finds of one key, from any thread or process,
  happen one at a time, so two runs sharing the store never race on a rename.

With a shared store (SHOTFLOW_STORE=s3://...) this folder is the machine's cache of it:
`shotflow.store.teamclips.TeamClipStore`, opened by `shotflow.store.team`.

Nothing paid for is ever deleted here: every move goes through `shotflow.store.atomic` (rename,
then fsync the folder), so a clip the journal calls downloaded survives a power cut.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from shotflow.errors import MediaError
from shotflow.model import ShotPlan
from shotflow.store.atomic import full_disk_names, move_atomic, write_bytes_atomic
from shotflow.store.digest import file_sha256
from shotflow.store.locks import flocked


@dataclass(frozen=True)
class StoredClip:
    """A clip in the store, as checked when it was put or found."""

    path: Path
    sha256: str
    size: int


class ClipStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.clips = self.root / "clips"
        self.clips.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(backend: str, shot: ShotPlan) -> str:
        return hashlib.sha256(f"{backend}:{shot.body_hash}".encode()).hexdigest()

    # --- where things are ----------------------------------------------------------------------

    def path(self, key: str) -> Path:
        return self.clips / f"{key}.mp4"

    def meta_path(self, key: str) -> Path:
        return self.clips / f"{key}.meta.json"

    def derived(self, key: str, recipe: str, suffix: str = ".mp4") -> Path:
        """Where a file made from clip `key` by `recipe` (e.g. a normalisation) is kept."""
        return self.clips / f"{key}.{recipe}{suffix}"

    def temp_path(self, key: str) -> Path:
        return self.clips / f".{key}.{os.getpid()}.part"

    def quarantine_path(self, key: str) -> Path:
        return self.clips / "quarantine" / f"{key}.mp4"

    # --- reading -------------------------------------------------------------------------------

    def find(self, key: str) -> Path | None:
        """The stored clip of `key` if it is still what was stored, else None.

        The size is checked against the meta file every time, and the sha256 too. A clip that
        does not match is moved to corrupt/ with the reason (it was paid for: never deleted) and
        None is returned, so the caller fetches it again. A clip stored by an older version (no
        meta) is accepted if it is a readable video, and its meta is written: an upgrade buys
        nothing again.
        """
        path = self.path(key)
        if not path.is_file():
            return None
        with self._locked(key):
            found = self._find_locked(key)
        return found.path if found is not None else None

    def locate(self, key: str) -> Path | None:
        """The file of clip `key` if the store holds one, unchecked (`find` checks it); a shared
        store's clip is fetched into the cache first (shotflow.store.teamclips)."""
        path = self.path(key)
        return path if path.is_file() else None

    def stored(self, key: str) -> StoredClip | None:
        """`find` with the clip's checked hash and size (for the journal)."""
        if not self.path(key).is_file():
            return None
        with self._locked(key):
            return self._find_locked(key)

    def _find_locked(self, key: str) -> StoredClip | None:
        path = self.path(key)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        meta = self._read_meta(key)
        if meta is None:
            return self._adopt_legacy(key, size)
        if size != meta["bytes"]:
            self._set_aside(key, f"size changed on disk: {size} bytes, {meta['bytes']} were stored", meta)
            return None
        digest = file_sha256(path)
        if digest != meta["sha256"]:
            self._set_aside(key, f"content changed on disk: sha256 {digest}, {meta['sha256']} was stored", meta)
            return None
        return StoredClip(path, digest, size)

    def _adopt_legacy(self, key: str, size: int) -> StoredClip | None:
        """A clip without a meta file (stored before metas existed, or by a put cut short)."""
        from shotflow.media import probe  # PyAV: imported only when an old clip needs a look

        path = self.path(key)
        if size == 0:
            self._set_aside(key, "empty file", None)
            return None
        try:
            probe.verify(path)
        except MediaError as exc:
            self._set_aside(key, f"not a readable clip: {str(exc).replace(str(path), 'the clip')}", None)
            return None
        digest = file_sha256(path)
        self._write_meta(key, digest, size)
        return StoredClip(path, digest, size)

    def _read_meta(self, key: str) -> dict | None:
        try:
            meta = json.loads(self.meta_path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # absent or unreadable: the clip is checked as an old one
        if not (isinstance(meta, dict) and isinstance(meta.get("sha256"), str) and isinstance(meta.get("bytes"), int)):
            return None
        return meta

    def _write_meta(self, key: str, sha256: str, size: int) -> None:
        write_bytes_atomic(self.meta_path(key), json.dumps({"sha256": sha256, "bytes": size}).encode() + b"\n", mode=0o644)

    def _set_aside(self, key: str, reason: str, meta: dict | None) -> Path:
        """Move a stored clip that failed its check to corrupt/, with the reason next to it."""
        aside = self.clips / "corrupt"
        aside.mkdir(exist_ok=True)
        dest = _unused(aside / f"{key}.{time.time_ns()}.mp4")
        note = {"key": key, "reason": reason, "stored": meta, "when": _now()}
        write_bytes_atomic(dest.with_suffix(".json"), json.dumps(note, indent=2).encode() + b"\n", mode=0o644)
        move_atomic(self.path(key), dest)
        with contextlib.suppress(FileNotFoundError):
            self.meta_path(key).unlink()
        return dest

    # --- writing -------------------------------------------------------------------------------

    def put(self, key: str, verified_file: Path, *, keep_previous: bool = True) -> StoredClip:
        """Move a verified file into the store as clip `key` (a rename: same file system).

        The file is consumed. Putting a file identical to the stored clip changes nothing (no
        superseded copy): two runs finishing the same clip both succeed. A different clip already
        stored under the key (a forced regeneration) is kept in superseded/, never deleted: it
        was paid for, and older manifests name it by its hash. Clips that cost nothing
        (previews) pass keep_previous=False.
        """
        verified_file = Path(verified_file)
        digest, size = file_sha256(verified_file), verified_file.stat().st_size
        dest = self.path(key)
        with self._locked(key), full_disk_names(dest):
            current = self._find_locked(key)
            if current is not None:
                if (current.sha256, current.size) == (digest, size):
                    verified_file.unlink(missing_ok=True)
                    return current
                if keep_previous:
                    aside = self.clips / "superseded"
                    aside.mkdir(exist_ok=True)
                    move_atomic(dest, _unused(aside / f"{key}.{dest.stat().st_mtime_ns}.mp4"))
            # the old meta goes first: a crash before the new one is written leaves a clip
            # without meta (checked and adopted by find), never a clip with another clip's meta
            with contextlib.suppress(FileNotFoundError):
                self.meta_path(key).unlink()
            move_atomic(verified_file, dest)
            os.utime(dest)  # newer than anything derived from the clip it replaces (assemble compares mtimes)
            self._write_meta(key, digest, size)
            if keep_previous:
                self._retire_quarantined(key, verified_file)
        return StoredClip(dest, digest, size)

    def _retire_quarantined(self, key: str, moved_in: Path) -> None:
        """A clip is stored for `key`: a copy still waiting in quarantine is no longer pending. It
        was paid for, so it joins superseded/ (with its reason) instead of going away."""
        waiting = self.quarantine_path(key)
        if not waiting.is_file() or os.path.abspath(waiting) == os.path.abspath(moved_in):
            return
        aside = self.clips / "superseded"
        aside.mkdir(exist_ok=True)
        dest = _unused(aside / f"{key}.{waiting.stat().st_mtime_ns}.quarantined.mp4")
        note = waiting.with_suffix(".json")
        if note.is_file():
            move_atomic(note, dest.with_suffix(".json"))
        move_atomic(waiting, dest)

    # --- quarantine ----------------------------------------------------------------------------

    def quarantine(self, key: str, file: Path, reason: str) -> Path:
        """Keep a paid download that failed verification aside, with the reason; return its path.

        `reason` is shown to the user: it must not carry the media URL (signed URLs hold
        credentials in their query). An earlier, different quarantined copy of the key is kept
        as `quarantine/<key>.<ns>.mp4`."""
        dest = self.quarantine_path(key)
        file = Path(file)
        digest, size = file_sha256(file), file.stat().st_size
        with self._locked(key), full_disk_names(dest):
            dest.parent.mkdir(exist_ok=True)
            note_path = dest.with_suffix(".json")
            if dest.is_file():
                if file_sha256(dest) == digest:
                    file.unlink(missing_ok=True)
                    self._write_note(note_path, key, reason, digest, size)
                    return dest
                older = _unused(dest.with_name(f"{key}.{dest.stat().st_mtime_ns}.mp4"))
                if note_path.is_file():
                    move_atomic(note_path, older.with_suffix(".json"))
                move_atomic(dest, older)
            move_atomic(file, dest)
            self._write_note(note_path, key, reason, digest, size)
        return dest

    def _write_note(self, note_path: Path, key: str, reason: str, digest: str, size: int) -> None:
        note = {"key": key, "reason": reason, "when": _now(), "sha256": digest, "bytes": size}
        write_bytes_atomic(note_path, json.dumps(note, indent=2).encode() + b"\n", mode=0o644)

    def quarantined(self, key: str) -> tuple[Path, str] | None:
        """The quarantined download of `key` and why it was kept aside, if there is one."""
        dest = self.quarantine_path(key)
        if not dest.is_file():
            return None
        try:
            reason = json.loads(dest.with_suffix(".json").read_text(encoding="utf-8"))["reason"]
        except (OSError, ValueError, KeyError, TypeError):
            reason = "failed verification (the reason file is missing)"
        return dest, str(reason)

    def accept(self, key: str, file: Path | None = None) -> StoredClip:
        """Take a clip the user vouches for into the store as clip `key`.

        Without `file`, the quarantined download of the key is moved in. A file from elsewhere is
        copied (the user's file is left where it is). It must be a readable video; its length is
        the user's call, and so is a stream cut short (what plays is used); it must at least be a
        video. A clip already stored under the key goes to superseded/.
        """
        from shotflow.media import probe

        source = Path(file) if file is not None else self.quarantine_path(key)
        quarantined = source.resolve() == self.quarantine_path(key).resolve()
        if not source.is_file():
            what = "no quarantined clip" if file is None else "no such file"
            raise MediaError(f"{source}: {what} to accept for clip {key}")
        probe.probe(source)
        with full_disk_names(self.clips):
            if quarantined:
                staged = source
            else:
                fd, tmp = tempfile.mkstemp(dir=self.clips, prefix=f".{key}.", suffix=".part")
                os.close(fd)
                staged = Path(tmp)
                try:
                    shutil.copyfile(source, staged)
                    with open(staged, "rb+") as fh:
                        os.fsync(fh.fileno())
                except BaseException:
                    staged.unlink(missing_ok=True)
                    raise
        stored = self.put(key, staged, keep_previous=True)
        if quarantined:
            self.quarantine_path(key).with_suffix(".json").unlink(missing_ok=True)
        return stored

    # --- locking -------------------------------------------------------------------------------

    def _locked(self, key: str) -> contextlib.AbstractContextManager[None]:
        """One key at a time across threads and processes (flock: per open file, so per call)."""
        return flocked(self.clips / ".locks" / f"{key}.lock")


def _unused(path: Path) -> Path:
    """`path`, or `<stem>.<n><suffix>` if taken: a rename must never land on a paid clip kept aside."""
    n = 0
    candidate = path
    while candidate.exists() or candidate.with_suffix(".json").exists():
        n += 1
        candidate = path.with_name(f"{path.stem}.{n}{path.suffix}")
    return candidate


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
