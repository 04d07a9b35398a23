"""Fetching a generated clip from fal's media host into the clip store, verified.

The URL comes from fal's result, so it is checked like any input: https only, and only hosts the
settings allow (`Settings.allowed_media_hosts`; an entry `host` matches that host and its
subdomains on any port, an entry `host:port` only that port; IP addresses match exactly). It is
fetched with a plain httpx client, never fal_client's, which would send the fal key along.

The body streams to a `.part` file next to the store (constant memory), capped in size, its
length checked against Content-Length, then probed packet by packet (a truncated faststart mp4
passes a plain probe) and renamed into the store. A cut or damaged download is fetched again
from the same URL a few times with backoff: the clip is paid for, generating it again is not an
option here.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urljoin, urlsplit

import httpx

from shotflow import probe
from shotflow.clipstore import ClipStore
from shotflow.errors import DownloadError, MediaError

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
    """DownloadError (permanent) unless `url` is https on an allowed host."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise DownloadError(f"refusing to download {_redact(url)}: only https media URLs are fetched", transient=False)
    if not host_allowed(url, allowed):
        raise DownloadError(
            f"refusing to download from {parts.netloc or '?'}: not an allowed media host "
            f"(allowed: {', '.join(sorted(allowed))}; add it to SHOTFLOW_MEDIA_HOSTS if you trust it)",
            transient=False,
        )


def download_clip(
    url: str,
    store: ClipStore,
    key: str,
    *,
    allowed_hosts: Iterable[str],
    max_bytes: int,
    expected_seconds: float | None = None,
    tolerance: float = 0.5,
    attempts: int = 4,
    backoff: float = 1.0,
    timeout: float = 60.0,
    on_retry: OnRetry | None = None,
) -> Path:
    """Download `url`, verify it, move it into the store as clip `key`; return its path.

    Raises DownloadError: `transient` when the last failure was the network, the server or a
    damaged copy (fetching again later may help), permanent when the URL is refused, too big
    or gone.
    """
    allowed = frozenset(allowed_hosts)
    check_media_url(url, allowed)
    store.clips.mkdir(parents=True, exist_ok=True)
    last: DownloadError | None = None
    with httpx.Client(
        # trust_env: proxies and SSL_CERT_FILE apply; no auth of any kind is configured
        timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
        follow_redirects=False,
        headers={"Accept-Encoding": "identity", "User-Agent": "shotflow"},
    ) as client:
        for attempt in range(1, attempts + 1):
            fd, tmp = tempfile.mkstemp(dir=store.clips, prefix=f".{key}.", suffix=".part")
            part = Path(tmp)
            try:
                with os.fdopen(fd, "wb") as fh:
                    _fetch(client, url, fh, allowed, max_bytes)
                    fh.flush()
                    os.fsync(fh.fileno())
                try:
                    probe.verify(part, expected_seconds=expected_seconds, tolerance=tolerance)
                except MediaError as exc:
                    # complete by Content-Length yet damaged (a truncated faststart file passes a
                    # plain probe): fetch it again; trying costs nothing, regenerating would
                    why = str(exc).replace(str(part), "the download")
                    raise DownloadError(f"{_redact(url)}: {why}", transient=True) from None
                return store.put(key, part)
            except DownloadError as exc:
                last = exc
            finally:
                part.unlink(missing_ok=True)
            if not last.transient or attempt == attempts:
                break
            if on_retry:
                on_retry(attempt, str(last))
            time.sleep(backoff * 2 ** (attempt - 1))
    assert last is not None
    raise last


def _fetch(client: httpx.Client, url: str, fh, allowed: frozenset[str], max_bytes: int) -> int:
    """Stream `url` into `fh`, following redirects only to allowed https hosts."""
    for _ in range(MAX_REDIRECTS + 1):
        try:
            with client.stream("GET", url) as response:
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise DownloadError(f"{_redact(url)}: redirect without a location", transient=False)
                    url = urljoin(url, location)
                    check_media_url(url, allowed)
                    continue
                _check_status(url, response)
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                    raise DownloadError(
                        f"{_redact(url)}: {int(declared)} bytes is over the {max_bytes}-byte cap "
                        "(SHOTFLOW_MAX_DOWNLOAD_BYTES)",
                        transient=False,
                    )
                received = 0
                for chunk in response.iter_bytes(CHUNK):
                    received += len(chunk)
                    if received > max_bytes:
                        raise DownloadError(
                            f"{_redact(url)}: more than the {max_bytes}-byte cap (SHOTFLOW_MAX_DOWNLOAD_BYTES)", transient=False
                        )
                    fh.write(chunk)
                raw = response.num_bytes_downloaded
                if declared is not None and declared.isdigit() and raw != int(declared):
                    raise DownloadError(f"{_redact(url)}: got {raw} of {declared} bytes", transient=True)
                if received == 0:
                    raise DownloadError(f"{_redact(url)}: empty response", transient=True)
                return received
        except httpx.HTTPError as exc:
            raise DownloadError(f"{_redact(url)}: download cut off ({type(exc).__name__}: {exc})", transient=True) from None
    raise DownloadError(f"{_redact(url)}: more than {MAX_REDIRECTS} redirects", transient=False)


def _check_status(url: str, response: httpx.Response) -> None:
    code = response.status_code
    if code == 200:
        return
    if code == 429 or code >= 500 or code == 408:
        raise DownloadError(f"{_redact(url)}: the media host answered {code}", transient=True)
    if code in (404, 410):
        raise DownloadError(f"{_redact(url)}: gone ({code}); fal keeps media for a limited time", transient=False)
    raise DownloadError(f"{_redact(url)}: the media host answered {code}", transient=False)


def _redact(url: str) -> str:
    """The URL without its query: signed media URLs carry their credentials there."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _has_port(entry: str) -> bool:
    name, sep, port = entry.rpartition(":")
    return bool(sep) and port.isdigit() and not _is_ip(entry)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
        return True
    except ValueError:
        return False
