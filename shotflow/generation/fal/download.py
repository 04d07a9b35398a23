"""Fetching a paid clip from fal's media host into the clip store, verified; or keeping it aside.

The URL comes from fal's result, so it is checked like any input: https only, and only hosts the
settings allow (`Settings.allowed_media_hosts`; an entry `host` matches that host and its
subdomains on any port, an entry `host:port` only that port; IP addresses match exactly). It is
fetched with a plain httpx client, never fal_client's, which would send the fal key along.

The body streams to a `.part` file in the store's folder (constant memory), capped in size, its
length checked against Content-Length, fsynced, then probed packet by packet (a truncated
faststart mp4 passes a plain probe) and moved into the store.

What a failure means for the paid request (the caller, the Job, acts on `DownloadError`):
- not a complete copy (4xx, 5xx, network, cut short, a host not allowed, not https, too big):
  "try again later": `quarantined` is None. Answers and cut connections are tried again in this
  call with backoff; the caller keeps the URL and tries again in later runs, without paying,
  until fal's media retention has passed. A refused URL (host, scheme, size) is not fetched
  again in this call: a setting has to change first.
- a complete copy of the wrong length: the media itself is like that, fetching it again cannot
  help and it was paid for: it is quarantined at once (`quarantined` is its path).
- a complete copy with a broken stream: fetched again up to `attempts` times, then the last copy
  is quarantined with the reason.
- a complete "copy" that is not a video at all (a CDN's error page answered with 200): not the
  paid clip; fetched again in this call, then "try again later" (nothing kept aside).
A full disk raises `StoreFullError` (from shotflow.store), naming the store's folder.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from shotflow.errors import DownloadError, MediaError
from shotflow.generation.retry import RetryPolicy
from shotflow.media import probe
from shotflow.store.atomic import full_disk_names
from shotflow.store.clips import ClipStore, StoredClip

CHUNK = 1 << 16
MAX_REDIRECTS = 5
OnRetry = Callable[[int, str], None]  # (attempt that failed, why)


def host_allowed(url: str, allowed: Iterable[str]) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        return False
    try:
        port = parts.port or 443
    except ValueError:
        return False
    for entry in allowed:
        entry = entry.lower().strip()
        name, _, entry_port = entry.rpartition(":") if _has_port(entry) else (entry, "", "")
        name = name.strip("[]")
        if entry_port and int(entry_port) != port:
            continue
        if host == name or (not _is_ip(name) and host.endswith("." + name)):
            return True
    return False


def check_media_url(url: str, allowed: Iterable[str]) -> None:
    """DownloadError (try again later, once the setting allows it) unless `url` is https on an allowed host."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise _failure(url, "only https media URLs are fetched", refused=True, prefix="refusing to download")
    if not host_allowed(url, allowed):
        reason = (
            f"{parts.hostname or '?'} is not an allowed media host (allowed: {', '.join(sorted(allowed))}; "
            "add it to SHOTFLOW_MEDIA_HOSTS if you trust it)"
        )
        raise _failure(url, reason, refused=True, prefix="refusing to download")


def download_clip(
    url: str,
    store: ClipStore,
    key: str,
    *,
    allowed_hosts: Iterable[str],
    max_bytes: int,
    expected_seconds: float | None = None,
    tolerance: float,
    policy: RetryPolicy,
    timeout: float,
    on_retry: OnRetry | None = None,
) -> StoredClip:
    """Download `url`, verify it, put it into the store as clip `key`.

    Raises DownloadError (see the module's docstring: `quarantined` None means try again later)
    or StoreFullError. At most `policy.attempts` GETs (plus redirects) are made, waiting as the
    policy says between them; never loops. `timeout`: seconds one GET may stall.
    """
    allowed = frozenset(allowed_hosts)
    check_media_url(url, allowed)
    store.clips.mkdir(parents=True, exist_ok=True)
    attempts = max(1, policy.attempts)
    last: DownloadError | None = None
    with httpx.Client(
        # trust_env: proxies and SSL_CERT_FILE apply; no auth of any kind is configured
        timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
        follow_redirects=False,
        headers={"Accept-Encoding": "identity", "User-Agent": "shotflow"},
    ) as client:
        for attempt in range(1, attempts + 1):
            with full_disk_names(store.clips):
                fd, tmp = tempfile.mkstemp(dir=store.clips, prefix=f".{key}.", suffix=".part")
            part = Path(tmp)
            try:
                with full_disk_names(store.clips):
                    with os.fdopen(fd, "wb") as fh:
                        _fetch(client, url, fh, allowed, max_bytes)
                        fh.flush()
                        os.fsync(fh.fileno())
                problem, verdict = _verify(part, expected_seconds, tolerance)
                if problem is None:
                    return store.put(key, part)
                if verdict == "keep" or (verdict == "again" and attempt == attempts):
                    tried = "" if verdict == "keep" else f" (download {attempt} of {attempts})"
                    kept = store.quarantine(key, part, problem + tried)
                    raise DownloadError(
                        f"{_redact(url)}: {problem}{tried}; the paid clip is kept aside at {kept}",
                        reason=problem + tried,
                        quarantined=kept,
                    )
                last = _failure(url, problem)
            except DownloadError as exc:
                if exc.quarantined is not None:
                    raise
                last = exc
            finally:
                part.unlink(missing_ok=True)
            if last.refused or attempt == attempts:
                break
            if on_retry:
                on_retry(attempt, str(last))
            time.sleep(policy.wait(attempt))
    assert last is not None
    raise last


def _verify(part: Path, expected_seconds: float | None, tolerance: float) -> tuple[str | None, str]:
    """What is wrong with a complete copy (None if nothing) and what to do about it:
    "later" (not a video at all: an error page served as 200, not the paid clip; try again later),
    "again" (a broken stream: fetch it again, keep the last copy aside), "keep" (the wrong length:
    the media itself is like that, keep it aside at once)."""

    def why(exc: MediaError) -> str:
        return str(exc).replace(f"{part}: ", "").replace(str(part), "the download")

    try:
        probe.probe(part)
    except MediaError as exc:
        return f"not a video: {why(exc)}", "later"
    try:
        info = probe.verify(part)
    except MediaError as exc:
        # a truncated faststart file passes a plain probe; fetching it again costs nothing
        return why(exc), "again"
    if expected_seconds is not None and abs(info.duration - expected_seconds) > tolerance:
        return f"lasts {info.duration:.2f} s, expected {expected_seconds:g} s (±{tolerance:g} s)", "keep"
    return None, "keep"


def _fetch(client: httpx.Client, url: str, fh, allowed: frozenset[str], max_bytes: int) -> int:
    """Stream `url` into `fh`, following redirects only to allowed https hosts."""
    for _ in range(MAX_REDIRECTS + 1):
        try:
            with client.stream("GET", url) as response:
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise _failure(url, f"redirect ({response.status_code}) without a location", status=response.status_code)
                    url = urljoin(url, location)
                    check_media_url(url, allowed)
                    continue
                _check_status(url, response)
                declared = response.headers.get("content-length")
                cap = f"the {max_bytes}-byte cap (SHOTFLOW_MAX_DOWNLOAD_BYTES)"
                if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                    raise _failure(url, f"{int(declared)} bytes is over {cap}", refused=True)
                received = 0
                for chunk in response.iter_bytes(CHUNK):
                    received += len(chunk)
                    if received > max_bytes:
                        raise _failure(url, f"more than {cap}", refused=True)
                    fh.write(chunk)
                raw = response.num_bytes_downloaded
                if declared is not None and declared.isdigit() and raw != int(declared):
                    raise _failure(url, f"cut short: got {raw} of {declared} bytes")
                if received == 0:
                    raise _failure(url, "empty response")
                return received
        except httpx.HTTPError as exc:
            raise _failure(url, f"download cut off ({type(exc).__name__}: {_scrub(str(exc), url)})") from None
    raise _failure(url, f"more than {MAX_REDIRECTS} redirects", refused=True)


def _check_status(url: str, response: httpx.Response) -> None:
    code = response.status_code
    if code == 200:
        return
    if code in (404, 410):
        reason = f"the media host answered {code} (not there, or no longer: fal keeps media for a limited time)"
    else:
        reason = f"the media host answered {code}"
    raise _failure(url, reason, status=code)


def _failure(url: str, reason: str, *, status: int | None = None, refused: bool = False, prefix: str = "") -> DownloadError:
    """A "try again later" DownloadError; `refused`: not again in this call (a setting must change)."""
    where = f"{prefix} {_redact(url)}" if prefix else _redact(url)
    return DownloadError(f"{where}: {reason}", reason=reason, status=status, refused=refused)


def _redact(url: str) -> str:
    """The URL without its query: signed media URLs carry their credentials there."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _scrub(text: str, url: str) -> str:
    query = urlsplit(url).query
    return text.replace(query, "…") if query else text


def _has_port(entry: str) -> bool:
    name, sep, port = entry.rpartition(":")
    return bool(sep) and port.isdigit() and not _is_ip(entry)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
        return True
    except ValueError:
        return False
