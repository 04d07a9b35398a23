"""A clip's lease across machines (shotflow/store/lease.py), against real servers.

Every test runs twice: leases kept by conditional writes in moto's S3 (tests/teamservers.py), and
Redis locks on Debian's redis-server (skipped, saying so, where it is not installed; CI installs
it). Other machines are played by processes (tests/leaseholder.py) that reach the same servers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from teamservers import endpoint_fixture, kind_fixture, redis_server, redis_url_fixture, s3_env, s3_store  # noqa: F401 (the fixtures `endpoint`, `kind`, `redis_url`)
from waiting import stop_group, tail, wait_for

from shotflow.store.coordination import check_coordination
from shotflow.store.lease import LeaseBusy, LeaseLost, LeaseRecord, RedisLease, StoreLease, lease_for

HERE = Path(__file__).resolve().parent
BUCKET_URL = "s3://shotflow-test/leases-test"


@pytest.fixture
def team(kind, endpoint, request):
    """What a worker needs to take leases of this kind: the store, and Redis's URL for "redis"."""
    store = s3_store(endpoint, BUCKET_URL)
    url = request.getfixturevalue("redis_url") if kind == "redis" else None
    return store, url


def make_lease(team, clip: str, **options):
    store, url = team
    if url:
        return RedisLease(url, store.location.url, clip, **options)
    return StoreLease(store, clip, clock_skew=0.5, **options)


def clip_key() -> str:
    return uuid.uuid4().hex


def test_one_worker_holds_a_clip_at_a_time(team):
    clip = clip_key()
    with make_lease(team, clip) as first:
        with pytest.raises(LeaseBusy) as busy:
            with make_lease(team, clip):
                pass
        assert busy.value.holder == first.holder and busy.value.clip == clip
        assert f"clip {clip}: being submitted by {first.holder}" in str(busy.value)
        first.ensure()
    with make_lease(team, clip) as second:  # released: free at once, no expiry to wait for
        second.ensure()


def test_of_threads_racing_for_a_lease_exactly_one_wins(team):
    for _ in range(5):
        clip = clip_key()
        tried, barrier, won, lost = threading.Barrier(6), threading.Barrier(6), [], []

        def take(i: int) -> None:
            lease = make_lease(team, clip)
            tried.wait()
            try:
                with lease:
                    won.append(i)
                    barrier.wait()  # held until every other thread has tried
            except LeaseBusy:
                lost.append(i)
                barrier.wait()

        threads = [threading.Thread(target=take, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(won) == 1 and len(lost) == 5, (won, lost)


def holder(team, clip: str, ttl: float, folder: Path, name: str) -> tuple[subprocess.Popen, Path]:
    """A leaseholder process (another machine's worker) started in its own session; its output file."""
    store, url = team
    out = folder / f"{name}.out"
    args = [sys.executable, str(HERE / "leaseholder.py"), BUCKET_URL, clip, str(ttl), str(folder / "go"), str(folder / "stop")]
    with open(out, "wb") as fh:
        proc = subprocess.Popen(
            args + ([url] if url else []),
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **s3_env(store.client.meta.endpoint_url)},
        )
    return proc, out


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_of_processes_racing_for_a_lease_exactly_one_wins(team, tmp_path):
    clip = clip_key()
    procs = [holder(team, clip, 5, tmp_path, f"worker{i}") for i in range(3)]
    try:
        logs = lambda: "\n".join(tail(out) for _, out in procs)  # noqa: E731
        wait_for("every worker ready", lambda: all("ready" in lines(out) for _, out in procs), timeout=60, diagnostics=logs)
        (tmp_path / "go").touch()
        wait_for("every worker's answer", lambda: all(len(lines(out)) >= 2 for _, out in procs), timeout=60, diagnostics=logs)
        answers = [lines(out)[1] for _, out in procs]
        assert answers.count("won") == 1, answers
        winner = answers.index("won")
        busy = [a for a in answers if a.startswith("busy ")]
        assert len(busy) == 2 and all(f":pid {procs[winner][0].pid}:" in a for a in busy), answers
        (tmp_path / "stop").touch()
        wait_for("the winner's release", lambda: "released" in lines(procs[winner][1]), timeout=60, diagnostics=logs)
    finally:
        for proc, _ in procs:
            stop_group(proc, grace=5)


def test_a_killed_holders_lease_expires_and_is_taken_over(team, tmp_path):
    clip = clip_key()
    proc, out = holder(team, clip, 3, tmp_path, "doomed")
    try:
        wait_for("the worker ready", lambda: "ready" in lines(out), timeout=60, diagnostics=lambda: tail(out))
        (tmp_path / "go").touch()
        wait_for("the worker holding the lease", lambda: "held" in lines(out), timeout=60, diagnostics=lambda: tail(out))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        with pytest.raises(LeaseBusy, match=f"pid {proc.pid}"):  # dead, but its lease has not expired yet
            with make_lease(team, clip):
                pass
        with make_lease(team, clip, wait=30, poll=0.1) as taker:
            taker.ensure()
            store, url = team
            if url is None:
                record = LeaseRecord.decode(store.get_bytes(f"leases/{clip}.json").data)
                assert record.holder == taker.holder and not record.released
    finally:
        stop_group(proc, grace=1)


def test_renewal_keeps_a_lease_past_its_ttl(team):
    clip = clip_key()
    with make_lease(team, clip, ttl=1.2) as lease:
        # four renewals, one every 0.4 s: the lease has outlived its 1.2 s TTL
        wait_for("four renewals", lambda: lease.renewals >= 4, timeout=30, interval=0.05)
        with pytest.raises(LeaseBusy):
            with make_lease(team, clip, ttl=1.2):
                pass
        assert not lease.lost
        lease.ensure()


def test_a_holder_whose_clock_lags_is_not_taken_over_while_it_renews(endpoint, monkeypatch):
    from shotflow.store import lease as leases

    store = s3_store(endpoint, BUCKET_URL)
    clip = clip_key()
    # the holder's wall clock is a minute behind: every record it writes looks long expired
    lagging = leases._utc
    monkeypatch.setattr(leases, "_utc", lambda seconds_from_now=0.0: lagging(seconds_from_now - 60))
    with StoreLease(store, clip, clock_skew=0.5, ttl=1.2) as holder:
        wait_for("a renewal", lambda: holder.renewals >= 1, timeout=30, interval=0.05)
        with pytest.raises(LeaseBusy):  # waits past a TTL: the holder's renewals keep it
            with StoreLease(store, clip, clock_skew=0.5, ttl=1.2, wait=2.5):
                pass
        holder.ensure()


def test_losing_the_lease_is_noticed_before_submitting(team):
    store, url = team
    clip = clip_key()
    reasons = []
    with make_lease(team, clip, ttl=1.5, on_lost=reasons.append) as lease:
        # another worker takes it over (as one whose clock ran ahead would)
        if url is None:
            current = store.get_bytes(lease.key)
            usurper = LeaseRecord(clip, "other-host:pid 1:abc", 30, "2030-01-01T00:00:00+00:00", "2030-01-01T00:00:30+00:00")
            store.put_bytes_if_match(lease.key, usurper.encode(), current.etag)
        else:
            lease.client.set(lease.name, "other-host:pid 1:abc", px=30_000)
        wait_for("the holder to notice", lambda: lease.lost, timeout=30, interval=0.05)
        with pytest.raises(LeaseLost, match=f"clip {clip}: lease lost"):
            lease.ensure()
    assert len(reasons) == 1
    if url is None:
        assert reasons[0] == f"clip {clip}: taken over by other-host:pid 1:abc"
        # the holder that lost it did not release the other's lease
        assert LeaseRecord.decode(store.get_bytes(f"leases/{clip}.json").data).holder == "other-host:pid 1:abc"
    else:
        assert "no longer ours" in reasons[0]
        assert lease.client.get(lease.name) == b"other-host:pid 1:abc"


def test_the_coordination_check_picks_the_lease(team, endpoint):
    _, url = team
    store = s3_store(endpoint, f"s3://shotflow-test/{uuid.uuid4().hex[:8]}")  # its own agreement record
    coordination = check_coordination(store, redis_url=url)
    lease = lease_for(clip_key(), store=store, coordination=coordination)
    assert isinstance(lease, RedisLease if url else StoreLease)


def test_a_holder_that_cannot_reach_redis_stops_counting_on_its_lease(tmp_path):
    import redis

    reasons = []
    with redis_server(tmp_path) as url:
        with RedisLease(url, "test", clip_key(), ttl=1.5, on_lost=reasons.append) as lease:
            lease.ensure()
            try:
                redis.Redis.from_url(url).shutdown(nosave=True)
            except redis.ConnectionError:
                pass  # the server closes the connection as it goes
            wait_for("the holder to give the lease up", lambda: lease.lost, timeout=30, interval=0.05)
            with pytest.raises(LeaseLost, match=r"lease lost \(not renewed for \d+\.\d s"):
                lease.ensure()
    assert len(reasons) == 1
