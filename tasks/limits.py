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
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from typing import Iterator

from shotflow import interrupt

# the per-run semaphores live in the core, shared with the CLI's early start (no Prefect there)
from shotflow.generation.limits import RunLimits, close_limits, limits_for, open_limits  # noqa: F401
from shotflow.model import OnEvent, RequestSlot, ShotEvent
from shotflow.settings import Settings

# seconds a held slot of the global limit outlives its holder's last renewal (renewed while held:
# by Prefect every 3/4 of it, by ServerSlots every third): a worker killed mid-request frees its
# slots for the others this soon. Prefect's
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
        from prefect.logging import get_run_logger

        held = ExitStack()
        held.enter_context(concurrency(name, occupy=1, strict=False, lease_duration=SLOT_LEASE_SECONDS))
        try:
            yield
        finally:
            try:
                held.close()
            except Exception as exc:  # the clip is stored: a slot not given back does not fail the shot
                get_run_logger().warning(f"shot '{label}': its '{name}' slot was not given back ({exc}); it lapses")

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
        self.headers, self.timeout = headers, timeout
        self.http = httpx.Client(headers=headers, timeout=timeout)
        self._turn = threading.Lock()  # one increment at a time
        self._freed = threading.Event()  # a slot given back here: a waiting increment asks again
        self._held: set[str] = set()  # leases not given back yet
        self._state = threading.Lock()  # guards _held against close()
        self._closed = threading.Event()

    def answers(self) -> bool:
        """Whether the server takes these calls: a POST that changes nothing (lists its limits),
        so that auth or CSRF protection refusing POSTs is found before any shot is started."""
        import httpx

        try:
            answer = self._post("filter", {"offset": 0, "limit": 200}, tries=2)
            limits = answer.json() if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return False
        if not isinstance(limits, list):
            return False
        self.bounded = any(isinstance(limit, dict) and limit.get("name") == self.name for limit in limits)
        return True

    @contextmanager
    def __call__(self, label: str, emit: OnEvent) -> Iterator[None]:
        lease = self._acquire(label, emit)
        released = threading.Event()
        try:
            if lease is not None:
                threading.Thread(target=self._renew, args=(lease, released), name=f"shotflow-lease-{label}", daemon=True).start()
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
        waiting = ShotEvent(label, "waiting", f"of the Prefect server's '{self.name}' limit")
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
        """Sleep up to `seconds` (the server's Retry-After), waking at once on a stop, close(), or a
        slot given back by this process (the one waiting here may take it)."""
        self._freed.clear()
        deadline = time.monotonic() + seconds
        while not (interrupt.stop_requested() or self._closed.is_set()):
            left = deadline - time.monotonic()
            if left <= 0 or self._freed.wait(min(left, 0.25)):
                return

    def _post(self, path: str, body: dict, label: str | None = None, tries: int = 5):
        """POST to the limits API; a busy server (408, 429, 502, 503, 504, no answer) is asked again
        after its Retry-After, else 0.5, 1, 2, 4... s (Prefect's client waits longer: a slot's
        holder is not kept waiting that long). With a `label` (a slot being taken) a stop or close()
        ends those waits (Interrupted: nothing was taken); a lease's renewal or release goes on,
        after close() too (on a connection of its own)."""
        import httpx

        for attempt in range(tries):
            answer = None
            try:
                if self.http.is_closed:
                    if label is not None:
                        raise interrupt.Interrupted(label)
                    with httpx.Client(headers=self.headers, timeout=self.timeout) as own:
                        answer = own.post(f"{self.api}/v2/concurrency_limits/{path}", json=body)
                else:
                    answer = self.http.post(f"{self.api}/v2/concurrency_limits/{path}", json=body)
            except httpx.TransportError:
                if attempt == tries - 1:
                    raise
            except RuntimeError:  # closed by close() meanwhile
                if label is not None:
                    raise interrupt.Interrupted(label) from None
                continue
            if answer is not None and (answer.status_code not in (408, 429, 502, 503, 504) or attempt == tries - 1):
                return answer
            delay = _seconds(answer.headers.get("Retry-After"), 0.5 * 2**attempt) if answer is not None else 0.5 * 2**attempt
            if label is None:
                time.sleep(delay)
            elif interrupt.wait(delay) or self._closed.is_set():
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
        self._freed.set()

    def _give_back(self, lease: str) -> None:
        """Decrement the lease, asking a busy server again for about 15 s; one that still does not
        take it lets it lapse (SLOT_LEASE_SECONDS), which is said on stderr."""
        try:
            answer = self._post("decrement-with-lease", {"lease_id": lease}, tries=6)
            if answer.status_code < 300 or answer.status_code in (404, 410):  # given back, or gone already
                return
            reason = f"it answered {answer.status_code}"
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
        print(
            f"shotflow: a slot of the Prefect server's '{self.name}' limit was not given back ({reason}); "
            f"it frees itself within {SLOT_LEASE_SECONDS} s",
            file=sys.stderr,
        )

    def close(self) -> None:
        """No slot is taken from now on; those still held are given back (their holders have been
        stopped, or the process ends), then the connection is closed. Safe to call twice."""
        with self._state:
            self._closed.set()
            held, self._held = list(self._held), set()
        for lease in held:
            self._give_back(lease)
        self.http.close()


def _seconds(retry_after: str | None, default: float = 1.0) -> float:
    """The server's Retry-After, in seconds (`default` when missing or not a number)."""
    try:
        return max(0.0, float(retry_after)) if retry_after else default
    except ValueError:
        return default
