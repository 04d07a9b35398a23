"""Whether a shared store can keep machines from paying twice, and the refusal when it cannot.

Before a clip is submitted, its worker holds the clip's lease (`shotflow.store.lease`): a record
in the store written with conditional writes, or a Redis lock. `probe_capabilities` tries the
conditional writes on the store itself (an S3-compatible endpoint may accept If-None-Match and
If-Match and ignore them, which would make every lease "won"). `check_coordination` chooses:

- `SHOTFLOW_REDIS_URL` set: Redis locks (the Redis server every worker reaches);
- else a store that passed the probe: leases in the store;
- else, for a store other machines share: `UnsafeStoreError`, saying why. shotflow refuses to run
  rather than risk paying twice for one shot.

Every worker of one store must coordinate the same way (one on Redis and one on store leases
would not see each other's leases): the first records its choice in `.shotflow/coordination.json`
(created only if absent) and the others refuse a different one, naming both.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from shotflow.store.shared import ConditionFailed, NoConditionalWrites, SharedStore, SharedStoreError

PROBE_PREFIX = ".shotflow/probe/"
AGREEMENT = ".shotflow/coordination.json"


class UnsafeStoreError(SharedStoreError):
    """A shared store that could let two machines pay for one clip: shotflow will not run on it."""


@dataclass(frozen=True)
class Capabilities:
    """What `probe_capabilities` saw: `detail` says which condition was ignored, if one was."""

    url: str
    shared: bool
    conditional_writes: bool
    detail: str


@dataclass(frozen=True)
class Coordination:
    """How this worker's leases work: `mode` is "redis" or "store"."""

    mode: str
    redis_url: str | None
    capabilities: Capabilities

    @property
    def described(self) -> str:
        if self.mode == "redis":
            return f"Redis locks at {redis_location(self.redis_url or '')}"
        return f"conditional writes in {self.capabilities.url}"


def probe_capabilities(store: SharedStore) -> Capabilities:
    """Try If-None-Match and If-Match on a scratch object of the store (removed after)."""
    key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
    url, shared = store.location.url, store.location.shared

    def result(ok: bool, detail: str) -> Capabilities:
        return Capabilities(url, shared, ok, detail)

    try:
        first = store.put_bytes_if_absent(key, b"1")
        try:
            store.put_bytes_if_absent(key, b"2")
            return result(False, "a second create-if-absent (If-None-Match: *) of one key succeeded")
        except ConditionFailed:
            pass
        try:
            store.put_bytes_if_match(key, b"3", '"0123456789abcdef0123456789abcdef"')
            return result(False, "a replace-if-unchanged (If-Match) with a wrong etag succeeded")
        except ConditionFailed:
            pass
        store.put_bytes_if_match(key, b"4", first)
        current = store.get_bytes(key)
        if current is None or current.data != b"4":
            return result(False, "a replace-if-unchanged (If-Match) with the right etag did not write")
        return result(True, "If-None-Match: * and If-Match are honoured")
    except NoConditionalWrites:
        return result(False, f"a {store.location.scheme}:// store has no conditional writes in shotflow")
    except ConditionFailed as exc:
        return result(False, f"a conditional write that should have succeeded failed ({exc})")
    finally:
        try:
            store.delete(key)
        except SharedStoreError:
            pass  # a scratch object left behind costs nothing


def check_coordination(store: SharedStore, *, redis_url: str | None, capabilities: Capabilities | None = None) -> Coordination:
    """How leases work for this store, or UnsafeStoreError when no way is safe.

    Checks, too, that the other workers of this store agreed on the same way (see the module).
    """
    capabilities = capabilities or probe_capabilities(store)
    redis_url = (redis_url or "").strip() or None
    if redis_url:
        coordination = Coordination("redis", redis_url, capabilities)
    elif capabilities.conditional_writes:
        coordination = Coordination("store", None, capabilities)
    elif not capabilities.shared:
        raise UnsafeStoreError(f"{capabilities.url}: its conditional writes failed: {capabilities.detail}")
    else:
        raise UnsafeStoreError(
            f"SHOTFLOW_STORE={capabilities.url} cannot keep two machines from paying for one shot: "
            f"{capabilities.detail}, and SHOTFLOW_REDIS_URL is not set. Set SHOTFLOW_REDIS_URL to a Redis "
            "server every worker reaches, or use an S3 endpoint that honours conditional writes "
            "(If-None-Match, If-Match); shotflow will not run on this store until then"
        )
    if capabilities.shared:
        _agree(store, coordination)
    return coordination


def redis_location(url: str) -> str:
    """A Redis URL without its user and password: host, port and database."""
    parts = urlsplit(url)
    host = parts.hostname or parts.path or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path if parts.hostname else ''}"


def _agree(store: SharedStore, coordination: Coordination) -> None:
    ours = {"mode": coordination.mode}
    if coordination.mode == "redis":
        ours["redis"] = redis_location(coordination.redis_url or "")
    data = json.dumps(ours, sort_keys=True).encode()
    where = store.location.url_of(AGREEMENT)
    existing = store.get_bytes(AGREEMENT)
    if existing is None:
        try:
            store.put_bytes_if_absent(AGREEMENT, data)
            return
        except NoConditionalWrites:
            store.put_bytes(AGREEMENT, data)  # only with Redis; the first workers could still race here
            return
        except ConditionFailed:
            existing = store.get_bytes(AGREEMENT)
    try:
        theirs = json.loads(existing.data) if existing else None
    except ValueError:
        theirs = None
    if theirs != ours:
        raise UnsafeStoreError(
            f"this worker would coordinate through {coordination.described}, but {where} says the store's "
            f"workers use {_said(theirs)}: give every worker the same SHOTFLOW_REDIS_URL (or none), or "
            f"delete {where} once no worker runs"
        )


def _said(record) -> str:
    if not isinstance(record, dict):
        return "something unreadable"
    if record.get("mode") == "redis":
        return f"Redis locks at {record.get('redis')}"
    if record.get("mode") == "store":
        return "conditional writes in the store"
    return repr(record)
