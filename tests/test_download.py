"""Downloading a generated clip: allowed hosts only, capped, checked, verified, retried in place."""

from __future__ import annotations

import fakefal  # first: points fal_client and httpx at the fake server
import pytest

from shotflow import probe
from shotflow.clipstore import ClipStore
from shotflow.download import check_media_url, download_clip, host_allowed
from shotflow.errors import DownloadError

fakefal.ensure_server()
fake_fal = fakefal.fake_fal  # the fixture, also when tests/conftest.py does not register the plugin

KEY = "d" * 64


@pytest.fixture
def store(tmp_path):
    return ClipStore(tmp_path / "cache")


def fetch(url, store, *, allowed=("127.0.0.1",), max_bytes=10_000_000, seconds=5, attempts=4, on_retry=None):
    return download_clip(
        url,
        store,
        KEY,
        allowed_hosts=allowed,
        max_bytes=max_bytes,
        expected_seconds=seconds,
        attempts=attempts,
        backoff=0.01,
        on_retry=on_retry,
    )


def leftovers(store):
    return [p.name for p in store.clips.iterdir() if p.name.endswith(".part")]


def test_a_clip_lands_verified_in_the_store_without_any_credentials_sent(fake_fal, store):
    path = fetch(fake_fal.publish(5), store)
    assert path == store.path(KEY)
    assert probe.verify(path, expected_seconds=5).duration == 5
    media = [c for c in fake_fal.calls if c.op == "media"]
    assert len(media) == 1 and media[0].authorization is None
    assert leftovers(store) == []


@pytest.mark.parametrize(
    "url, allowed, ok",
    [
        ("https://v3.fal.media/files/x.mp4", ["fal.media"], True),
        ("https://fal.media/x.mp4", ["fal.media"], True),
        ("https://evilfal.media/x.mp4", ["fal.media"], False),
        ("https://fal.media.evil.com/x.mp4", ["fal.media"], False),
        ("https://127.0.0.1:8443/x.mp4", ["127.0.0.1"], True),  # a host entry allows any port
        ("https://127.0.0.1:8443/x.mp4", ["127.0.0.1:9000"], False),  # host:port allows that port only
        ("https://127.0.0.1:9000/x.mp4", ["127.0.0.1:9000"], True),
        ("https://media.example:443/x.mp4", ["media.example:443"], True),
        ("https://x.127.0.0.1/x.mp4", ["127.0.0.1"], False),  # no "subdomains" of an address
        ("https://[::1]:8443/x.mp4", ["::1"], True),
        ("https://user@fal.media.evil.com/x.mp4", ["fal.media"], False),
    ],
)
def test_allowed_hosts_match_exactly_or_as_a_parent_domain(url, allowed, ok):
    assert host_allowed(url, allowed) is ok


def test_only_https_is_fetched():
    with pytest.raises(DownloadError) as info:
        check_media_url("http://fal.media/x.mp4", ["fal.media"])
    assert "https" in str(info.value) and not info.value.transient


def test_a_host_not_allowed_is_refused_before_any_request(fake_fal, store):
    with pytest.raises(DownloadError) as info:
        fetch(fake_fal.publish(5), store, allowed=("fal.media",))
    assert "not an allowed media host" in str(info.value) and "SHOTFLOW_MEDIA_HOSTS" in str(info.value)
    assert not info.value.transient
    assert fake_fal.count("media") == 0


def test_a_redirect_is_followed_only_to_an_allowed_host(fake_fal, store):
    target = fake_fal.publish(5)
    fake_fal.fault("media", redirect=target)
    assert fetch(fake_fal.publish(5), store) == store.path(KEY)
    fake_fal.fault("media", redirect="https://elsewhere.example/x.mp4")
    with pytest.raises(DownloadError) as info:
        fetch(fake_fal.publish(5), store)
    assert "elsewhere.example" in str(info.value) and not info.value.transient


def test_a_declared_size_over_the_cap_is_refused_without_reading_it(fake_fal, store):
    with pytest.raises(DownloadError) as info:
        fetch(fake_fal.publish(5), store, max_bytes=100)
    assert "cap" in str(info.value) and not info.value.transient
    assert fake_fal.count("media") == 1 and store.find(KEY) is None


def test_an_undeclared_size_is_capped_by_the_bytes_received(fake_fal, store):
    fake_fal.fault("media", chunked=True)
    with pytest.raises(DownloadError) as info:
        fetch(fake_fal.publish(5), store, max_bytes=1000)
    assert "cap" in str(info.value)
    assert store.find(KEY) is None and leftovers(store) == []


def test_a_chunked_clip_within_the_cap_is_fine(fake_fal, store):
    fake_fal.fault("media", chunked=True)
    assert fetch(fake_fal.publish(5), store) == store.path(KEY)


def test_a_cut_connection_is_fetched_again_from_the_same_url(fake_fal, store):
    retries = []
    fake_fal.fault("media", truncate="cut")
    url = fake_fal.publish(5)
    fetch(url, store, on_retry=lambda attempt, why: retries.append(why))
    assert fake_fal.count("media") == 2
    assert len(retries) == 1 and "cut off" in retries[0]
    assert probe.verify(store.path(KEY), expected_seconds=5)


def test_a_truncated_faststart_file_with_a_matching_length_is_caught_and_fetched_again(fake_fal, store):
    retries = []
    fake_fal.fault("media", truncate="file", times=2)
    fetch(fake_fal.publish(5), store, on_retry=lambda attempt, why: retries.append(why))
    assert fake_fal.count("media") == 3
    assert all("truncated" in why for why in retries) and len(retries) == 2
    assert probe.verify(store.path(KEY), expected_seconds=5).video_packets == 20


def test_a_copy_that_stays_damaged_fails_transiently_and_leaves_nothing_behind(fake_fal, store):
    fake_fal.fault("media", truncate="file", times=10)
    with pytest.raises(DownloadError) as info:
        fetch(fake_fal.publish(5), store, attempts=3)
    assert info.value.transient and "truncated" in str(info.value)
    assert fake_fal.count("media") == 3
    assert store.find(KEY) is None and leftovers(store) == []


def test_a_clip_of_the_wrong_length_is_not_stored(fake_fal, store):
    with pytest.raises(DownloadError) as info:
        fetch(fake_fal.publish(5), store, seconds=10, attempts=2)
    assert "expected 10" in str(info.value)
    assert store.find(KEY) is None


def test_a_server_error_is_retried(fake_fal, store):
    fake_fal.fault("media", 503)
    fetch(fake_fal.publish(5), store)
    assert fake_fal.count("media", status=503) == 1 and store.find(KEY)


def test_a_gone_url_fails_at_once(fake_fal, store):
    with pytest.raises(DownloadError) as info:
        fetch(f"{fake_fal.base}/media/nothing-here.mp4", store)
    assert "gone (404)" in str(info.value) and not info.value.transient
    assert fake_fal.count("media") == 1


def test_query_strings_of_signed_urls_stay_out_of_messages(fake_fal, store):
    with pytest.raises(DownloadError) as info:
        fetch(f"{fake_fal.base}/media/nothing-here.mp4?token=SIGNATURE123", store)
    assert "SIGNATURE123" not in str(info.value)
