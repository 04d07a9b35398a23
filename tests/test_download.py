"""Downloading a paid clip: allowed hosts only, capped, checked, verified, retried in place; a
complete copy that fails verification is kept aside (quarantined), everything else is "try again
later" from the same URL."""

from __future__ import annotations

import fakefal  # first: points fal_client and httpx at the fake server
import pytest

from shotflow.errors import DownloadError
from shotflow.generation.fal.download import check_media_url, download_clip, host_allowed
from shotflow.generation.retry import RetryPolicy
from shotflow.media import probe
from shotflow.store.clips import ClipStore

fakefal.ensure_server()
fake_fal = fakefal.fake_fal  # the fixture, also when tests/conftest.py does not register the plugin

KEY = "d" * 64


@pytest.fixture
def store(tmp_path):
    return ClipStore(tmp_path / "cache")


def fetch(url, store, *, allowed=("127.0.0.1",), max_bytes=10_000_000, seconds=5, attempts=4, backoff=0.01, on_retry=None):
    return download_clip(
        url,
        store,
        KEY,
        allowed_hosts=allowed,
        max_bytes=max_bytes,
        expected_seconds=seconds,
        tolerance=0.5,
        policy=RetryPolicy(attempts=attempts, first_wait=backoff),
        timeout=60.0,
        on_retry=on_retry,
    )


def leftovers(store):
    return [p.name for p in store.clips.iterdir() if p.name.endswith(".part")]


def later(info) -> DownloadError:
    """The error of a download to try again later: nothing kept aside, nothing stored."""
    error = info.value
    assert error.quarantined is None and error.transient
    return error


def test_a_clip_lands_verified_in_the_store_without_any_credentials_sent(fake_fal, store):
    stored = fetch(fake_fal.publish(5), store)
    assert stored.path == store.path(KEY) and stored.size == store.path(KEY).stat().st_size
    assert store.find(KEY) == stored.path and len(stored.sha256) == 64
    assert probe.verify(stored.path, expected_seconds=5).duration == 5
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
    assert "https" in str(info.value)
    later(info)  # not "gone": the URL stays with the request


def test_a_host_not_allowed_is_refused_before_any_request_but_not_given_up(fake_fal, store):
    url = fake_fal.publish(5)
    with pytest.raises(DownloadError) as info:
        fetch(url, store, allowed=("fal.media",))
    assert "not an allowed media host" in str(info.value) and "SHOTFLOW_MEDIA_HOSTS" in str(info.value)
    assert later(info).refused  # waits for the setting, not for time
    assert fake_fal.count("media") == 0
    # the user trusts the host: the same URL is fetched, nothing is bought again
    assert fetch(url, store, allowed=("fal.media", "127.0.0.1")).path == store.path(KEY)


def test_a_result_on_a_foreign_host_is_refused_but_kept_for_later(fake_fal, store):
    fake_fal.fault("job", outcome="foreign_host")
    rid, seconds = submit_and_finish(fake_fal)
    url = f"https://localhost:{fake_fal.port}/media/{rid}.mp4"
    with pytest.raises(DownloadError) as info:
        fetch(url, store, seconds=seconds)
    assert "localhost is not an allowed media host" in str(info.value)
    later(info)
    assert fake_fal.count("media") == 0 and store.find(KEY) is None
    assert fetch(url, store, allowed=("127.0.0.1", "localhost"), seconds=seconds).path == store.path(KEY)
    assert fake_fal.count("media") == 1


def test_a_redirect_is_followed_only_to_an_allowed_host(fake_fal, store):
    target = fake_fal.publish(5)
    fake_fal.fault("media", redirect=target)
    assert fetch(fake_fal.publish(5), store).path == store.path(KEY)
    fake_fal.fault("media", redirect="https://elsewhere.example/x.mp4")
    with pytest.raises(DownloadError) as info:
        fetch(fake_fal.publish(5), store)
    assert "elsewhere.example" in str(info.value)
    later(info)


def test_a_declared_size_over_the_cap_is_refused_without_reading_it(fake_fal, store):
    with pytest.raises(DownloadError) as info:
        fetch(fake_fal.publish(5), store, max_bytes=100)
    assert "cap" in str(info.value)
    later(info)
    assert fake_fal.count("media") == 1 and store.find(KEY) is None


def test_an_undeclared_size_is_capped_by_the_bytes_received(fake_fal, store):
    fake_fal.fault("media", chunked=True)
    with pytest.raises(DownloadError) as info:
        fetch(fake_fal.publish(5), store, max_bytes=1000)
    assert "cap" in str(info.value)
    later(info)
    assert store.find(KEY) is None and leftovers(store) == []


def test_a_chunked_clip_within_the_cap_is_fine(fake_fal, store):
    fake_fal.fault("media", chunked=True)
    assert fetch(fake_fal.publish(5), store).path == store.path(KEY)


def test_a_cut_connection_is_fetched_again_from_the_same_url(fake_fal, store):
    retries = []
    fake_fal.fault("media", truncate="cut")
    url = fake_fal.publish(5)
    fetch(url, store, on_retry=lambda attempt, why: retries.append(why))
    assert fake_fal.count("media") == 2
    assert len(retries) == 1 and "cut" in retries[0]
    assert probe.verify(store.path(KEY), expected_seconds=5)


def test_a_connection_cut_every_time_is_tried_again_later_not_kept_aside(fake_fal, store):
    fake_fal.fault("media", truncate="cut", times=10)
    with pytest.raises(DownloadError) as info:
        fetch(fake_fal.publish(5), store, attempts=2)
    later(info)
    assert fake_fal.count("media") == 2 and store.quarantined(KEY) is None and leftovers(store) == []


def test_a_truncated_faststart_file_with_a_matching_length_is_caught_and_fetched_again(fake_fal, store):
    retries = []
    fake_fal.fault("media", truncate="file", times=2)
    fetch(fake_fal.publish(5), store, on_retry=lambda attempt, why: retries.append(why))
    assert fake_fal.count("media") == 3
    assert all("truncated" in why for why in retries) and len(retries) == 2
    assert probe.verify(store.path(KEY), expected_seconds=5).video_packets == 20


def test_a_copy_that_stays_broken_is_fetched_attempts_times_then_kept_aside(fake_fal, store):
    fake_fal.fault("media", truncate="file", times=10)
    with pytest.raises(DownloadError) as info:
        fetch(fake_fal.publish(5), store, attempts=3)
    error = info.value
    assert "truncated" in error.reason and "download 3 of 3" in error.reason
    assert error.quarantined == store.quarantine_path(KEY) and not error.transient
    assert fake_fal.count("media") == 3
    kept, reason = store.quarantined(KEY)
    assert kept == error.quarantined and "truncated" in reason and "http" not in reason
    assert store.find(KEY) is None and leftovers(store) == []
    # the user vouches for it: it moves into the store, nothing fetched or bought again
    accepted = store.accept(KEY)
    assert accepted.path == store.path(KEY) and store.find(KEY) == store.path(KEY)
    assert store.quarantined(KEY) is None and fake_fal.count("media") == 3


def test_a_clip_of_the_wrong_length_is_kept_aside_at_once_not_downloaded_in_a_loop(fake_fal, store):
    url = fake_fal.publish(5)
    with pytest.raises(DownloadError) as info:
        fetch(url + "?token=SIGNATURE123", store, seconds=10, attempts=4)
    error = info.value
    assert "expected 10 s" in error.reason and str(error.quarantined) in str(error)
    assert "SIGNATURE123" not in str(error)
    assert fake_fal.count("media") == 1  # the media itself is like that: fetching it again cannot help
    kept, reason = store.quarantined(KEY)
    assert kept.is_file() and "lasts 5.00 s, expected 10 s" in reason and "SIGNATURE" not in reason
    assert probe.verify(kept).duration == 5  # the paid clip, intact
    assert store.find(KEY) is None


def test_a_job_delivering_a_short_clip_is_quarantined_once(fake_fal, store):
    fake_fal.fault("job", outcome="short")
    rid, seconds = submit_and_finish(fake_fal)
    with pytest.raises(DownloadError) as info:
        fetch(f"{fake_fal.base}/media/{rid}.mp4", store, seconds=seconds)
    assert f"lasts 1.00 s, expected {seconds} s" in info.value.reason
    assert fake_fal.count("media") == 1 and store.quarantined(KEY)[0] == info.value.quarantined


def test_a_server_error_is_retried(fake_fal, store):
    fake_fal.fault("media", 503)
    fetch(fake_fal.publish(5), store)
    assert fake_fal.count("media", status=503) == 1 and store.find(KEY)


def test_media_refused_for_a_while_is_fetched_once_it_is_served(fake_fal, store):
    fake_fal.fault("media", 403, for_seconds=0.3)
    url = fake_fal.publish(5)
    with pytest.raises(DownloadError) as info:
        fetch(url, store, attempts=1)
    assert info.value.status == 403 and "403" in str(info.value)
    later(info)
    # within the run: with backoff (0.1 + 0.2 + 0.4 s) the window has passed
    retries = []
    stored = fetch(url, store, attempts=4, backoff=0.1, on_retry=lambda attempt, why: retries.append(why))
    assert stored.path == store.path(KEY) and retries and all("403" in why for why in retries)
    assert fake_fal.count("media", status=403) >= 2 and fake_fal.count("media", status=200) == 1


def test_a_gone_url_is_tried_again_later(fake_fal, store):
    with pytest.raises(DownloadError) as info:
        fetch(f"{fake_fal.base}/media/nothing-here.mp4", store, attempts=2)
    assert "404" in str(info.value) and info.value.status == 404
    later(info)
    assert fake_fal.count("media") == 2  # bounded by `attempts`; the caller decides when it is lost


def test_query_strings_of_signed_urls_stay_out_of_messages(fake_fal, store):
    retries = []
    with pytest.raises(DownloadError) as info:
        fetch(
            f"{fake_fal.base}/media/nothing-here.mp4?token=SIGNATURE123",
            store,
            attempts=2,
            on_retry=lambda attempt, why: retries.append(why),
        )
    assert "SIGNATURE123" not in str(info.value) and "SIGNATURE123" not in info.value.reason
    assert retries and not any("SIGNATURE123" in why for why in retries)


def test_a_full_disk_while_downloading_is_one_clear_error_naming_the_store(fake_fal, store, monkeypatch):
    import errno
    import os

    from shotflow.store import StoreFullError

    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StoreFullError) as info:
        fetch(fake_fal.publish(5), store)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert str(info.value).startswith(f"no space left on the device holding {store.clips}")
    assert fake_fal.count("media") == 1 and leftovers(store) == [] and store.find(KEY) is None


def test_download_errors_survive_pickling_with_their_meaning(tmp_path):
    import pickle

    error = DownloadError("https://m/x.mp4: lasts 1 s", reason="lasts 1 s", quarantined=tmp_path / "q.mp4", status=None)
    again = pickle.loads(pickle.dumps(error))
    assert (str(again), again.reason, again.quarantined, again.transient) == (str(error), "lasts 1 s", tmp_path / "q.mp4", False)
    refused = pickle.loads(pickle.dumps(DownloadError("no", status=403, refused=True)))
    assert (refused.status, refused.refused, refused.quarantined) == (403, True, None)


def submit_and_finish(fake_fal) -> tuple[str, int]:
    """A finished job on the fake queue (its result fetched as a client would): its id and seconds asked."""
    import ssl

    import httpx

    base = fake_fal.base
    headers = {"Authorization": f"Key {fakefal.KEY}"}
    with httpx.Client(verify=ssl.create_default_context(cafile=str(fake_fal.ca_file)), headers=headers) as client:
        answer = client.post(f"{base}/fal-ai/veo3", json={"prompt": "a harbour at dawn"}).json()
        rid = answer["request_id"]
        while client.get(answer["status_url"]).status_code != 200:
            pass
        result = client.get(answer["response_url"]).json()
    assert result["video"]["url"].endswith(f"/media/{rid}.mp4")
    return rid, fake_fal.jobs[rid].seconds


def test_two_downloads_of_one_clip_finishing_together_both_succeed(fake_fal, store):
    import threading

    url, results, errors = fake_fal.publish(5), [], []

    def run():
        try:
            results.append(fetch(url, store))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(set(results)) == 1
    assert not (store.clips / "superseded").exists() and leftovers(store) == []


def test_an_error_page_served_as_a_clip_is_tried_again_later_not_kept_aside(fake_fal, store):
    fake_fal.fault("media", body=b"<html><body>Service busy</body></html>", times=10)
    with pytest.raises(DownloadError) as info:
        fetch(fake_fal.publish(5), store, attempts=2)
    assert "not a video" in info.value.reason
    later(info)
    assert fake_fal.count("media") == 2 and store.quarantined(KEY) is None and leftovers(store) == []
