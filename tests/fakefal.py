"""A stand-in for fal's queue that the real fal_client talks to over HTTPS on 127.0.0.1.

It speaks the queue protocol as fal_client 1.x uses it (see shared/notes/fal-queue.md): submit
`POST /{endpoint}`, then `/{owner}/{alias}/requests/{id}` for the result, `/status` and
`/cancel`. Jobs take real (short) time: `queue_seconds` IN_QUEUE with a falling queue position,
then `run_seconds` IN_PROGRESS with growing logs, then COMPLETED. A job's clock starts at its
first status poll, so every client sees it queued at least once whatever its own delays. Bodies are validated with the
catalog's input class of each endpoint; a bad body is accepted and then answered with a 422
detail list, as fal's runners do. Results point at tiny faststart mp4 files that ffmpeg makes
(as long as the body asks for), served from the same host under /media/.

Money: `billed[body_hash]` counts jobs fal would charge for: every accepted submit, except jobs
that failed with a 5xx and jobs cancelled while still queued. `submits[body_hash]` counts every
accepted submit. A test asserts `billed[h] == 1` to show nothing was paid twice.

Faults (`fault(...)`): an HTTP error on submit/status/result/cancel/media (429, 5xx with or
without `x-fal-request-id`, nginx-style ingress pages that fal_client retries itself), jobs that
fail (`outcome="error"`), are refused (`outcome="refused"`, a content-policy 422) or never
finish (`outcome="stuck"`), and truncated media (`truncate="cut"`: the connection closes
mid-body; `truncate="file"`: a consistent but short faststart file only a packet count catches).
Media: a fault lasts `times` requests, or with `for_seconds=S` every request until S seconds after
its first hit (`fault("media", 403, for_seconds=45)`: a CDN refusing a fresh signed URL for a
while). A job can deliver a clip shorter than asked (`fault("job", outcome="short")`: a valid
1 s mp4) or on a host outside the tests' allow-list (`outcome="foreign_host"`: the same media at
`https://localhost:<port>/media/...`; the certificate covers localhost, the allow-list is
127.0.0.1). `redirect=URL` answers 302, `chunked=True` sends no Content-Length, `body=b"..."`
answers 200 with that instead of the clip (a CDN's error page).
A submit can be accepted and its answer lost (`fault("submit", drop=True)`: the job exists and
is billed, the connection closes unanswered), or accepted and answered with an error
(`fault("submit", 502, accept=True)`) or with a 200 that cannot be decoded (`garble=True`: a
gzip Content-Encoding on bytes that are not gzip). A status or result can have another shape
(`fault("result", payload=[...])`: answered 200 with that JSON). A cancel can be answered 202 and not stop the job
(`fault("cancel", outcome="ignored")`: it runs on) or come too late (`outcome="finished"`: the
job completes with its result two status polls later). `private_urls = True` makes the queue
answer each job's URLs under /private/ and refuse the by-id form, as for a request only
reachable at the URLs its submit answered.
`hold()`/`release()` keep new jobs running until the test says so. `distinct_clips = True` gives
each new job's clip a colour of its own (from its id), as real generations differ: a clip's last
frame then tells which job made it (continuity tests). `bodies(endpoint)`: the bodies received.

Wiring: fal_client reads FAL_QUEUE_RUN_HOST/FAL_RUN_HOST when it is imported, so the server is
started, and those variables set (with SSL_CERT_FILE pointing at a throwaway CA), before anything
imports it: from `pytest_configure` when this module is registered as a plugin
(`pytest_plugins = ["fakefal"]` in tests/conftest.py), or by calling `ensure_server()` first
(the test modules and bench/ do). One server serves the whole process; the `fake_fal` fixture
resets it for each test. Subprocesses inherit the environment and reach the same server.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

# a key distinctive enough to search for in every output
KEY = "fakekeyid-7f3a9c:fakesecret-Zq8wX2vLp0TnR4"
INGRESS_PAGE = (
    "<html><head><title>{code}</title></head><body><center><h1>{code}</h1></center><hr><center>nginx</center></body></html>"
)


@dataclass
class Fault:
    op: str  # submit, status, result, cancel, media, or job (what a new job turns out to be)
    status: int | None = None
    times: int = 1
    request_id_header: bool = True  # an app's error: fal_client does not retry it
    nginx: bool = False  # an ingress error page: without the header, fal_client retries it itself
    outcome: str | None = None  # job faults: error, refused, stuck, short, foreign_host; cancel faults: ignored, finished
    truncate: str | None = None  # media faults: cut, file
    redirect: str | None = None  # media faults: answer 302 to this URL
    chunked: bool = False  # media faults: no Content-Length, chunked body
    body: bytes | None = None  # media faults: answer 200 with this instead of the clip (an error page)
    for_seconds: float | None = None  # active from its first hit for this long (instead of `times`)
    first_hit: float | None = None
    match: str | None = None  # only requests whose endpoint or prompt contains this
    drop: bool = False  # submit faults: accept the job (it is billed), then close the connection unanswered
    accept: bool = False  # submit faults: accept the job (it is billed), then answer with `status` (a 502 ...)
    garble: bool = False  # submit faults: accept the job (billed), answer 200 with a body that cannot be decoded
    delay: float = 0.0  # submit faults: accept the job (billed), then answer as usual this many seconds later
    omit: tuple[str, ...] = ()  # submit faults: accept the job (billed), answer 200 without these fields
    payload: Any = None  # status/result faults: answer 200 with this JSON instead (odd shapes)
    hits: int = 0


@dataclass
class Job:
    id: str
    endpoint: str
    body: dict[str, Any]
    body_hash: str
    seconds: int
    t0: float | None = None  # set by the first status poll
    outcome: str = "ok"  # ok, invalid, refused, error, stuck
    detail: Any = None
    held: bool = False
    cancelled: str | None = None  # the phase it was cancelled in
    submitted_at: float = field(default_factory=time.monotonic)
    delivered_at: float | None = None  # when its result was first handed out
    polls_left: int | None = None  # set by a cancel that comes too late: IN_PROGRESS for this many polls, then done
    colour: str = "blue"  # of every frame of its clip (see distinct_clips)


@dataclass
class Call:
    op: str
    method: str
    path: str
    status: int
    authorization: str | None = field(default=None, repr=False)
    request_timeout: str | None = None  # the X-Fal-Request-Timeout header sent


class FakeFal:
    def __init__(self) -> None:
        import trustme

        self.dir = Path(tempfile.mkdtemp(prefix="fakefal-"))
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = self.dir / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.fake = self  # type: ignore[attr-defined]
        # the handshake happens in the connection's own thread, not in the accept loop
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.port = self.httpd.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.base = f"https://{self.host}"
        self.media_dir = self.dir / "media"
        self.media_dir.mkdir()
        self._lock = threading.RLock()
        self._clip_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.reset()

    # --- control -------------------------------------------------------------------------------

    def reset(self, *, queue_seconds: float = 0.1, run_seconds: float = 0.2) -> None:
        with self._lock:
            self.key = KEY
            self.queue_seconds = queue_seconds
            self.run_seconds = run_seconds
            self.faults: list[Fault] = []
            self.jobs: dict[str, Job] = {}
            self.calls: list[Call] = []
            self.holding = False
            self.published: dict[str, int] = {}
            # the request's URLs are only those the submit answered: the by-id form is 404
            self.private_urls = False
            self.distinct_clips = False  # True: each new job's clip has a colour of its own

    def publish(self, seconds: int) -> str:
        """A media URL serving a clip of `seconds`, outside any job (for download tests)."""
        name = f"published-{uuid.uuid4().hex[:12]}"
        with self._lock:
            self.published[name] = seconds
        return f"{self.base}/media/{name}.mp4"

    def fault(self, op: str, status: int | None = None, *, times: int = 1, **kw: Any) -> Fault:
        f = Fault(op, status, times, **kw)
        with self._lock:
            self.faults.append(f)
        return f

    def hold(self) -> None:
        """Jobs submitted from now on stay IN_PROGRESS until `release()`."""
        with self._lock:
            self.holding = True

    def release(self) -> None:
        with self._lock:
            self.holding = False
            start = time.monotonic() - self.queue_seconds
            for job in self.jobs.values():
                if job.held:
                    job.held, job.t0 = False, start

    @property
    def submits(self) -> Counter:
        with self._lock:
            return Counter(j.body_hash for j in self.jobs.values())

    @property
    def billed(self) -> Counter:
        with self._lock:
            return Counter(j.body_hash for j in self.jobs.values() if j.outcome != "error" and j.cancelled != "IN_QUEUE")

    @property
    def max_in_flight(self) -> int:
        """The most requests submitted and not yet delivered at any one time."""
        return self.peak_in_flight()

    def peak_in_flight(self, counted_until: dict[str, float] | None = None) -> int:
        """`max_in_flight`, the requests of `counted_until` ({request id: time.monotonic()}) counted
        only until that time if they were not delivered before."""
        until = counted_until or {}
        with self._lock:
            events = []
            for request_id, j in self.jobs.items():
                end = j.delivered_at if j.delivered_at is not None else float("inf")
                events.append((j.submitted_at, 1))
                events.append((min(end, until.get(request_id, end)), -1))
        most = current = 0
        for _, step in sorted(events):
            current += step
            most = max(most, current)
        return most

    def bodies(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        """The bodies of the accepted submits (of `endpoint`, if given), in the order they came."""
        with self._lock:
            jobs = sorted(self.jobs.values(), key=lambda j: j.submitted_at)
        return [j.body for j in jobs if endpoint is None or j.endpoint == endpoint]

    def count(self, op: str, *, status: int | None = None) -> int:
        with self._lock:
            return sum(1 for c in self.calls if c.op == op and (status is None or c.status == status))

    def cancels(self) -> list[str]:
        with self._lock:
            return [j.id for j in self.jobs.values() if j.cancelled]

    def start(self) -> None:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="fakefal", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- the queue -----------------------------------------------------------------------------

    def take_fault(self, op: str, text: str = "") -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.op != op or (f.match is not None and f.match not in text):
                    continue
                if f.for_seconds is not None:
                    f.first_hit = time.monotonic() if f.first_hit is None else f.first_hit
                    if time.monotonic() - f.first_hit >= f.for_seconds:
                        continue
                elif f.hits >= f.times:
                    continue
                f.hits += 1
                return f
        return None

    def phase(self, job: Job) -> tuple[str, float]:
        """IN_QUEUE, IN_PROGRESS or COMPLETED, and the fraction of that phase gone by."""
        if job.cancelled:
            return "COMPLETED", 1.0
        if job.polls_left is not None:
            return ("IN_PROGRESS", 0.5) if job.polls_left > 0 else ("COMPLETED", 1.0)
        if job.t0 is None:
            return "IN_QUEUE", 0.0
        elapsed = time.monotonic() - job.t0
        if elapsed < self.queue_seconds:
            return "IN_QUEUE", elapsed / self.queue_seconds
        if job.held or job.outcome == "stuck":
            return "IN_PROGRESS", 0.5
        if elapsed < self.queue_seconds + self.run_seconds:
            return "IN_PROGRESS", (elapsed - self.queue_seconds) / self.run_seconds
        return "COMPLETED", 1.0

    def clip(self, seconds: int, colour: str = "blue") -> Path:
        """A tiny faststart mp4 lasting `seconds`, made once per duration (and colour)."""
        path = self.media_dir / (f"{seconds}s.mp4" if colour == "blue" else f"{seconds}s-{colour}.mp4")
        with self._clip_lock:
            if not path.exists():
                import imageio_ffmpeg

                tmp = path.with_suffix(".tmp.mp4")
                subprocess.run(
                    [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                     "-i", f"color=c={colour}:s=32x18:r=4:d={seconds}", "-c:v", "libx264", "-preset", "ultrafast",
                     "-crf", "51", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(tmp)],
                    check=True, timeout=60,
                )  # fmt: skip
                tmp.replace(path)
        return path


def requested_seconds(endpoint: str, body: dict[str, Any]) -> int:
    from shotflow.catalog import find_endpoint

    spec = find_endpoint(endpoint)  # a text or an image endpoint, as the catalog declares it
    if not spec.durations:
        return spec.native_duration or 5
    encoded = body.get("duration", spec.field_default("duration") if spec.has_field("duration") else None)
    for seconds, value in spec.durations.items():
        if value == encoded:
            return seconds
    return next(iter(spec.durations))


MEDIA_OUTCOMES = ("ok", "short", "foreign_host")  # job outcomes that deliver a clip


def media_seconds(job: Job) -> int | None:
    """How long the clip a job delivers lasts: as asked, 1 s for a `short` job, None if it has none."""
    if job.outcome not in MEDIA_OUTCOMES:
        return None
    return 1 if job.outcome == "short" else job.seconds


_BY_ID = re.compile(
    r"^(?P<private>/private)?/(?P<owner>[^/]+)/(?P<alias>[^/]+)/requests/(?P<rid>[^/]+)(?P<tail>/status|/cancel)?$"
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fakefal"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    @property
    def fake(self) -> FakeFal:
        return self.server.fake  # type: ignore[attr-defined]

    # --- plumbing ------------------------------------------------------------------------------

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, code: int, payload: Any, op: str, *, headers: dict[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(code)
        ctype = "text/html" if isinstance(payload, bytes) else "application/json"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self._record(op, code)

    def _record(self, op: str, code: int) -> None:
        with self.fake._lock:
            self.fake.calls.append(
                Call(
                    op,
                    self.command,
                    urlsplit(self.path).path,
                    code,
                    self.headers.get("Authorization"),
                    self.headers.get("X-Fal-Request-Timeout"),
                )
            )

    def _fail(self, fault: Fault, op: str) -> None:
        code = fault.status or 500
        headers = {"x-fal-request-id": str(uuid.uuid4())} if fault.request_id_header else {}
        if fault.nginx:
            self._send(code, INGRESS_PAGE.format(code=code).encode(), op, headers=headers)
        elif code == 429:
            self._send(code, {"detail": "Too many requests: concurrent request limit reached"}, op, headers=headers)
        else:
            self._send(code, {"detail": f"Injected {code}"}, op, headers=headers)

    def _authorized(self, op: str) -> bool:
        if self.headers.get("Authorization") != f"Key {self.fake.key}":
            self._send(401, {"detail": "No user found for Key ID and Secret"}, op)
            return False
        return True

    # --- routes --------------------------------------------------------------------------------

    def do_POST(self) -> None:
        raw = self._body()
        path = urlsplit(self.path).path
        self._submit(path.strip("/"), raw)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path.startswith("/media/"):
            return self._media(parts.path[len("/media/") :])
        m = _BY_ID.match(parts.path)
        if not m or m["tail"] == "/cancel":
            return self._send(404, {"detail": "Not found"}, "unknown")
        if m["tail"] == "/status":
            return self._status(m, parse_qs(parts.query))
        return self._result(m)

    def do_PUT(self) -> None:
        self._body()
        m = _BY_ID.match(urlsplit(self.path).path)
        if not m or m["tail"] != "/cancel":
            return self._send(404, {"detail": "Not found"}, "unknown")
        self._cancel(m)

    def _submit(self, endpoint: str, raw: bytes) -> None:
        from pydantic import ValidationError

        from shotflow.catalog import find_endpoint
        from shotflow.model import body_hash

        fake = self.fake
        if not self._authorized("submit"):
            return
        spec = find_endpoint(endpoint)  # image endpoints too: the body is validated with their own input class
        if spec is None:
            return self._send(404, {"detail": f"Application '{endpoint}' not found"}, "submit")
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            return self._send(400, {"detail": "Invalid JSON body"}, "submit")
        text = endpoint + " " + str(body.get("prompt", "") if isinstance(body, dict) else "")
        fault = fake.take_fault("submit", text)
        if fault is not None and not (fault.drop or fault.accept or fault.garble or fault.delay or fault.omit):
            return self._fail(fault, "submit")  # not accepted: no job, nothing billed
        job = Job(
            id=str(uuid.uuid4()),
            endpoint=endpoint,
            body=body if isinstance(body, dict) else {},
            body_hash=body_hash(endpoint, body),
            seconds=5,
        )
        try:
            spec.input.model_validate_json(raw)
            job.seconds = requested_seconds(endpoint, body)
        except ValidationError as exc:
            job.outcome = "invalid"
            job.detail = [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors(include_url=False)]
        if job.outcome == "ok":
            outcome = fake.take_fault("job", text)
            if outcome is not None:
                job.outcome = outcome.outcome or "error"
                if job.outcome == "refused":
                    job.detail = [
                        {
                            "loc": ["body", "prompt"],
                            "msg": "The content could not be processed because it contained material flagged by a content checker.",
                            "type": "content_policy_violation",
                            "url": "https://docs.fal.ai/errors#content_policy_violation",
                        }
                    ]
        with fake._lock:
            job.held = fake.holding
            job.colour = f"0x{job.id.replace('-', '')[:6]}" if fake.distinct_clips else "blue"
            fake.jobs[job.id] = job
        if fault is not None and fault.accept:
            return self._fail(fault, "submit")  # accepted (and billed), answered with an error
        if fault is not None and fault.garble:
            # accepted (and billed); the answer claims gzip but is not: the client cannot decode it
            return self._send(200, b"\x00not gzip at all" * 4, "submit", headers={"Content-Encoding": "gzip"})
        if fault is not None and fault.drop:
            # accepted (and billed), but the answer is lost: the client sees the connection close
            self.close_connection = True
            return self._record("submit", 0)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)  # accepted (and billed); the answer comes late
        owner, alias = endpoint.split("/")[:2]
        base = f"{fake.base}{'/private' if fake.private_urls else ''}/{owner}/{alias}/requests/{job.id}"
        answer = {
            "request_id": job.id,
            "response_url": base,
            "status_url": base + "/status",
            "cancel_url": base + "/cancel",
            "queue_position": 0,
        }
        omitted = fault.omit if fault is not None else ()
        self._send(200, {k: v for k, v in answer.items() if k not in omitted}, "submit")

    def _job(self, m: re.Match, op: str) -> Job | None:
        job = self.fake.jobs.get(m["rid"])
        if job is None or job.endpoint.split("/")[:2] != [m["owner"], m["alias"]] or bool(m["private"]) != self.fake.private_urls:
            self._send(404, {"detail": "Request not found"}, op)
            return None
        return job

    def _status(self, m: re.Match, query: dict[str, list[str]]) -> None:
        fake = self.fake
        if not self._authorized("status"):
            return
        job = self._job(m, "status")
        if job is None:
            return
        fault = fake.take_fault("status", job.endpoint)
        if fault is not None and fault.payload is not None:
            return self._send(200, fault.payload, "status")  # a status of another shape
        if fault is not None:
            return self._fail(fault, "status")
        logs_wanted = query.get("logs", ["false"])[0] == "true"
        with fake._lock:
            if job.t0 is None:
                job.t0 = time.monotonic()
        with fake._lock:
            phase, fraction = fake.phase(job)
            if job.polls_left:
                job.polls_left -= 1
        base = f"{fake.base}{m['private'] or ''}/{m['owner']}/{m['alias']}/requests/{job.id}"
        payload: dict[str, Any] = {"status": phase, "request_id": job.id, "response_url": base}
        if phase == "IN_QUEUE":
            payload["queue_position"] = int((1 - fraction) * 3)
        else:
            steps = 4 if phase == "COMPLETED" else 1 + int(fraction * 3)
            payload["logs"] = [_log(f"step {i + 1}/4: denoising") for i in range(steps)] if logs_wanted else None
        if phase == "COMPLETED":
            payload["metrics"] = {"inference_time": fake.run_seconds}
            if job.cancelled:
                payload["error"], payload["error_type"] = "Request was cancelled", "request_cancelled"
            elif job.outcome in ("invalid", "refused"):
                payload["error"], payload["error_type"] = "Unprocessable Entity", "validation_error"
            elif job.outcome == "error":
                payload["error"], payload["error_type"] = "Internal Server Error", "runner_error"
        self._send(200 if phase == "COMPLETED" else 202, payload, "status")

    def _result(self, m: re.Match) -> None:
        fake = self.fake
        if not self._authorized("result"):
            return
        job = self._job(m, "result")
        if job is None:
            return
        phase, _ = fake.phase(job)
        if phase != "COMPLETED":
            return self._send(400, {"detail": "Request is still in progress"}, "result")
        fault = fake.take_fault("result", job.endpoint)
        if fault is not None and fault.payload is not None:
            if job.delivered_at is None:
                job.delivered_at = time.monotonic()
            return self._send(200, fault.payload, "result")  # a result of another shape
        if fault is not None:
            return self._fail(fault, "result")
        rid_header = {"x-fal-request-id": job.id}
        if job.cancelled:
            return self._send(400, {"detail": "Request was cancelled"}, "result", headers=rid_header)
        if job.outcome in ("invalid", "refused"):
            return self._send(422, {"detail": job.detail}, "result", headers=rid_header)
        if job.outcome == "error":
            return self._send(500, {"detail": "Internal Server Error"}, "result", headers=rid_header)
        clip = fake.clip(media_seconds(job), job.colour)
        media_base = f"https://localhost:{fake.port}" if job.outcome == "foreign_host" else fake.base
        video = {
            "url": f"{media_base}/media/{job.id}.mp4",
            "content_type": "video/mp4",
            "file_name": "output.mp4",
            "file_size": clip.stat().st_size,
        }
        if job.delivered_at is None:
            job.delivered_at = time.monotonic()
        self._send(200, {"video": video, "seed": 42}, "result", headers=rid_header)

    def _cancel(self, m: re.Match) -> None:
        fake = self.fake
        if not self._authorized("cancel"):
            return
        job = self._job(m, "cancel")
        if job is None:
            return
        fault = fake.take_fault("cancel", job.endpoint)
        if fault is not None and fault.outcome is None:
            return self._fail(fault, "cancel")
        with fake._lock:
            phase, _ = fake.phase(job)
            if phase == "COMPLETED":
                return self._send(400, {"status": "ALREADY_COMPLETED"}, "cancel")
            if fault is None:
                job.cancelled = phase
            elif fault.outcome == "finished":  # too late: the job completes two polls later (and bills)
                job.outcome, job.held, job.polls_left = "ok", False, 2
            # "ignored": cancellation requested, but the job runs on as it was
        self._send(202, {"status": "CANCELLATION_REQUESTED"}, "cancel")

    def _media(self, name: str) -> None:
        fake = self.fake
        stem = name.removesuffix(".mp4")
        job = fake.jobs.get(stem)
        seconds = media_seconds(job) if job is not None else fake.published.get(stem)
        if seconds is None:
            return self._send(404, {"detail": "Not found"}, "media")
        fault = fake.take_fault("media", name)
        if fault is not None and fault.redirect:
            return self._send(302, b"", "media", headers={"Location": fault.redirect})
        if fault is not None and fault.body is not None:
            return self._send(200, fault.body, "media")
        if fault is not None and fault.truncate is None and not fault.chunked:
            return self._fail(fault, "media")
        data = fake.clip(seconds, job.colour if job is not None else "blue").read_bytes()
        if fault is not None and fault.chunked:
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(data), 512):
                piece = data[i : i + 512]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            return self._record("media", 200)
        truncate = fault.truncate if fault is not None else None
        sent = data[: len(data) * 2 // 3] if truncate else data
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(data) if truncate == "cut" else len(sent)))
        if truncate == "cut":
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(sent)
        self.wfile.flush()
        if truncate == "cut":
            self.close_connection = True
        self._record("media", 200)


def _log(message: str) -> dict[str, Any]:
    return {
        "message": message,
        "level": "INFO",
        "source": "user",
        "timestamp": datetime.now(timezone.utc).isoformat(),
    }


# --- one server per process ------------------------------------------------------------------

_server: FakeFal | None = None
_server_lock = threading.Lock()


def ensure_server() -> FakeFal:
    """Start the fake server once and point fal_client (not yet imported) and httpx at it."""
    global _server
    with _server_lock:
        if _server is not None:
            return _server
        if "fal_client" in sys.modules:
            raise RuntimeError(
                "fal_client was imported before the fake fal server set FAL_QUEUE_RUN_HOST; it would talk "
                "to queue.fal.run. Register the plugin first: pytest_plugins = ['fakefal'] in tests/conftest.py"
            )
        server = FakeFal()
        server.start()
        os.environ["FAL_QUEUE_RUN_HOST"] = server.host
        os.environ["FAL_RUN_HOST"] = server.host
        os.environ["SSL_CERT_FILE"] = str(server.ca_file)
        for name in ("NO_PROXY", "no_proxy"):
            os.environ[name] = ",".join(filter(None, [os.environ.get(name), "127.0.0.1", "localhost"]))
        atexit.register(server.stop)
        _server = server
        return server


def settings_for(cache_dir: Path, **overrides: Any):
    """Settings of a run that may use the fake server: its key, its media host, its cache."""
    from shotflow.settings import Settings

    values: dict[str, Any] = {
        "FAL_KEY": KEY,
        "SHOTFLOW_CACHE_DIR": str(cache_dir),
        "SHOTFLOW_MEDIA_HOSTS": "127.0.0.1",
    }
    values.update(overrides)
    return Settings(**values)


def product_env(cache_dir: Path) -> dict[str, str]:
    """The environment of a product subprocess that uses the fake server."""
    env = dict(os.environ)
    env.update(FAL_KEY=KEY, SHOTFLOW_CACHE_DIR=str(cache_dir), SHOTFLOW_MEDIA_HOSTS="127.0.0.1")
    return env


def pytest_configure(config: pytest.Config) -> None:
    ensure_server()


@pytest.fixture
def fake_fal() -> FakeFal:
    """The fake fal server, reset: no jobs, no faults, fast jobs (0.1 s queued, 0.2 s running)."""
    server = ensure_server()
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def fal_env(monkeypatch, fake_fal) -> FakeFal:
    """The product pointed at the fake fal server through its environment (a key, the media host,
    fast polls and retries): what a run in a test process or its subprocesses reads."""
    monkeypatch.setenv("FAL_KEY", KEY)
    monkeypatch.setenv("SHOTFLOW_MEDIA_HOSTS", "127.0.0.1")
    monkeypatch.setenv("SHOTFLOW_FAL_POLL_INTERVAL", "0.1")
    monkeypatch.setenv("SHOTFLOW_FAL_RETRY_BACKOFF", "0.05")
    return fake_fal
