"""Workers on many machines sharing one store (SHOTFLOW_STORE=s3://...): the job journal and the clips
in the store, each clip's lease as its lock (shotflow/store/teamjournal.py, teamclips.py).

Real servers only: moto's S3 (tests/teamservers.py, served one request at a time so its
conditional writes are atomic as on S3), Debian's redis-server for the Redis leases, and the fake
fal server reached through the real fal_client (tests/fakefal.py), which counts what fal would
bill. A "machine" is a FalBackend with a cache dir of its own on the same store URL; a machine
that dies is a subprocess killed with SIGKILL. Leases live 5 s (SHOTFLOW_LEASE_TTL's minimum).
"""

from __future__ import annotations

import fakefal  # first: points fal_client and httpx at the fake server

fakefal.ensure_server()

import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
import threading  # noqa: E402
import uuid  # noqa: E402
from decimal import Decimal  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from teamservers import endpoint_fixture, free_port, kind_fixture, redis_url_fixture, s3_env, s3_server, s3_store  # noqa: E402, F401 (the fixtures `endpoint`, `kind`, `redis_url`)
from waiting import stop_group, tail, wait_for  # noqa: E402

from shotflow.errors import BudgetError, GenerationError  # noqa: E402
from shotflow.generation.fal.backend import FalBackend  # noqa: E402
from shotflow.generation.retry import RetryLater  # noqa: E402
from shotflow.plan import plan_from_text  # noqa: E402
from shotflow.preflight import PreflightError, preflight  # noqa: E402
from shotflow.store.clips import ClipStore  # noqa: E402
from shotflow.store.digest import file_sha256  # noqa: E402
from shotflow.store.lease import LeaseRecord  # noqa: E402
from shotflow.store.team import open_clip_store, open_journal  # noqa: E402
from shotflow.store.teamclips import TeamClipStore  # noqa: E402
from shotflow.store.teamjournal import TeamJournal  # noqa: E402

fake_fal = fakefal.fake_fal
TTL = "5"


def storyboard(*shots: str) -> str:
    return "version: 1\ntitle: t\nshots:\n" + "".join(f"  - {s}\n" for s in shots)


def board(prompt: str = "a harbour at dawn") -> str:
    return storyboard(f"{{id: opening, prompt: '{prompt}', model: kling, duration: 5}}")


def a_shot(prompt: str = "a harbour at dawn"):
    return plan_from_text(board(prompt), "sb.yaml").shots[0]


@pytest.fixture
def team_env(endpoint, monkeypatch, kind, request):
    """A fresh prefix of the test bucket as SHOTFLOW_STORE (and Redis's URL for "redis"): what every
    machine of this test shares. The process (and its subprocesses) reach moto through boto3's env."""
    url = f"s3://shotflow-team/{uuid.uuid4().hex[:10]}"
    store = s3_store(endpoint, url)  # makes the bucket
    env = {**s3_env(endpoint), "SHOTFLOW_STORE": url, "SHOTFLOW_LEASE_TTL": TTL}
    if kind == "redis":
        env["SHOTFLOW_REDIS_URL"] = request.getfixturevalue("redis_url")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env, store


def settings_of(cache: Path, env: dict, **overrides):
    values = {k: v for k, v in env.items() if k.startswith("SHOTFLOW_")}
    values.update(SHOTFLOW_FAL_POLL_INTERVAL="0.02", SHOTFLOW_FAL_RETRY_BACKOFF="0.01", SHOTFLOW_LOCK_TIMEOUT="60")
    values.update(overrides)
    return fakefal.settings_for(cache, **values)


def machine(cache: Path, env: dict, **overrides) -> FalBackend:
    """One worker's backend: its own cache dir, the shared store's clip store and journal."""
    settings = settings_of(cache, env, **overrides)
    store = open_clip_store(settings)
    assert isinstance(store, TeamClipStore)
    backend = FalBackend(store, settings=settings)
    assert isinstance(backend.journal, TeamJournal)
    return backend


def in_parallel(*calls):
    """Run each call in a thread of its own, started together; their results (or exceptions)."""
    results: list = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(i, call):
        start.wait()
        try:
            results[i] = call()
        except BaseException as exc:  # noqa: BLE001 (handed back to the test)
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


# --- one body, paid once, by whichever machine -------------------------------------------------------


def test_two_machines_generating_one_shot_at_once_pay_once_and_a_third_pays_nothing(fake_fal, team_env, tmp_path):
    env, bucket = team_env
    shot = a_shot()
    first, second = machine(tmp_path / "m1", env), machine(tmp_path / "m2", env)
    clips = in_parallel(lambda: first.generate(shot), lambda: second.generate(shot))
    assert not any(isinstance(c, BaseException) for c in clips), clips
    assert fake_fal.submits == {shot.body_hash: 1} and fake_fal.billed == {shot.body_hash: 1}
    assert fake_fal.count("media") == 1  # downloaded once, by the lease's holder; the other fetched it from the bucket
    assert {c.request_id for c in clips} == {clips[0].request_id}
    assert clips[0].path.is_relative_to(tmp_path / "m1") and clips[1].path.is_relative_to(tmp_path / "m2")
    key = ClipStore.key("fal", shot)
    held = bucket.stat(f"clips/{key}.mp4")
    assert {file_sha256(c.path) for c in clips} == {held.sha256}
    record = json.loads(bucket.get_bytes(f"jobs/{key}.json").data)
    assert (record["state"], record["request_id"], record["clip_sha256"]) == ("downloaded", clips[0].request_id, held.sha256)
    assert not (tmp_path / "m1" / "jobs" / f"{key}.json").exists()  # the journal is the store's, not the machine's

    calls = len(fake_fal.calls)
    events = []
    later = machine(tmp_path / "m3", env).generate(shot, on_event=events.append)  # a third machine, later
    assert later.cache_hit and [e.kind for e in events] == ["cached"]
    assert len(fake_fal.calls) == calls  # not one call to fal
    assert later.path.is_relative_to(tmp_path / "m3") and file_sha256(later.path) == held.sha256


def test_a_clip_replaced_by_a_forced_regeneration_keeps_the_paid_one_in_the_store(fake_fal, team_env, tmp_path):
    env, bucket = team_env
    fake_fal.distinct_clips = True  # each job's clip differs, as real generations do
    shot = a_shot()
    key = ClipStore.key("fal", shot)
    machine(tmp_path / "m1", env).generate(shot)
    old = bucket.stat(f"clips/{key}.mp4").sha256
    again = machine(tmp_path / "m2", env).generate(shot, force="run-2")
    assert fake_fal.billed == {shot.body_hash: 2}
    assert bucket.stat(f"clips/{key}.mp4").sha256 == file_sha256(again.path) != old
    kept = bucket.list("superseded/")
    assert len(kept) == 1 and kept[0].startswith(f"superseded/{key}.") and bucket.stat(kept[0]).sha256 == old
    # the first machine's cache held the old clip: the store's new one wins there too
    assert file_sha256(machine(tmp_path / "m1", env).generate(shot).path) == file_sha256(again.path)


# --- a machine that dies -------------------------------------------------------------------------------

INTENDER = textwrap.dedent(
    """
    import sys, time
    from shotflow.generation.fal.job import Job
    from shotflow.plan import plan_from_text
    from shotflow.settings import Settings
    from shotflow.store.clips import ClipStore
    from shotflow.store.team import open_journal

    journal = open_journal(Settings())
    shot = plan_from_text(open(sys.argv[1]).read(), "sb.yaml").shots[0]
    key = ClipStore.key("fal", shot)
    with journal.submit_lock(key):  # what the backend does right before its POST
        Job.intend(journal, shot, key, prior=journal.read(key), storyboard="sb.yaml", force_token=None)
        print("intended", flush=True)
        time.sleep(600)
    """
)

GENERATOR = textwrap.dedent(
    """
    import sys
    from shotflow.generation.fal.backend import FalBackend
    from shotflow.plan import plan_from_text
    from shotflow.settings import Settings
    from shotflow.store.team import open_clip_store

    settings = Settings()
    shot = plan_from_text(open(sys.argv[1]).read(), "sb.yaml").shots[0]
    clip = FalBackend(open_clip_store(settings), settings=settings).generate(shot)
    print("done", clip.request_id, flush=True)
    """
)


def start_worker(tmp_path: Path, script: str, env: dict, cache: Path) -> tuple[subprocess.Popen, Path]:
    (tmp_path / "worker.py").write_text(script)
    (tmp_path / "sb.yaml").write_text(board())
    out = tmp_path / "worker.out"
    full = {**fakefal.product_env(cache), **env, "SHOTFLOW_FAL_POLL_INTERVAL": "0.05"}
    with open(out, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, str(tmp_path / "worker.py"), str(tmp_path / "sb.yaml")],
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=full,
        )
    return proc, out


def test_a_machine_killed_after_its_intent_leaves_the_shot_uncertain_for_the_others(fake_fal, team_env, tmp_path):
    env, bucket = team_env
    shot = a_shot()
    key = ClipStore.key("fal", shot)
    proc, out = start_worker(tmp_path, INTENDER, env, tmp_path / "dead")
    try:
        wait_for("the intent", lambda: "intended" in out.read_text(), timeout=60, diagnostics=lambda: tail(out))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        with pytest.raises(GenerationError) as info:  # waits for the dead holder's lease to expire
            machine(tmp_path / "m2", env).generate(shot)
    finally:
        stop_group(proc, grace=1)
    message = str(info.value)
    assert not info.value.transient and "uncertain" in message and "--force opening" in message
    assert fake_fal.count("submit") == 0  # never submitted again without --force
    assert json.loads(bucket.get_bytes(f"jobs/{key}.json").data)["state"] == "uncertain"


def test_a_machine_killed_after_its_submit_is_re_attached_by_another_paying_nothing(fake_fal, team_env, tmp_path):
    env, bucket = team_env
    shot = a_shot()
    key = ClipStore.key("fal", shot)
    fake_fal.hold()  # its job stays in progress: the kill lands while it is live

    def submitted() -> bool:
        got = bucket.get_bytes(f"jobs/{key}.json")
        return got is not None and json.loads(got.data)["state"] == "submitted"

    proc, out = start_worker(tmp_path, GENERATOR, env, tmp_path / "dead")
    try:
        wait_for("the journaled submit", submitted, timeout=60, diagnostics=lambda: tail(out))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        stop_group(proc, grace=1)
    rid = json.loads(bucket.get_bytes(f"jobs/{key}.json").data)["request_id"]
    fake_fal.release()
    events = []
    clip = machine(tmp_path / "m2", env).generate(shot, on_event=events.append)
    assert clip.request_id == rid and events[0].kind == "reattached"
    assert fake_fal.submits == {shot.body_hash: 1} and fake_fal.billed == {shot.body_hash: 1}
    assert bucket.stat(f"clips/{key}.mp4").sha256 == file_sha256(clip.path)


@pytest.mark.parametrize("kind", ["store"])
def test_a_lease_lost_before_sending_sends_nothing(fake_fal, team_env, tmp_path):
    env, bucket = team_env
    shot = a_shot()
    key = ClipStore.key("fal", shot)
    worker = machine(tmp_path / "m1", env, SHOTFLOW_DAILY_BUDGET="100")
    other = open_journal(settings_of(tmp_path / "m2", env))
    result: list = []
    with other.submit_lock("daily-budget"):  # the worker takes its clip's lease, then waits for the budget's
        thread = threading.Thread(target=lambda: result.append(_outcome(worker, shot)))
        thread.start()
        wait_for("the worker holding the clip's lease", lambda: worker.journal.held(key) is not None, timeout=60)
        lease = worker.journal.held(key)
        current = bucket.get_bytes(f"leases/{key}.json")
        usurper = LeaseRecord(key, "other-host:pid 1:abc", 30, "2030-01-01T00:00:00+00:00", "2030-01-01T00:00:30+00:00")
        bucket.put_bytes_if_match(f"leases/{key}.json", usurper.encode(), current.etag)  # taken over meanwhile
        wait_for("the worker noticing", lambda: lease.lost, timeout=30)
    thread.join(timeout=60)
    (error,) = result
    assert isinstance(error, RetryLater) and "lease lost" in str(error) and "nothing was sent" in str(error), error
    assert fake_fal.count("submit") == 0
    # lost before its intent was written (no record), or after (the intent refused: nothing billed)
    written = bucket.get_bytes(f"jobs/{key}.json")
    if written is not None:
        record = json.loads(written.data)
        assert record["state"] == "refused" and not record["permanent"] and "lease lost" in record["error"]


def test_a_store_out_of_reach_when_fal_answers_cancels_the_request_and_stops_the_shot_uncertain(fake_fal, monkeypatch, tmp_path):
    """The bucket goes away between fal taking the submit and its id being journaled: the request
    is cancelled (checked) and the shot stopped as uncertain with the id, never left silent."""
    from contextlib import ExitStack

    with ExitStack() as servers:
        (tmp_path / "s3").mkdir()
        endpoint = servers.enter_context(s3_server(tmp_path / "s3"))
        url = f"s3://shotflow-outage/{uuid.uuid4().hex[:10]}"
        s3_store(endpoint, url)  # makes the bucket
        env = {**s3_env(endpoint), "SHOTFLOW_STORE": url, "SHOTFLOW_LEASE_TTL": TTL}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        backend = machine(tmp_path / "m1", env)
        shot = a_shot()
        fake_fal.fault("submit", delay=2.0)
        outcome: dict = {}
        worker = threading.Thread(target=lambda: outcome.update(result=_outcome(backend, shot)))
        worker.start()
        wait_for("fal to take the submit", lambda: fake_fal.billed, timeout=60, interval=0.02)
        servers.close()  # the bucket is out of reach before fal's answer arrives
        worker.join(timeout=240)
    assert not worker.is_alive()
    error = outcome["result"]
    assert isinstance(error, GenerationError) and not error.transient, error
    (request_id,) = [job.id for job in fake_fal.jobs.values()]
    assert "uncertain" in str(error) and request_id in str(error), error
    assert fake_fal.cancels() == [request_id]  # cancelled, and fal asked how it ended
    assert fake_fal.submits == {shot.body_hash: 1} and not fake_fal.billed  # cancelled while queued: not billed


def _outcome(backend: FalBackend, shot):
    try:
        return backend.generate(shot)
    except BaseException as exc:  # noqa: BLE001 (handed back to the test)
        return exc


# --- one budget, one ledger -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["store"])
def test_the_daily_budget_holds_across_machines(fake_fal, team_env, tmp_path):
    env, _ = team_env
    first, second = a_shot("first"), a_shot("second")
    budget = str(first.cost * Decimal("1.5"))  # room for one shot, not two
    machine(tmp_path / "m1", env, SHOTFLOW_DAILY_BUDGET=budget).generate(first)
    with pytest.raises(BudgetError, match="over the daily budget"):
        machine(tmp_path / "m2", env, SHOTFLOW_DAILY_BUDGET=budget).generate(second)
    assert fake_fal.submits == {first.body_hash: 1}


@pytest.mark.parametrize("kind", ["store"])
def test_the_ledger_of_any_machine_lists_the_requests_in_the_store(fake_fal, team_env, tmp_path):
    env, _ = team_env
    clip = machine(tmp_path / "m1", env).generate(a_shot())
    run = subprocess.run(
        [sys.executable, "-m", "shotflow.cli", "ledger", "--json"],
        env={**os.environ, **env, "SHOTFLOW_CACHE_DIR": str(tmp_path / "m2")},  # another machine, an empty cache
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    rows = json.loads(run.stdout)
    assert [(r["shot"], r["request_id"], r["state"]) for r in rows] == [("opening", clip.request_id, "downloaded")]


# --- refused before anything is paid ---------------------------------------------------------------


def run_preflight(tmp_path: Path, **env):
    plan = plan_from_text(board(), str(tmp_path / "sb.yaml"))
    settings = fakefal.settings_for(tmp_path / "cache", SHOTFLOW_LEASE_TTL=TTL, **env)
    return preflight(plan, backend="fal", settings=settings, cwd=tmp_path)


def test_a_bucket_that_ignores_conditional_writes_is_refused_without_redis(endpoint, monkeypatch, tmp_path, request):
    for name, value in s3_env(endpoint).items():
        monkeypatch.setenv(name, value)
    url = f"s3://no-conditions-{uuid.uuid4().hex[:10]}/team"
    s3_store(endpoint, url)  # makes the bucket, whose endpoint drops If-None-Match and If-Match
    with pytest.raises(PreflightError) as info:
        run_preflight(tmp_path, SHOTFLOW_STORE=url)
    message = str(info.value)
    assert message.count("\n") == 0 and message.startswith("SHOTFLOW_STORE: ")
    assert "cannot keep two machines from paying for one shot" in message and "SHOTFLOW_REDIS_URL" in message

    # with a Redis server every worker reaches, the same bucket is safe
    redis = request.getfixturevalue("redis_url")
    other = f"s3://no-conditions-{uuid.uuid4().hex[:10]}/team"
    s3_store(endpoint, other)
    assert run_preflight(tmp_path, SHOTFLOW_STORE=other, SHOTFLOW_REDIS_URL=redis) == tmp_path / "out" / "sb.mp4"


def test_a_redis_that_does_not_answer_is_refused_without_showing_its_password(endpoint, monkeypatch, tmp_path):
    for name, value in s3_env(endpoint).items():
        monkeypatch.setenv(name, value)
    url = f"s3://shotflow-team/{uuid.uuid4().hex[:10]}"
    s3_store(endpoint, url)
    port = free_port()  # nothing listens there
    with pytest.raises(PreflightError) as info:
        run_preflight(tmp_path, SHOTFLOW_STORE=url, SHOTFLOW_REDIS_URL=f"redis://:hunter2secret@127.0.0.1:{port}/0")
    message = str(info.value)
    assert f"SHOTFLOW_REDIS_URL: the Redis server at redis://127.0.0.1:{port}/0 does not answer" in message
    assert "hunter2secret" not in message


def test_gc_refuses_a_shared_store(monkeypatch, tmp_path):
    from shotflow.errors import ShotflowError
    from shotflow.needs import Needs
    from shotflow.store import gc

    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / f"{'a' * 64}.mp4").write_bytes(b"a paid clip")
    monkeypatch.setenv("SHOTFLOW_CACHE_DIR", str(tmp_path))
    assert gc.survey(tmp_path, Needs(), recent=0).doomed  # a local store: the clip nothing needs would go
    monkeypatch.setenv("SHOTFLOW_STORE", "s3://shotflow-team/prod")
    with pytest.raises(
        ShotflowError, match=r"SHOTFLOW_STORE=s3://shotflow-team/prod is shared by many machines.*not supported yet"
    ):
        gc.survey(tmp_path, Needs(), recent=0)
    assert (tmp_path / "clips" / f"{'a' * 64}.mp4").is_file()
