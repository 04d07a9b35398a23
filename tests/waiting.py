"""Bounded waits for tests that start real processes: poll something observable until it holds,
and fail saying what was awaited (with the process's own log) instead of hanging."""

from __future__ import annotations

import time

import pytest


def wait_for(what: str, check, timeout: float = 120, interval: float = 0.5, diagnostics=lambda: ""):
    """`check()`'s first truthy value, polled every `interval` s for at most `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{diagnostics()}")


BUSY = (429, 502, 503)  # what a loaded Prefect server answers while SQLite is busy; its own client retries these


def api(method: str, url: str, timeout: float = 60, **kwargs):
    """One call to a Prefect server's REST API, retried like Prefect's client retries it: a busy
    answer (429/502/503) or a dropped connection is tried again for at most `timeout` s; any other
    answer is returned, checked with raise_for_status."""
    import httpx

    deadline = time.monotonic() + timeout
    delay = 0.5
    while True:
        try:
            answer = httpx.request(method, url, timeout=30, **kwargs)
            if answer.status_code not in BUSY:
                return answer.raise_for_status()
            problem = f"{answer.status_code} {answer.text[:200]}"
        except httpx.TransportError as e:
            problem = repr(e)
        if time.monotonic() + delay > deadline:
            pytest.fail(f"{method} {url}: Prefect still answered {problem} after {timeout:.0f} s")
        time.sleep(delay)
        delay = min(delay * 2, 5)
