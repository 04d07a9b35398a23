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
