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
import time
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
    its REST API as Prefect's own client takes them (increment-with-lease, renewed while held,
    decrement-with-lease), without importing Prefect. A limit the server does not have bounds
    nothing, as with Prefect (`strict=False`). Auth from the environment, as Prefect sends it:
    PREFECT_API_AUTH_STRING (basic), else PREFECT_API_KEY (a bearer token). Called as a
    `RequestSlot`. Once closed, no slot is taken any more and those still held are given back."""

    def __init__(self, api_url: str, name: str, *, timeout: float = 10.0):
        import httpx

        self.api = api_url.rstrip("/")
        self.name = name
        self.bounded: bool | None = None  # whether the server has the limit (answers() tells)
        headers = {}
        if os.environ.get("PREFECT_API_AUTH_STRING"):
            headers["Authorization"] = "Basic " + base64.b64encode(os.environ["PREFECT_API_AUTH_STRING"].encode()).decode()
        elif os.environ.get("PREFECT_API_KEY"):
            headers["Authorization"] = f"Bearer {os.environ['PREFECT_API_KEY']}"
        self.http = httpx.Client(headers=headers, timeout=timeout)
        self._turn = threading.Lock()  # one increment at a time
        self._held: set[str] = set()  # leases not given back yet
        self._state = threading.Lock()  # guards _held against close()
        self._closed = threading.Event()

    def answers(self) -> bool:
        """Whether the server takes these calls (reads the limit: one it does not have is fine)."""
        import httpx

        try:
            answer = self.http.get(f"{self.api}/v2/concurrency_limits/{quote(self.name, safe='')}")
        except httpx.HTTPError:
            return False
        self.bounded = answer.status_code == 200
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
        held (the server answers 423 and when to ask again); a stop, or close(), ends the wait
        sending nothing (a lease granted meanwhile is given back). One increment at a time, as
        Prefect's client asks: increments sent at once make the server's database answer 503."""
        waiting = ShotEvent(label, "waiting", f"the Prefect server's '{self.name}' limit is full")
        said = not self._turn.acquire(timeout=0.5)
        if said:  # others wait for the limit before this one
            emit(waiting)
            self._turn.acquire()
        try:
            while True:
                self._check(label)
                answer = self._post(
                    "increment-with-lease",
                    {"names": [self.name], "slots": 1, "mode": "concurrency", "lease_duration": SLOT_LEASE_SECONDS},
                    label,
                )
                if answer.status_code != 423:
                    answer.raise_for_status()
                    data = answer.json()
                    if not data.get("limits"):
                        return None
                    lease = str(data["lease_id"])
                    with self._state:
                        if not (self._closed.is_set() or interrupt.stop_requested()):
                            self._held.add(lease)
                            return lease
                    self._give_back(lease)
                    raise interrupt.Interrupted(label)
                if not said:
                    emit(waiting)
                    said = True
                self._pause(_seconds(answer.headers.get("Retry-After")))
        finally:
            self._turn.release()

    def _check(self, label: str) -> None:
        if interrupt.stop_requested() or self._closed.is_set():
            raise interrupt.Interrupted(label)

    def _pause(self, seconds: float) -> None:
        """Sleep up to `seconds`, waking at once on a stop or close()."""
        deadline = time.monotonic() + seconds
        while not (interrupt.stop_requested() or self._closed.is_set()):
            left = deadline - time.monotonic()
            if left <= 0 or interrupt.wait(min(left, 0.25)):
                return

    def _post(self, path: str, body: dict, label: str | None = None, tries: int = 5):
        """POST to the limits API; a busy server (429, 502, 503, 504, no answer) is asked again after
        0.25, 0.5, 1, 2 s, as Prefect's client retries. With a `label` (a slot being taken) a stop
        ends those waits (Interrupted: nothing was taken); a lease's renewal or release goes on."""
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
            if label is None:
                time.sleep(0.25 * 2**attempt)
            elif interrupt.wait(0.25 * 2**attempt):
                raise interrupt.Interrupted(label, "stopped while the Prefect server was busy: nothing paid")
        raise AssertionError("unreachable")

    def _renew(self, lease: str, released: threading.Event) -> None:
        """Renew the lease every third of its length until it is released, so one or two failed
        renewals (a busy server) do not let it lapse while its request is on fal."""
        while not released.wait(SLOT_LEASE_SECONDS / 3) and not self._closed.is_set():
            try:
                self._post(f"leases/{lease}/renew", {"lease_duration": SLOT_LEASE_SECONDS})
            except Exception:
                pass  # tried again at the next turn

    def _release(self, lease: str) -> None:
        """Give the slot back (not in turn with the increments: a waiting one needs it), once:
        close() may have given it back already."""
        with self._state:
            if lease not in self._held:
                return
            self._held.discard(lease)
        self._give_back(lease)

    def _give_back(self, lease: str) -> None:
        try:
            self._post("decrement-with-lease", {"lease_id": lease}, tries=3)
        except Exception:
            pass  # the lease lapses on the server within SLOT_LEASE_SECONDS

    def close(self) -> None:
        """No slot is taken from now on; those still held are given back (their holders have been
        stopped, or the process ends), then the connection is closed. Safe to call twice."""
        with self._state:
            self._closed.set()
            held, self._held = list(self._held), set()
        for lease in held:
            self._give_back(lease)
        self.http.close()


def _seconds(retry_after: str | None) -> float:
    """The server's Retry-After, in seconds (1 when missing or not a number)."""
    try:
        return max(0.0, float(retry_after or 1))
    except ValueError:
        return 1.0
