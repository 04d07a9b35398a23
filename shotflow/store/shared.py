"""Where what several machines share lives: `SHOTFLOW_STORE`, and the one interface to it.

`SHOTFLOW_STORE` is a local folder (the default: the clip store as today, `SHOTFLOW_CACHE_DIR`) or
an object-store URL: `s3://bucket/prefix` (tested against an S3 endpoint: `shotflow.store.remote`),
or `gs://` / `az://` through fsspec (accepted, untested). A `SharedStore` holds objects by key
(`clips/<key>.mp4`, `leases/<key>.json`, ...): files put from a verified local copy and got into the
local cache, and small records written only if absent or only if unchanged (conditional writes,
what a lease and a journal record across machines need).

- `put_file` streams a local file up, then checks what the store holds (size, and the sha256 kept
  in the object's metadata; `read_back=True` also reads it all back and hashes it).
- `get_file` fetches an object into the local content-addressed cache (`SHOTFLOW_CACHE_DIR/objects/
  sha256/<ab>/<sha256><suffix>`; safe to delete, everything in it is fetched again) and checks its
  sha256 on arrival: a corrupt object raises `CorruptObjectError` and leaves nothing in the cache.
- `put_bytes_if_absent` / `put_bytes_if_match` raise `ConditionFailed` when another writer got
  there first; an etag names the version read or written.

Whether a store can coordinate machines safely, and the refusal when it cannot, is
`shotflow.store.coordination`. Nothing here imports boto3 or fsspec until such a store is opened.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from shotflow.errors import ShotflowError
from shotflow.store.atomic import full_disk_names, move_atomic, write_bytes_atomic
from shotflow.store.digest import file_sha256
from shotflow.store.locks import flocked

# object-store schemes SHOTFLOW_STORE accepts; s3 is tested, the others go through fsspec untested
SCHEMES = {"s3": "tested", "gs": "untested (fsspec, gcsfs)", "az": "untested (fsspec, adlfs)"}


class SharedStoreError(ShotflowError):
    """The shared store could not be read or written; the message names the store URL and key."""


class ConditionFailed(SharedStoreError):
    """A conditional write lost: the object exists (if absent) or changed (if match)."""


class NoConditionalWrites(SharedStoreError):
    """A store that cannot write only-if-absent or only-if-unchanged (gs://, az:// through fsspec here)."""


class MissingObjectError(SharedStoreError):
    """No object under that key."""


class CorruptObjectError(SharedStoreError):
    """An object whose bytes do not match the size or sha256 recorded when it was put."""


@dataclass(frozen=True)
class StoreLocation:
    """A parsed SHOTFLOW_STORE: `scheme` is "local" (with `path`) or an object store (`bucket`, `prefix`)."""

    url: str
    scheme: str
    bucket: str = ""
    prefix: str = ""
    path: Path | None = None

    @property
    def shared(self) -> bool:
        """Whether other machines can reach it (a local folder is this machine's only)."""
        return self.scheme != "local"

    def url_of(self, key: str) -> str:
        """The URL (or path) an object of this store is known by in messages."""
        if self.path is not None:
            return str(self.path / key)
        return f"{self.scheme}://{self.bucket}/{self.prefix + '/' if self.prefix else ''}{key}"


def parse_store(value: str | None, *, default: Path) -> StoreLocation:
    """SHOTFLOW_STORE as given (None or empty: `default`, the clip store as today)."""
    value = (value or "").strip()
    if not value:
        return StoreLocation(url=str(default), scheme="local", path=Path(default))
    if "://" not in value:
        path = Path(os.path.abspath(Path(value).expanduser()))
        return StoreLocation(url=str(path), scheme="local", path=path)
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme == "file":
        path = Path(parts.path)
        return StoreLocation(url=str(path), scheme="local", path=path)
    if scheme not in SCHEMES:
        raise SharedStoreError(
            f"SHOTFLOW_STORE={value!r}: {scheme}:// is not a store shotflow knows; "
            "give a local folder, s3://bucket/prefix, or (untested) gs://bucket/prefix or az://container/prefix"
        )
    if not parts.netloc or parts.query or parts.fragment:
        raise SharedStoreError(f"SHOTFLOW_STORE={value!r}: expected {scheme}://bucket/prefix (a bucket, no query)")
    prefix = parts.path.strip("/")
    url = f"{scheme}://{parts.netloc}" + (f"/{prefix}" if prefix else "")
    return StoreLocation(url=url, scheme=scheme, bucket=parts.netloc, prefix=prefix)


def check_key(key: str) -> str:
    """A key is a relative POSIX path without '.', '..' or empty parts (never escapes the store)."""
    parts = PurePosixPath(key).parts
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in key or "//" in key:
        raise SharedStoreError(f"{key!r} is not a store key (a relative path like clips/<key>.mp4)")
    return key


@dataclass(frozen=True)
class ObjectInfo:
    """What the store says about an object: its size, its etag, and the sha256 put_file recorded."""

    key: str
    size: int
    etag: str
    sha256: str | None


@dataclass(frozen=True)
class Versioned:
    """A small object's bytes and the etag of that version (for put_bytes_if_match)."""

    data: bytes
    etag: str


def cache_path(cache_dir: Path, sha256: str, suffix: str = "") -> Path:
    """Where the local cache keeps the object whose content hashes to `sha256`."""
    return Path(cache_dir) / "objects" / "sha256" / sha256[:2] / f"{sha256}{suffix}"


class SharedStore(ABC):
    """Objects by key in one store; subclasses supply the primitives, this class the checks."""

    location: StoreLocation

    # --- primitives ---------------------------------------------------------------------------

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo | None:
        """The object's size, etag and recorded sha256; None if there is none."""

    @abstractmethod
    def _upload(self, local: Path, key: str, sha256: str) -> None:
        """Stream `local` to `key`, recording `sha256` with it."""

    @abstractmethod
    def _download(self, key: str, dest: Path) -> None:
        """Stream the object to the new file `dest`."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object (and what was recorded with it); absent is fine."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Keys under `prefix` (a folder-like prefix such as "clips/"), sorted."""

    @abstractmethod
    def get_bytes(self, key: str) -> Versioned | None:
        """A small object's bytes and etag; None if there is none."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> str:
        """Write a small object unconditionally; its new etag."""

    @abstractmethod
    def put_bytes_if_absent(self, key: str, data: bytes) -> str:
        """Create a small object only if no object has the key (else ConditionFailed); its etag."""

    @abstractmethod
    def put_bytes_if_match(self, key: str, data: bytes, etag: str) -> str:
        """Replace a small object only if it is still the version `etag` (else ConditionFailed)."""

    @abstractmethod
    def url(self, key: str, expires: int = 3600) -> str:
        """A URL a browser can open (for S3 a presigned https GET valid `expires` seconds)."""

    # --- what every store does the same way ----------------------------------------------------

    def exists(self, key: str) -> bool:
        return self.stat(check_key(key)) is not None

    def put_file(self, local: Path, key: str, *, sha256: str | None = None, read_back: bool = False) -> ObjectInfo:
        """Upload a verified local file as `key` and check what the store then holds.

        `sha256` is the file's hash when the caller has it (a download just verified it); an
        object already holding the same bytes is left as it is (a clip another machine uploaded).
        """
        check_key(key)
        local = Path(local)
        size = local.stat().st_size
        digest = sha256 or file_sha256(local)
        current = self.stat(key)
        if current is None or (current.size, current.sha256) != (size, digest):
            self._upload(local, key, digest)
            current = self.stat(key)
        where = self.location.url_of(key)
        if current is None:
            raise SharedStoreError(f"uploaded {local} to {where}, but the store does not list it")
        if (current.size, current.sha256) != (size, digest):
            raise CorruptObjectError(
                f"{where}: holds {current.size} bytes (sha256 {current.sha256}) after uploading {local} "
                f"({size} bytes, sha256 {digest}); another writer, or a broken upload"
            )
        if read_back:
            self._check_download(key, current, Path(f"{local}.readback.{os.getpid()}.{threading.get_ident()}"), keep=False)
        return current

    def get_file(self, key: str, cache_dir: Path) -> Path:
        """The object as a local file in the content-addressed cache, fetched and checked if missing."""
        check_key(key)
        info = self.stat(key)
        if info is None:
            raise MissingObjectError(f"{self.location.url_of(key)}: no such object")
        if info.sha256 is None:
            raise CorruptObjectError(f"{self.location.url_of(key)}: has no recorded sha256 (not put by shotflow)")
        cached = cache_path(cache_dir, info.sha256, PurePosixPath(key).suffix)
        if cached.is_file() and cached.stat().st_size == info.size:
            return cached
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.parent / f".{cached.name}.{os.getpid()}.{threading.get_ident()}.part"
        self._check_download(key, info, tmp, keep=True)
        return move_atomic(tmp, cached)

    def _check_download(self, key: str, info: ObjectInfo, tmp: Path, *, keep: bool) -> None:
        """Download `key` to `tmp` and check size and sha256; `tmp` is removed unless kept and good."""
        good = False
        try:
            with full_disk_names(tmp):
                self._download(key, tmp)
                with open(tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
            size, digest = tmp.stat().st_size, file_sha256(tmp)
            if (size, digest) != (info.size, info.sha256):
                raise CorruptObjectError(
                    f"{self.location.url_of(key)}: read {size} bytes with sha256 {digest}, but it was put as "
                    f"{info.size} bytes with sha256 {info.sha256} (corrupt, or replaced while being read)"
                )
            good = True
        finally:
            if not (keep and good):
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()


# --- a local folder ------------------------------------------------------------------------------

META = ".meta"  # <root>/.meta/<key>.json: {"sha256", "bytes"} of a file put with put_file
LOCKS = ".locks"  # <root>/.locks/<sha256 of key>.lock: conditional writes of one key, one at a time


class LocalStore(SharedStore):
    """SHOTFLOW_STORE as a folder of this machine: the same interface, for one machine's runs.

    Conditional writes hold the key's flock (`shotflow.store.locks`), so they are atomic across
    threads and processes here; their etag is the sha256 of the bytes (stat's etag, size and
    mtime, only tells a change). get_file checks the stored file in place (size and sha256)
    instead of copying it into the cache.
    """

    def __init__(self, location: StoreLocation):
        assert location.path is not None
        self.location = location
        self.root = location.path
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _meta(self, key: str) -> Path:
        return self.root / META / f"{key}.json"

    def _lock(self, key: str) -> contextlib.AbstractContextManager[None]:
        return flocked(self.root / LOCKS / f"{hashlib.sha256(key.encode()).hexdigest()}.lock")

    def stat(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        try:
            meta = json.loads(self._meta(key).read_text())
            digest = meta["sha256"] if meta.get("bytes") == size else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            digest = None
        return ObjectInfo(key, size, etag=f"{size}-{path.stat().st_mtime_ns}", sha256=digest)

    def _upload(self, local: Path, key: str, sha256: str) -> None:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.{os.getpid()}.{threading.get_ident()}.part"
        try:
            with full_disk_names(tmp), open(local, "rb") as src, open(tmp, "wb") as out:
                for block in iter(lambda: src.read(1 << 20), b""):
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            with self._lock(key):
                with contextlib.suppress(FileNotFoundError):
                    self._meta(key).unlink()  # never a file with another file's meta
                move_atomic(tmp, dest)
                self._meta(key).parent.mkdir(parents=True, exist_ok=True)
                write_bytes_atomic(self._meta(key), json.dumps({"sha256": sha256, "bytes": dest.stat().st_size}).encode())
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _download(self, key: str, dest: Path) -> None:
        with open(self._path(key), "rb") as src, open(dest, "wb") as out:
            for block in iter(lambda: src.read(1 << 20), b""):
                out.write(block)

    def get_file(self, key: str, cache_dir: Path) -> Path:
        info = self.stat(check_key(key))
        path = self._path(key)
        if info is None:
            raise MissingObjectError(f"{path}: no such object")
        if info.sha256 is None or file_sha256(path) != info.sha256:
            raise CorruptObjectError(f"{path}: its bytes do not match the sha256 recorded when it was put")
        return path

    def delete(self, key: str) -> None:
        with self._lock(key):
            for path in (self._meta(key), self._path(key)):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def list(self, prefix: str = "") -> list[str]:
        keys = []
        for folder, dirs, files in os.walk(self.root):
            rel = Path(folder).relative_to(self.root)
            dirs[:] = [d for d in dirs if not (rel == Path(".") and d in (META, LOCKS))]
            for name in files:
                key = (rel / name).as_posix().removeprefix("./")
                if not name.startswith(".") and key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def get_bytes(self, key: str) -> Versioned | None:
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        return Versioned(data, hashlib.sha256(data).hexdigest())

    def _write(self, key: str, data: bytes) -> str:
        self._path(key).parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self._path(key), data, mode=0o644)
        return hashlib.sha256(data).hexdigest()

    def put_bytes(self, key: str, data: bytes) -> str:
        with self._lock(check_key(key)):
            return self._write(key, data)

    def put_bytes_if_absent(self, key: str, data: bytes) -> str:
        with self._lock(check_key(key)):
            if self._path(key).exists():
                raise ConditionFailed(f"{self._path(key)}: already exists")
            return self._write(key, data)

    def put_bytes_if_match(self, key: str, data: bytes, etag: str) -> str:
        with self._lock(check_key(key)):
            current = self.get_bytes(key)
            if current is None or current.etag != etag:
                raise ConditionFailed(f"{self._path(key)}: changed since it was read")
            return self._write(key, data)

    def url(self, key: str, expires: int = 3600) -> str:
        return self._path(key).as_uri()


def open_store(location: StoreLocation, **options) -> SharedStore:
    """The store SHOTFLOW_STORE names; `options` go to an object store's client (e.g. endpoint_url)."""
    if location.scheme == "local":
        return LocalStore(location)
    from shotflow.store.remote import open_remote

    return open_remote(location, **options)
