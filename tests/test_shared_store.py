"""The shared store (shotflow/store/shared.py, remote.py, coordination.py) against a real S3 endpoint.

moto's S3 runs as a server on 127.0.0.1 (tests/teamservers.py), reached over HTTP by boto3 exactly
as a worker reaches S3. Finding (moto 5.2.5, boto3 1.44): PutObject's `If-None-Match: *` answers
412 PreconditionFailed when the key exists, `If-Match` answers 412 on a wrong etag and 404 when
the key is gone; the stock threaded `python -m moto.server` honours both (the last test), but
checks and writes without a lock, so the race tests use moto's same app one request at a time.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from teamservers import endpoint_fixture, s3_client, s3_store, stock_moto_server  # noqa: F401 (endpoint_fixture: the fixture `endpoint`)

from shotflow.store.coordination import AGREEMENT, UnsafeStoreError, check_coordination, probe_capabilities
from shotflow.store.remote import FsspecStore
from shotflow.store.shared import (
    ConditionFailed,
    CorruptObjectError,
    LocalStore,
    MissingObjectError,
    SharedStoreError,
    StoreLocation,
    open_store,
    parse_store,
)


@pytest.fixture
def store(endpoint):
    """A fresh prefix of the test bucket for each test."""
    return s3_store(endpoint, f"s3://shotflow-test/{uuid.uuid4().hex[:8]}")


def clip_file(folder: Path, size: int = 1_500_000, name: str = "clip.mp4") -> Path:
    path = folder / name
    path.write_bytes(os.urandom(size))
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_store_setting_is_a_folder_or_an_object_store_url(tmp_path):
    assert parse_store(None, default=tmp_path) == StoreLocation(str(tmp_path), "local", path=tmp_path)
    assert parse_store(" ", default=tmp_path).path == tmp_path
    assert parse_store(f"file://{tmp_path}", default=Path("/x")).path == tmp_path
    s3 = parse_store("s3://team-bucket/shotflow/prod/", default=tmp_path)
    assert (s3.scheme, s3.bucket, s3.prefix, s3.url, s3.shared) == (
        "s3",
        "team-bucket",
        "shotflow/prod",
        "s3://team-bucket/shotflow/prod",
        True,
    )
    assert s3.url_of("clips/k.mp4") == "s3://team-bucket/shotflow/prod/clips/k.mp4"
    assert parse_store("gs://b", default=tmp_path).prefix == ""
    assert parse_store("az://container/p", default=tmp_path).scheme == "az"
    for bad, says in [("http://host/x", "not a store"), ("s3:///prefix", "bucket"), ("s3://b/p?endpoint=x", "no query")]:
        with pytest.raises(SharedStoreError, match=says):
            parse_store(bad, default=tmp_path)


def test_upload_is_verified_and_downloads_land_in_the_content_addressed_cache(store, tmp_path):
    clip = clip_file(tmp_path)
    info = store.put_file(clip, "clips/k1.mp4")
    assert (info.size, info.sha256) == (clip.stat().st_size, sha(clip))
    assert store.exists("clips/k1.mp4") and not store.exists("clips/k2.mp4")
    assert store.list("clips/") == ["clips/k1.mp4"]

    cache = tmp_path / "cache"
    got = store.get_file("clips/k1.mp4", cache)
    assert got == cache / "objects" / "sha256" / info.sha256[:2] / f"{info.sha256}.mp4"
    assert got.read_bytes() == clip.read_bytes()
    inode = got.stat().st_ino
    assert store.get_file("clips/k1.mp4", cache).stat().st_ino == inode  # a hit: not fetched again
    assert [p.name for p in got.parent.iterdir()] == [got.name]  # no temp file left

    store.delete("clips/k1.mp4")
    with pytest.raises(MissingObjectError, match=r"s3://shotflow-test/.*/clips/k1.mp4: no such object"):
        store.get_file("clips/k1.mp4", cache)


def test_a_large_file_goes_up_in_parts_with_its_hash(endpoint, tmp_path):
    from shotflow.store.remote import S3Store

    base = s3_store(endpoint, f"s3://shotflow-test/{uuid.uuid4().hex[:8]}")
    store = S3Store(base.location, client=base.client, multipart_threshold=5 << 20)
    clip = clip_file(tmp_path, size=11 << 20)
    info = store.put_file(clip, "videos/final.mp4", read_back=True)
    assert info.etag.endswith('-3"')  # three parts of 5 MiB, 5 MiB and 1 MiB
    assert sha(store.get_file("videos/final.mp4", tmp_path / "cache")) == sha(clip)


def test_a_corrupted_object_is_detected_and_kept_out_of_the_cache(store, tmp_path):
    clip = clip_file(tmp_path)
    info = store.put_file(clip, "clips/k.mp4")
    # the bytes change under the recorded hash (bit rot, a tool writing over it)
    damaged = bytearray(clip.read_bytes())
    damaged[1000] ^= 0xFF
    store.client.put_object(
        Bucket="shotflow-test", Key=store._name("clips/k.mp4"), Body=bytes(damaged), Metadata={"sha256": info.sha256}
    )
    cache = tmp_path / "cache"
    with pytest.raises(CorruptObjectError, match=r"clips/k.mp4: read 1500000 bytes with sha256 .* but it was put as"):
        store.get_file("clips/k.mp4", cache)
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_reading_back_catches_an_upload_that_is_not_the_file(store, tmp_path):
    clip = clip_file(tmp_path)
    with pytest.raises(CorruptObjectError, match="clips/k.mp4: read .* but it was put as"):
        store.put_file(clip, "clips/k.mp4", sha256="0" * 64, read_back=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]  # the read-back copy is gone


def test_an_object_not_put_by_shotflow_is_not_trusted(store, tmp_path):
    store.client.put_object(Bucket="shotflow-test", Key=store._name("clips/k.mp4"), Body=b"x")
    with pytest.raises(CorruptObjectError, match="no recorded sha256"):
        store.get_file("clips/k.mp4", tmp_path)


def test_a_presigned_url_opens_the_object_without_credentials(store, tmp_path):
    clip = clip_file(tmp_path, size=20_000)
    store.put_file(clip, "videos/film.mp4")
    url = store.url("videos/film.mp4", expires=600)
    assert "Signature=" in url and "shotflow-test-secret" not in url
    answer = httpx.get(url, timeout=10)
    assert answer.status_code == 200 and answer.content == clip.read_bytes()


def test_conditional_writes(store):
    etag = store.put_bytes_if_absent("jobs/k.json", b"intended")
    with pytest.raises(
        ConditionFailed, match=r"jobs/k.json: creating it if absent: another writer got there first \(PreconditionFailed\)"
    ):
        store.put_bytes_if_absent("jobs/k.json", b"second")
    with pytest.raises(ConditionFailed, match="replacing it if unchanged"):
        store.put_bytes_if_match("jobs/k.json", b"stale", '"00000000000000000000000000000000"')
    newer = store.put_bytes_if_match("jobs/k.json", b"submitted", etag)
    assert store.get_bytes("jobs/k.json").data == b"submitted" and newer != etag
    with pytest.raises(ConditionFailed):
        store.put_bytes_if_match("jobs/k.json", b"again", etag)  # the etag it replaced is stale now
    with pytest.raises(ConditionFailed, match="it is gone"):
        store.put_bytes_if_match("jobs/none.json", b"x", newer)


def test_of_simultaneous_creates_of_one_record_exactly_one_wins(store):
    for round_ in range(10):
        barrier, wins, losses = threading.Barrier(6), [], []

        def create(i: int) -> None:
            barrier.wait()
            try:
                store.put_bytes_if_absent(f"jobs/race{round_}.json", f"writer {i}".encode())
                wins.append(i)
            except ConditionFailed:
                losses.append(i)

        threads = [threading.Thread(target=create, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(wins) == 1 and len(losses) == 5, (round_, wins, losses)
        assert store.get_bytes(f"jobs/race{round_}.json").data == f"writer {wins[0]}".encode()


def test_an_endpoint_honouring_conditional_writes_coordinates_with_store_leases(store):
    capabilities = probe_capabilities(store)
    assert capabilities.conditional_writes and capabilities.shared, capabilities.detail
    coordination = check_coordination(store, redis_url=None, capabilities=capabilities)
    assert coordination.mode == "store"
    assert store.list(".shotflow/") == [AGREEMENT]  # the probe's scratch object is gone
    # a second worker configured the same way agrees; one pointed at Redis is refused
    assert check_coordination(store, redis_url="", capabilities=capabilities).mode == "store"
    with pytest.raises(
        UnsafeStoreError, match=r"Redis locks at redis://cache:6379/0, but .*coordination.json says .* conditional writes"
    ):
        check_coordination(store, redis_url="redis://:hunter2@cache:6379/0", capabilities=capabilities)


def test_a_store_that_ignores_conditional_writes_refuses_to_run_without_redis(endpoint):
    store = s3_store(endpoint, "s3://no-conditions-bucket/team")
    capabilities = probe_capabilities(store)
    assert not capabilities.conditional_writes
    assert capabilities.detail == "a second create-if-absent (If-None-Match: *) of one key succeeded"
    with pytest.raises(UnsafeStoreError) as refused:
        check_coordination(store, redis_url=None, capabilities=capabilities)
    message = str(refused.value)
    assert "s3://no-conditions-bucket/team cannot keep two machines from paying for one shot" in message
    assert "SHOTFLOW_REDIS_URL is not set" in message
    coordination = check_coordination(store, redis_url="redis://:hunter2@cache:6379/0", capabilities=capabilities)
    assert coordination.mode == "redis" and coordination.described == "Redis locks at redis://cache:6379/0"
    assert "hunter2" not in store.get_bytes(AGREEMENT).data.decode()


def test_a_local_folder_keeps_the_same_interface(tmp_path):
    store = open_store(parse_store(str(tmp_path / "store"), default=tmp_path))
    assert isinstance(store, LocalStore)
    clip = clip_file(tmp_path)
    info = store.put_file(clip, "clips/k.mp4", read_back=True)
    assert store.get_file("clips/k.mp4", tmp_path / "cache") == tmp_path / "store" / "clips" / "k.mp4"
    assert info.sha256 == sha(clip) and store.list() == ["clips/k.mp4"]
    etag = store.put_bytes_if_absent("leases/k.json", b"a")
    with pytest.raises(ConditionFailed):
        store.put_bytes_if_absent("leases/k.json", b"b")
    store.put_bytes_if_match("leases/k.json", b"c", etag)
    (tmp_path / "store" / "clips" / "k.mp4").write_bytes(b"x" * info.size)
    with pytest.raises(CorruptObjectError, match="clips/k.mp4: its bytes do not match"):
        store.get_file("clips/k.mp4", tmp_path / "cache")
    capabilities = probe_capabilities(store)
    assert capabilities.conditional_writes and not capabilities.shared
    assert check_coordination(store, redis_url=None).mode == "store"


def test_a_store_without_conditional_writes_needs_redis(tmp_path):
    # fsspec's in-memory file system stands in for gs:// and az:// (no conditional writes here)
    store = FsspecStore(StoreLocation("memory://team/shotflow", "memory", bucket="team", prefix="shotflow"))
    clip = clip_file(tmp_path)
    store.put_file(clip, "clips/k.mp4")
    assert sha(store.get_file("clips/k.mp4", tmp_path / "cache")) == sha(clip)
    assert store.list() == ["clips/k.mp4"]
    capabilities = probe_capabilities(store)
    assert not capabilities.conditional_writes and "memory:// store has no conditional writes" in capabilities.detail
    with pytest.raises(UnsafeStoreError, match="SHOTFLOW_REDIS_URL is not set"):
        check_coordination(store, redis_url=None, capabilities=capabilities)
    assert check_coordination(store, redis_url="redis://127.0.0.1:1/0", capabilities=capabilities).mode == "redis"


def test_moto_server_as_shipped_honours_conditional_writes(tmp_path):
    with stock_moto_server(tmp_path) as stock:
        client = s3_client(stock)
        client.create_bucket(Bucket="shotflow-test")
        store = s3_store(stock, "s3://shotflow-test/probe")
        capabilities = probe_capabilities(store)
    assert capabilities.conditional_writes, capabilities.detail
