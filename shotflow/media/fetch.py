"""Fetching a still from an https URL (a storyboard's `image:`): one GET, bounded in size and time.

Redirects are followed only to https URLs. A failure is a `FrameError` naming the URL (without
its query: a signed URL's credentials never reach a message), `transient` when trying again may
help (no connection, a timeout, a 5xx, 408, 429), not when the answer is wrong (another 4xx, too
large).
"""

from __future__ import annotations

import httpx

from shotflow.media.frames import FrameError

# answers (with any 5xx) that may pass if the still is fetched again later. Its own set, not fal's
# (media/ does not import generation/; fal's are in shotflow.generation.fal.errors and .submit)
FETCH_TRANSIENT = (408, 429)


def fetch_bytes(url: str, *, timeout: float, max_bytes: int, shown: str) -> bytes:
    """The body of `url`; `shown` is how the URL is named in messages."""

    def https_only(request: httpx.Request) -> None:
        if request.url.scheme != "https":
            raise FrameError(f"the image at {shown} redirects to a URL that is not https; it is not fetched")

    what = f"the image at {shown}"
    try:
        with httpx.Client(
            follow_redirects=True,
            max_redirects=5,
            timeout=httpx.Timeout(timeout, connect=min(15.0, timeout)),
            event_hooks={"request": [https_only]},
        ) as client:
            with client.stream("GET", url, headers={"Accept": "image/*"}) as response:
                code = response.status_code
                if code >= 400:
                    transient = code >= 500 or code in FETCH_TRANSIENT
                    raise FrameError(f"could not fetch {what}: the server answered {code}", transient=transient)
                declared = response.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise FrameError(f"{what} is {declared} bytes, over the {max_bytes} bytes a still may have")
                chunks, received = [], 0
                for chunk in response.iter_bytes():
                    received += len(chunk)
                    if received > max_bytes:
                        raise FrameError(f"{what} is over the {max_bytes} bytes a still may have")
                    chunks.append(chunk)
    except httpx.TooManyRedirects:
        raise FrameError(f"could not fetch {what}: too many redirects") from None
    except httpx.TransportError as exc:
        detail = str(exc).strip()[:200]
        raise FrameError(
            f"could not fetch {what} ({type(exc).__name__}{': ' + detail if detail else ''})", transient=True
        ) from None
    except httpx.HTTPError as exc:
        raise FrameError(f"could not fetch {what} ({type(exc).__name__})") from None
    if not received:
        raise FrameError(f"{what} is empty")
    return b"".join(chunks)
