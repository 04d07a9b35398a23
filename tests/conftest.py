"""Every test runs isolated: its own Prefect home, clip store and no key of the user's."""

from __future__ import annotations

import os
import sys
import tempfile

import pytest

_HOME = tempfile.mkdtemp(prefix="shotflow-tests-prefect-")

# the fake fal queue must be up, and fal_client pointed at it, before anything imports fal_client
pytest_plugins = ["fakefal"]


def pytest_configure(config):
    # before anything imports prefect or fal_client: both read their settings at import
    os.environ["PREFECT_HOME"] = _HOME
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "WARNING"
    # a fresh PREFECT_HOME's first start migrates its database: 26-28 s on a busy 2-core machine
    os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "600"
    for name in ("PREFECT_API_URL", "PREFECT_API_KEY", "FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET", "SHOTFLOW_FAL_KEY_BLOCK"):
        os.environ.pop(name, None)


def pytest_unconfigure(config):
    """Prefect's temporary server (a flow run in a test's own process, with no API URL, starts one)
    is stopped at the interpreter's exit, which a test worker's end may not reach (one was found
    still running after a CI run): stopped here too."""
    server = sys.modules.get("prefect.server.api.server")
    if server is not None:
        for instance in list(server.SubprocessASGIServer._instances.values()):
            instance.stop()


@pytest.fixture(autouse=True)
def clip_store(tmp_path, monkeypatch):
    """A fresh clip store and job journal for each test."""
    cache = tmp_path / "shotflow-cache"
    monkeypatch.setenv("SHOTFLOW_CACHE_DIR", str(cache))
    return cache
