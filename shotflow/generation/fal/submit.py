"""The one POST that can cost money, and its three outcomes; `fal_client_internals` here is the
only function that touches fal_client's private names (`SyncClient._client`, `QUEUE_URL_FORMAT`).

`send_submit` sends the submit through fal_client's own httpx client (its auth header, its
backup-domain transport) to the URL fal_client would use, exactly once per POST: fal_client's
`submit` re-sends it after any transport error, also after fal accepted the job and only its
answer was lost, which pays for a job nobody hears of, and fal has no idempotency key.

| answer | outcome | billed |
|---|---|---|
| error raised before the request left (connect refused/timeout, DNS, TLS, pool timeout: asked again in the call with backoff, then Refused (transient); an invalid header such as a key with a newline, an unsupported URL: Refused (permanent)) | Refused | no |
| 408, 429, 503 | asked again in the call with backoff, then Refused (transient) | no |
| other 4xx (400, 401, 403, 404, 413, 422 ...) | Refused (permanent) with fal's reason | no |
| 2xx with a readable request_id (its status/response/cancel URLs when given, else reached by id) | Accepted | yes |
| 2xx unreadable (bad Content-Encoding, not JSON, no request id) | Uncertain | maybe |
| 500, 502, 504 (gateway or app), any other status | Uncertain | maybe |
| connection lost / read timeout / remote protocol error after sending | Uncertain | maybe |

Status polls, result fetches and cancels go to URLs on fal's queue host only (the key travels
with them): `request_handle` uses the URLs of fal's answer when they are https on that host,
else the by-id form. Those calls keep fal_client's own retries (shotflow.generation.retry says
which layer retries what).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

import fal_client
import fal_client.client
import httpx
from fal_client import SyncRequestHandle

from shotflow.generation.fal.errors import Scrub, fal_reason
from shotflow.generation.retry import RetryPolicy

# answers that say fal did not take the job and to come back later: asked again in the call
SUBMIT_NOT_TAKEN = (408, 429, 503)
# raised before the request left this machine: fal cannot have the job
NOT_SENT_NETWORK = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
NOT_SENT_LOCAL = (httpx.LocalProtocolError, httpx.UnsupportedProtocol, httpx.InvalidURL)
TIMEOUT_HEADER = "X-Fal-Request-Timeout"  # fal_client._headers.REQUEST_TIMEOUT_HEADER


@dataclass(frozen=True)
class Accepted:
    """fal took the job (and bills it): its id and URLs (None: not in fal's answer, the request is
    reached by id), to journal at once."""

    request_id: str
    status_url: str | None
    response_url: str | None
    cancel_url: str | None


URL_FIELDS = ("status_url", "response_url", "cancel_url")


@dataclass(frozen=True)
class Refused:
    """fal did not take the job: nothing billed. `status` is fal's HTTP answer (None when the
    request never left), `detail` fal's reason; `permanent`: sending the same again cannot help."""

    reason: str
    permanent: bool
    status: int | None = None
    detail: Any = None


@dataclass(frozen=True)
class Uncertain:
    """The POST may have reached fal and nobody knows the id: fal may bill it."""

    reason: str


Outcome = Accepted | Refused | Uncertain


def fal_client_internals(fal: fal_client.SyncClient | None = None, *, close: bool = False) -> tuple[str, httpx.Client | None]:
    """fal's queue URL prefix, and `fal`'s authenticated httpx client (its auth header, its
    backup-domain transport; opened on first use), or None without `fal`. With `close`, the
    client is closed instead, if one is open (a later call opens another), and None returned.

    THE one function that touches fal_client's private names (`fal_client.client.QUEUE_URL_FORMAT`,
    the cached property `SyncClient._client`); tests/test_job.py fails loudly the day they change."""
    queue_url = fal_client.client.QUEUE_URL_FORMAT
    if fal is None:
        return queue_url, None
    if close:
        client = fal.__dict__.pop("_client", None)
        if client is not None:
            client.close()
        return queue_url, None
    return queue_url, fal._client


def queue_host() -> str:
    """fal's queue host (host:port), the only host the key is sent to."""
    return urlsplit(fal_client_internals()[0]).netloc


def on_queue_host(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    return parts.scheme == "https" and parts.netloc == queue_host()


def close_client(fal: fal_client.SyncClient) -> None:
    """Close fal_client's connections if it opened any; a later call opens new ones."""
    fal_client_internals(fal, close=True)


def send_submit(
    fal: fal_client.SyncClient,
    endpoint: str,
    body: dict[str, Any],
    *,
    start_timeout: float | None,
    policy: RetryPolicy,
    before_send: Callable[[], None] = lambda: None,
    on_retry: Callable[[str], None] = lambda why: None,
    scrub: Scrub = lambda text: text,
    sleep: Callable[[float], Any] = time.sleep,
) -> Outcome:
    """POST the submit, each time exactly once, and say what became of it (see the table).

    `before_send` is called before every POST (it may raise, e.g. to stop after Ctrl-C); a
    refusal that says "come back later" (408/429/503, no connection made) is asked again as
    `policy` says, then returned.
    """
    headers = {} if start_timeout is None else {TIMEOUT_HEADER: str(float(start_timeout))}
    failures = 0
    while True:
        before_send()
        try:
            queue_url, client = fal_client_internals(fal)  # opening the client encodes the key's header
            response = client.post(queue_url + endpoint, json=body, headers=headers, timeout=fal.default_timeout)
        except (*NOT_SENT_LOCAL, UnicodeEncodeError) as exc:  # e.g. a header httpx refuses to encode
            # its text may quote the refused header (the key, escaped past any scrubbing): never shown
            return Refused(
                f"the submit could not be sent ({type(exc).__name__}: a request httpx refuses to send, e.g. a key "
                "with a line break or a non-ASCII character in it; check FAL_KEY); nothing left this machine",
                permanent=True,
            )
        except NOT_SENT_NETWORK as exc:
            failures += 1
            why = f"could not reach fal ({_describe(exc, scrub)}); nothing was sent"
            if not policy.again(failures):
                return Refused(why + (f" ({failures} tries)" if failures > 1 else ""), permanent=False)
            on_retry(f"{why}; trying again")
            sleep(policy.wait(failures))
            continue
        except httpx.HTTPError as exc:
            # sent (or partly sent): fal may have the job, and its answer is lost or unreadable
            return Uncertain(f"the answer was lost or unreadable: {_describe(exc, scrub)}")
        code = response.status_code
        if code in SUBMIT_NOT_TAKEN:
            failures += 1
            if not policy.again(failures):
                return Refused(
                    f"fal answered {code} to the submit {failures} times: {scrub(_detail(response))}",
                    permanent=False,
                    status=code,
                )
            on_retry(f"fal answered {code} to the submit; asking again")
            sleep(policy.wait(failures))
            continue
        break
    if 400 <= code < 500:
        detail = _detail_of(response)
        return Refused(scrub(fal_reason(detail)), permanent=True, status=code, detail=detail)
    if not 200 <= code < 300:
        return Uncertain(f"fal answered {code} ({scrub(_detail(response))[:200]})")
    try:
        data = response.json()
        request_id = data["request_id"]
    except (ValueError, KeyError, TypeError) as exc:
        return Uncertain(f"fal answered {code} without a usable request id ({type(exc).__name__})")
    if not isinstance(request_id, str) or not request_id.strip():
        return Uncertain(f"fal answered {code} without a usable request id")
    # a missing or odd URL is not a lost job: its request is then reached by id (request_handle)
    urls = {name: data.get(name) if isinstance(data.get(name), str) else None for name in URL_FIELDS}
    return Accepted(request_id=request_id, **urls)


def request_handle(
    fal: fal_client.SyncClient,
    endpoint: str,
    request_id: str,
    *,
    status_url: str | None = None,
    response_url: str | None = None,
    cancel_url: str | None = None,
) -> SyncRequestHandle:
    """fal_client's handle of a request, at the URLs fal answered when they are all https on the
    queue host (they keep a namespace or subpath the by-id form drops), else by id."""
    _, client = fal_client_internals(fal)
    urls = (status_url, response_url, cancel_url)
    if all(on_queue_host(u) for u in urls):
        return SyncRequestHandle(
            request_id=request_id, status_url=status_url, response_url=response_url, cancel_url=cancel_url, client=client
        )
    return SyncRequestHandle.from_request_id(client, endpoint, request_id)


def _detail_of(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        return response.text
    return body.get("detail", response.text) if isinstance(body, dict) else response.text


def _detail(response: httpx.Response) -> str:
    try:
        return fal_reason(_detail_of(response))
    except Exception:
        return "unreadable answer"


def _describe(exc: BaseException, scrub: Scrub) -> str:
    text = scrub(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
