"""How many generations a run has in flight: overall, per model, and (with a server) per account.

Semaphores are kept per run, in this process (shotflow.generation.limits), so every task of a run shares them. When a
Prefect server is used, a global concurrency limit on top bounds all runs of all workers.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

# the per-run semaphores live in the core, shared with the CLI's early start (no Prefect there)
from shotflow.generation.limits import RunLimits, close_limits, limits_for, open_limits  # noqa: F401

# seconds a held slot of the global limit outlives its holder's last renewal (Prefect renews it
# every 3/4 of this while held): a worker killed mid-request frees its slots for the others this
# soon. Prefect's shortest; its default, 300 s, held a dead machine's slots for five minutes.
SLOT_LEASE_SECONDS = 60


def uses_server() -> bool:
    """True when runs report to a shared Prefect server (not the embedded one, nor the private one
    `shotflow run` starts for itself: it holds no account-wide limit)."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL")
    return bool(url) and url != os.environ.get("SHOTFLOW_PRIVATE_PREFECT_API")


@contextmanager
def account_slot(limit_name: str) -> Iterator[None]:
    """Hold one slot of the server's global concurrency limit while a fal request is in flight."""
    if not uses_server():
        yield
        return
    from prefect.concurrency.sync import concurrency

    with concurrency(limit_name, occupy=1, strict=False, lease_duration=SLOT_LEASE_SECONDS):
        yield
