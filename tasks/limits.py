"""How many generations a run has in flight: overall, per model, and (with a server) per account.

Semaphores are kept per run, in this process (shotflow.generation.limits), so every task of a run
shares them. When a Prefect server is used, a global concurrency limit on top bounds all runs of
all workers: one slot is held while a request is on fal (`account_slot`, given to the backend as
its `request_slot`: a store hit takes none). `ServerSlots` takes the same slots over the server's
REST API, for `shotflow run`'s early start, which sends its requests before Prefect is imported.
"""

from __future__ import annotations

import base64
import os
import threading
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import quote

from shotflow import interrupt

# the per-run semaphores live in the core, shared with the CLI's early start (no Prefect there)
from shotflow.generation.limits import RunLimits, close_limits, limits_for, open_limits  # noqa: F401
from shotflow.model import OnEvent, RequestSlot, ShotEvent
from shotflow.settings import Settings

# seconds a held slot of the global limit outlives its holder's last renewal (renewed every 3/4 of
# this while held): a worker killed mid-request frees its slots for the others this soon. Prefect's
# shortest; its default, 300 s, held a dead machine's slots for five minutes.
SLOT_LEASE_SECONDS = 60


def uses_server() -> bool:
    """True when runs report to a shared Prefect server (not the embedded one, nor the private one
    `shotflow run` starts for itself: it holds no account-wide limit)."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL")
    return bool(url) and url != os.environ.get("SHOTFLOW_PRIVATE_PREFECT_API")


def account_slot(settings: Settings) -> RequestSlot | None:
    """A slot of the server's global concurrency limit (`settings.concurrency_limit_name`) held
    while a request is on fal, taken through Prefect; None without a shared server."""
    if not uses_server():
        return None
    name = settings.concurrency_limit_name

    @contextmanager
    def slot(label: str, emit: OnEvent) -> Iterator[None]:
        from prefect.concurrency.sync import concurrency

        with concurrency(name, occupy=1, strict=False, lease_duration=SLOT_LEASE_SECONDS):
            yield

    return slot


class ServerSlots:
    """Slots of the global concurrency limit `name` of the Prefect server at `api_url`, taken over
    its REST API as Prefect's own client takes them (increment-with-lease, renewed every 3/4 of the
    lease, decrement-with-lease), without importing Prefect. A limit the server does not have
    bounds nothing, as with Prefect (`strict=False`). Auth: PREFECT_API_KEY (a bearer token) or
    PREFECT_API_AUTH_STRING (basic), as Prefect sends them. Called as a `RequestSlot`."""

    def __init__(self, api_url: str, name: str, *, timeout: float = 10.0):
        import httpx

        self.api = api_url.rstrip("/")
        self.name = name
        headers = {}
        if os.environ.get("PREFECT_API_KEY"):
            headers["Authorization"] = f"Bearer {os.environ['PREFECT_API_KEY']}"
        elif os.environ.get("PREFECT_API_AUTH_STRING"):
            headers["Authorization"] = "Basic " + base64.b64encode(os.environ["PREFECT_API_AUTH_STRING"].encode()).decode()
        self.http = httpx.Client(headers=headers, timeout=timeout)
        self._turn = threading.Lock()

    def answers(self) -> bool:
        """Whether the server takes these calls (reads the limit: one it does not have is fine)."""
        import httpx

        try:
            answer = self.http.get(f"{self.api}/v2/concurrency_limits/{quote(self.name, safe='')}")
        except httpx.HTTPError:
            return False
        return answer.status_code in (200, 404)

    @contextmanager
    def __call__(self, label: str, emit: OnEvent) -> Iterator[None]:
        lease = self._acquire(label, emit)
        released = threading.Event()
        if lease is not None:
            threading.Thread(target=self._renew, args=(lease, released), name=f"shotflow-lease-{label}", daemon=True).start()
        try:
            yield
        finally:
            released.set()
            if lease is not None:
                self._release(lease)

    def _acquire(self, label: str, emit: OnEvent) -> str | None:
        """The lease of one slot (None: the server has no such limit), waiting while they are all
        held (the server answers 423 and when to ask again); a stop ends the wait, sending nothing.
        One request at a time, as Prefect's client asks: increments sent at once make the server's
        database answer 503."""
        said = False
        with self._turn:
            while True:
                if interrupt.stop_requested():
                    raise interrupt.Interrupted(label)
                answer = self._post(
                    "increment-with-lease",
                    {"names": [self.name], "slots": 1, "mode": "concurrency", "lease_duration": SLOT_LEASE_SECONDS},
                    label,
                )
                if answer.status_code != 423:
                    answer.raise_for_status()
                    data = answer.json()
                    return str(data["lease_id"]) if data.get("limits") else None
                if not said:
                    emit(ShotEvent(label, "waiting", f"the Prefect server's '{self.name}' limit is full"))
                    said = True
                interrupt.wait(float(answer.headers.get("Retry-After", 1)))

    def _post(self, path: str, body: dict, label: str = "", tries: int = 5):
        """POST to the limits API; a busy server (429, 502, 503, 504, no answer) is asked again after
        0.25, 0.5, 1, 2 s, as Prefect's client retries (a stop ends the waits)."""
        import httpx

        for attempt in range(tries):
            try:
                answer = self.http.post(f"{self.api}/v2/concurrency_limits/{path}", json=body)
            except httpx.TransportError:
                if attempt == tries - 1:
                    raise
            else:
                if answer.status_code not in (429, 502, 503, 504) or attempt == tries - 1:
                    return answer
            if interrupt.wait(0.25 * 2**attempt):
                break
        raise interrupt.Interrupted(label, "stopped while the Prefect server was busy: nothing paid")

    def _renew(self, lease: str, released: threading.Event) -> None:
        """Renew the lease until it is released (a failed renewal is tried again next time; a lease
        that lapsed meanwhile frees its slot on the server, as with Prefect's non-strict slots)."""
        while not released.wait(SLOT_LEASE_SECONDS * 0.75):
            try:
                self._post(f"leases/{lease}/renew", {"lease_duration": SLOT_LEASE_SECONDS})
            except Exception:
                pass

    def _release(self, lease: str) -> None:
        """Free the slot (not in turn with the increments: a waiting one needs it); a release that
        fails lapses on the server within SLOT_LEASE_SECONDS."""
        try:
            self._post("decrement-with-lease", {"lease_id": lease})
        except Exception:
            pass

    def close(self) -> None:
        self.http.close()
