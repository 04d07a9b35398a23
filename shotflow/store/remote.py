"""The object stores behind SHOTFLOW_STORE: S3 through boto3 (tested), gs:// and az:// through fsspec (untested).

S3 goes through boto3 directly rather than s3fs: its PutObject takes `IfNoneMatch="*"` and
`IfMatch=<etag>` as they are, a 412 comes back as `PreconditionFailed` (raised here as
`ConditionFailed`), it presigns GET URLs, and it needs no event loop in the lease's renewal thread.
s3fs passes the same headers (`pipe_file(mode="create")`, `IfMatch=` as an extra argument) but pins
an older botocore through aiobotocore. Both were tried against moto's S3 server: see
/work/notes/issue14-findings.md and tests/test_shared_store.py.

Credentials, region and endpoint are boto3's own: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (or a
profile, or an instance role), `AWS_REGION`, and `AWS_ENDPOINT_URL_S3` (or `AWS_ENDPOINT_URL`) for
an S3-compatible endpoint; `endpoint_url=` overrides it. A put records the file's sha256 as the
object's metadata (`x-amz-meta-sha256`), which get_file checks the downloaded bytes against.

A gs:// or az:// store needs gcsfs or adlfs installed; it records the sha256 beside the object
(`.meta/<key>.json`) and has no conditional writes, so it needs Redis for leases
(`shotflow.store.coordination` refuses it otherwise).
"""

from __future__ import annotations

import json
from pathlib import Path

from shotflow.store.shared import (
    META,
    ConditionFailed,
    NoConditionalWrites,
    ObjectInfo,
    SharedStore,
    SharedStoreError,
    StoreLocation,
    Versioned,
    check_key,
)

PRECONDITION = ("PreconditionFailed", "412")
# S3 answers 409 to a conditional write racing another one on the same key: the other won
CONFLICT = ("ConditionalRequestConflict", "409")
MISSING = ("NoSuchKey", "404", "NotFound")
MULTIPART_THRESHOLD = 64 << 20  # one PUT below it; larger files go up in parts, several at a time


def _missing_extra(package: str, scheme: str) -> SharedStoreError:
    return SharedStoreError(f"a {scheme}:// store needs {package}: pip install 'shotflow[team]'")


class S3Store(SharedStore):
    """An S3 bucket (and prefix): AWS, or an S3-compatible endpoint that honours conditional writes."""

    def __init__(
        self,
        location: StoreLocation,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        client=None,
        multipart_threshold: int = MULTIPART_THRESHOLD,
    ):
        try:
            import boto3
            from boto3.s3.transfer import TransferConfig
            from botocore.config import Config
        except ImportError:
            raise _missing_extra("boto3", "s3") from None
        self.location = location
        self.bucket = location.bucket
        self.client = client or boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(connect_timeout=10, read_timeout=60, retries={"mode": "standard", "max_attempts": 5}),
        )
        self.transfer = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=max(5 << 20, min(16 << 20, multipart_threshold))
        )

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.location.prefix}/{key}" if self.location.prefix else key

    def _failed(self, exc: Exception, key: str, doing: str) -> SharedStoreError:
        """A botocore error as one message naming the object; ConditionFailed for a lost condition."""
        code = _code(exc)
        where = self.location.url_of(key)
        if code in PRECONDITION or code in CONFLICT:
            return ConditionFailed(f"{where}: {doing}: another writer got there first ({code})")
        return SharedStoreError(f"{where}: {doing} failed: {exc}")

    def stat(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as exc:
            if _code(exc) in MISSING:
                return None
            raise self._failed(exc, key, "reading its metadata") from None
        except BotoCoreError as exc:  # no connection, a timeout, no credentials
            raise self._failed(exc, key, "reading its metadata") from None
        return ObjectInfo(key, head["ContentLength"], head["ETag"], head.get("Metadata", {}).get("sha256"))

    def _upload(self, local: Path, key: str, sha256: str) -> None:
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.upload_file(
                str(local), self.bucket, self._name(key), ExtraArgs={"Metadata": {"sha256": sha256}}, Config=self.transfer
            )
        except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
            raise self._failed(exc, key, f"uploading {local}") from None

    def _download(self, key: str, dest: Path) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.download_file(self.bucket, self._name(key), str(dest), Config=self.transfer)
        except (ClientError, BotoCoreError) as exc:
            raise self._failed(exc, key, f"downloading to {dest}") from None

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._name(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._failed(exc, key, "deleting") from None

    def list(self, prefix: str = "") -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        base = f"{self.location.prefix}/" if self.location.prefix else ""
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base + prefix)
            return sorted(item["Key"].removeprefix(base) for page in pages for item in page.get("Contents", ()))
        except (ClientError, BotoCoreError) as exc:
            raise self._failed(exc, prefix or ".", "listing") from None

    def get_bytes(self, key: str) -> Versioned | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._name(key))
            return Versioned(answer["Body"].read(), answer["ETag"])
        except ClientError as exc:
            if _code(exc) in MISSING:
                return None
            raise self._failed(exc, key, "reading") from None
        except (BotoCoreError, OSError) as exc:  # no connection, a timeout, a body cut short
            raise self._failed(exc, key, "reading") from None

    def _put(self, key: str, data: bytes, doing: str, **condition) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.put_object(Bucket=self.bucket, Key=self._name(key), Body=data, **condition)["ETag"]
        except ClientError as exc:
            if condition.get("IfMatch") and _code(exc) in MISSING:
                raise ConditionFailed(f"{self.location.url_of(key)}: {doing}: it is gone") from None
            raise self._failed(exc, key, doing) from None
        except BotoCoreError as exc:  # no connection, a timeout: whether it was written is unknown
            raise self._failed(exc, key, doing) from None

    def put_bytes(self, key: str, data: bytes) -> str:
        return self._put(key, data, "writing")

    def put_bytes_if_absent(self, key: str, data: bytes) -> str:
        return self._put(key, data, "creating it if absent", IfNoneMatch="*")

    def put_bytes_if_match(self, key: str, data: bytes, etag: str) -> str:
        return self._put(key, data, "replacing it if unchanged", IfMatch=etag)

    def url(self, key: str, expires: int = 3600) -> str:
        from botocore.exceptions import BotoCoreError

        try:
            return self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self._name(key)}, ExpiresIn=expires
            )
        except BotoCoreError as exc:  # no credentials to sign with
            raise self._failed(exc, key, "signing a link") from None


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class FsspecStore(SharedStore):
    """gs:// or az:// (or any fsspec file system) without conditional writes: untested, needs Redis for leases."""

    def __init__(self, location: StoreLocation, *, fs=None, **options):
        self.location = location
        if fs is None:
            import fsspec

            package = {"gs": "gcsfs", "az": "adlfs"}.get(location.scheme, location.scheme)
            try:
                fs = fsspec.filesystem(location.scheme, **options)
            except (ImportError, ValueError):
                raise _missing_extra(package, location.scheme) from None
        self.fs = fs
        self.base = "/".join(p for p in (location.bucket, location.prefix) if p)

    def _name(self, key: str) -> str:
        return f"{self.base}/{check_key(key)}"

    def _meta(self, key: str) -> str:
        return f"{self.base}/{META}/{key}.json"

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            info = self.fs.info(self._name(key))
        except FileNotFoundError:
            return None
        try:
            meta = json.loads(self.fs.cat_file(self._meta(key)))
            digest = meta["sha256"] if meta.get("bytes") == info["size"] else None
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            digest = None
        etag = str(info.get("ETag") or info.get("etag") or info.get("generation") or info.get("mtime") or info["size"])
        return ObjectInfo(key, int(info["size"]), etag, digest)

    def _upload(self, local: Path, key: str, sha256: str) -> None:
        if self.fs.exists(self._meta(key)):
            self.fs.rm_file(self._meta(key))  # never a file with another file's meta
        self.fs.put_file(str(local), self._name(key))
        self.fs.pipe_file(self._meta(key), json.dumps({"sha256": sha256, "bytes": Path(local).stat().st_size}).encode())

    def _download(self, key: str, dest: Path) -> None:
        self.fs.get_file(self._name(key), str(dest))

    def delete(self, key: str) -> None:
        for name in (self._meta(key), self._name(key)):
            if self.fs.exists(name):
                self.fs.rm_file(name)

    def list(self, prefix: str = "") -> list[str]:
        try:
            names = self.fs.find(self.base)
        except FileNotFoundError:
            return []
        keys = (n.lstrip("/").removeprefix(self.base.lstrip("/") + "/") for n in names)
        return sorted(k for k in keys if k.startswith(prefix) and not k.startswith(f"{META}/"))

    def get_bytes(self, key: str) -> Versioned | None:
        stat = self.stat(key)
        if stat is None:
            return None
        return Versioned(self.fs.cat_file(self._name(key)), stat.etag)

    def put_bytes(self, key: str, data: bytes) -> str:
        self.fs.pipe_file(self._name(key), data)
        stat = self.stat(key)
        return stat.etag if stat else ""

    def _no_conditions(self, key: str) -> SharedStoreError:
        return NoConditionalWrites(
            f"{self.location.url_of(key)}: a {self.location.scheme}:// store has no conditional writes here; "
            "leases need SHOTFLOW_REDIS_URL"
        )

    def put_bytes_if_absent(self, key: str, data: bytes) -> str:
        raise self._no_conditions(key)

    def put_bytes_if_match(self, key: str, data: bytes, etag: str) -> str:
        raise self._no_conditions(key)

    def url(self, key: str, expires: int = 3600) -> str:
        try:
            return self.fs.sign(self._name(key), expiration=expires)
        except NotImplementedError:
            return f"{self.location.scheme}://{self._name(key)}"


def open_remote(location: StoreLocation, **options) -> SharedStore:
    if location.scheme == "s3":
        return S3Store(location, **options)
    return FsspecStore(location, **options)
