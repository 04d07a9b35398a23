"""Real servers for the shared-store and lease tests: moto's S3 and Debian's redis-server.

`s3_server` runs moto's own S3 application (what `python -m moto.server` serves) from this file,
answering one request at a time. Real S3 decides a conditional write atomically; moto's
threaded server checks If-None-Match / If-Match and then writes without a lock
(moto/s3/responses.py `put_object`, moto 5.2.5), so two simultaneous requests could both pass,
and a race test would fail because of moto, not of shotflow. Served one at a time, each check
and its write are atomic, as on S3. Buckets named `no-conditions-*` have the two headers taken
off the request before moto sees them: an S3-compatible endpoint that accepts conditional
writes and ignores them, which the capabilities probe must catch. `stock_moto_server` runs the
unmodified `python -m moto.server`, for the test that moto itself honours the conditions.

`redis_server` runs `redis-server` (apt-get install redis-server) on a free port without
persistence. Where it is missing the Redis tests are skipped saying so, except under CI (the
`CI` variable set), where they fail: .ci/run installs it.

    python tests/teamservers.py PORT      # the one-request-at-a-time S3 server alone
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from waiting import stop_group, tail, wait_for

HERE = Path(__file__).resolve().parent
IGNORING = "/no-conditions-"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "shotflow-test",
    "AWS_SECRET_ACCESS_KEY": "shotflow-test-secret",
    "AWS_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def s3_env(endpoint: str) -> dict[str, str]:
    """The environment a process needs to reach the test S3 endpoint through boto3's own settings."""
    return {**CREDENTIALS, "AWS_ENDPOINT_URL_S3": endpoint}


@functools.cache
def s3_client(endpoint: str):
    """One boto3 client per endpoint (thread-safe; making one takes most of a second)."""
    import boto3

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=CREDENTIALS["AWS_REGION"],
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def s3_store(endpoint: str, url: str):
    """An S3Store for `url` (s3://bucket/prefix) on the test endpoint, its bucket made if missing."""
    from shotflow.store.remote import S3Store
    from shotflow.store.shared import parse_store

    location = parse_store(url, default=Path("/nonexistent"))
    client = s3_client(endpoint)
    try:
        client.create_bucket(Bucket=location.bucket)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    return S3Store(location, client=client)


@contextmanager
def _server(args: list[str], log: Path, ready, what: str, env: dict | None = None):
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})}
        )
    try:
        wait_for(
            what,
            lambda: proc.poll() is not None or ready(),
            timeout=60,
            interval=0.1,
            diagnostics=lambda: tail(log),
        )
        if proc.poll() is not None:
            pytest.fail(f"{what}: exited with {proc.returncode}\n{tail(log)}")
        yield
    finally:
        stop_group(proc, grace=10)


def _answers(url: str) -> bool:
    import httpx

    try:
        httpx.get(url, timeout=1)
        return True
    except httpx.TransportError:
        return False


@contextmanager
def s3_server(folder: Path):
    """moto's S3, one request at a time, on 127.0.0.1: yields its endpoint URL."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    args = [sys.executable, str(Path(__file__).resolve()), str(port)]
    with _server(args, folder / "s3.log", lambda: _answers(endpoint + "/moto-api/"), f"moto S3 on {endpoint}"):
        yield endpoint


@contextmanager
def stock_moto_server(folder: Path):
    """`python -m moto.server` as shipped (threaded) on 127.0.0.1: yields its endpoint URL."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with _server(args, folder / "moto.log", lambda: _answers(endpoint + "/moto-api/"), f"moto.server on {endpoint}"):
        yield endpoint


@pytest.fixture(scope="session", name="endpoint")
def endpoint_fixture(tmp_path_factory):
    """`endpoint`: one S3 server for the session's tests (each uses its own prefix or keys); a
    test file imports this to have it."""
    with s3_server(tmp_path_factory.mktemp("s3")) as url:
        yield url


@pytest.fixture(scope="module", name="redis_url")
def redis_url_fixture(tmp_path_factory):
    """`redis_url`: one redis-server for the module's tests; a test file imports this to have it."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(params=["store", "redis"], name="kind")
def kind_fixture(request):
    """`kind`: how the machines' leases work, conditional writes in the bucket or Redis locks (each
    test that takes it runs once with each); a test file imports this to have it."""
    return request.param


def redis_binary() -> str:
    """redis-server's path, or skip (fail under CI) saying how to get it."""
    found = shutil.which("redis-server")
    if found:
        return found
    reason = "no redis-server on PATH (apt-get install redis-server)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: .ci/run installs it, so CI must have it")
    pytest.skip(f"Redis tests skipped: {reason}")


@contextmanager
def redis_server(folder: Path):
    """Debian's redis-server on a free 127.0.0.1 port, no persistence: yields its redis:// URL."""
    import redis

    binary = redis_binary()
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)]

    def pong() -> bool:
        try:
            return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    with _server(args, folder / "redis.log", pong, f"redis-server on {url}"):
        yield url


def _ignoring_conditions(app):
    """The WSGI app, with If-None-Match and If-Match dropped from writes to no-conditions-* buckets."""

    def wrapped(environ, start_response):
        if environ.get("PATH_INFO", "").startswith(IGNORING) and environ.get("REQUEST_METHOD") in ("PUT", "POST", "DELETE"):
            environ.pop("HTTP_IF_NONE_MATCH", None)
            environ.pop("HTTP_IF_MATCH", None)
        return app(environ, start_response)

    return wrapped


def serve(port: int) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    os.environ["MOTO_PORT"] = str(port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple("127.0.0.1", port, _ignoring_conditions(app), threaded=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
