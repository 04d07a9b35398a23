"""FalBackend against the fake fal queue, through the real fal_client over TLS.

What a user pays for is the point: every fault is survived with each body billed once, a submit
whose answer is lost is uncertain and never sent again without `--force` (which pays once per
token), a run killed with SIGKILL is resumed without a new submit, a paid clip whose media fails
is kept until fal's media retention has passed, refusals fail fast and say why, and the key shows
up nowhere.
"""

from __future__ import annotations

import fakefal  # first: points fal_client and httpx at the fake server

fakefal.ensure_server()

import contextlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import pickle  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import replace  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import fal_client.client  # noqa: E402
import httpx  # noqa: E402
import pytest  # noqa: E402
from fal_client import FalClientHTTPError  # noqa: E402

from shotflow.catalog import MODELS  # noqa: E402
from shotflow.errors import GenerationError, MissingKeyError  # noqa: E402
from shotflow.generation import retry  # noqa: E402
from shotflow.generation.fal.backend import FalBackend  # noqa: E402
from shotflow.generation.fal.errors import classify  # noqa: E402
from shotflow.generation.fal.submit import fal_client_internals  # noqa: E402
from shotflow.media import probe  # noqa: E402
from shotflow.plan import plan_from_text  # noqa: E402
from shotflow.settings import Settings  # noqa: E402
from shotflow.store.clips import ClipStore  # noqa: E402
from shotflow.store.journal import JobRecord, Journal  # noqa: E402

fake_fal = fakefal.fake_fal  # the fixture, also when tests/conftest.py does not register the plugin
KEY = fakefal.KEY


def storyboard(*shots: str) -> str:
    return "version: 1\ntitle: t\nshots:\n" + "".join(f"  - {s}\n" for s in shots)


def a_shot(prompt: str = "a harbour at dawn", model: str = "kling", extra: str = "duration: 5"):
    return plan_from_text(storyboard(f"{{id: opening, prompt: '{prompt}', model: {model}, {extra}}}"), "sb.yaml").shots[0]


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def make_backend(cache: Path, *, settings=None, key=None, **knobs) -> FalBackend:
    """A FalBackend on the fake server, quick to poll and retry; `knobs` are Settings fields."""
    knobs = dict(fal_poll_interval=0.02, fal_retry_backoff=0.01, fal_retries=3) | knobs
    settings = (settings or fakefal.settings_for(cache)).model_copy(update=knobs)
    return FalBackend(ClipStore(cache), settings=settings, key=key)


def generate_retrying_forced(backend: FalBackend, shot, token: str, *, attempts: int = retry.TASK.attempts):
    """What the Prefect task does for a forced shot: each retry passes the same run token."""
    for attempt in range(attempts):
        try:
            return backend.generate(shot, force=token)
        except GenerationError as exc:
            if not retry.task_retries(exc) or attempt == attempts - 1:
                raise


def generate_retrying(backend: FalBackend, shot, *, attempts: int = retry.TASK.attempts, events=None):
    """What the Prefect task does: retry what it owns (its delays left out), with the task's own
    condition (shotflow.generation.retry.task_retries)."""
    for attempt in range(attempts):
        try:
            return backend.generate(shot, on_event=(events.append if events is not None else None) or (lambda e: None))
        except GenerationError as exc:
            if not retry.task_retries(exc) or attempt == attempts - 1:
                raise


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    """Poll something observable (a file, a counter) until it holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# --- the happy path ----------------------------------------------------------------------------


def test_the_request_slot_is_held_only_for_a_request_and_a_clip_stored_while_waiting_for_it_is_a_store_hit(fake_fal, cache):
    """`request_slot` (a server's global limit) is taken around the request, not for a store hit;
    a clip another run stored while this one waited for its slot is taken from the store, not
    re-attached to and reported as this run's."""
    shot = a_shot()
    held = []

    @contextlib.contextmanager
    def slot(label, emit):
        held.append(label)
        if len(held) == 2:  # meanwhile another run (the first backend) generated and stored the clip
            make_backend(cache).generate(shot)
        yield

    def with_slot() -> FalBackend:
        backend = make_backend(cache)
        backend.request_slot = slot
        return backend

    other = a_shot("a harbour at night")
    assert not with_slot().generate(other).cache_hit and len(held) == 1  # a request holds one
    events = []
    clip = with_slot().generate(shot, on_event=events.append)
    assert clip.cache_hit and [e.kind for e in events] == ["cached"] and len(held) == 2
    assert fake_fal.count("submit") == 2  # `other`, and the other run's; none for this one
    assert with_slot().generate(shot).cache_hit and len(held) == 2  # a store hit takes no slot


def test_a_shot_is_submitted_polled_downloaded_verified_and_journaled(fake_fal, cache):
    shot = a_shot()
    events = []
    clip = make_backend(cache).generate(shot, on_event=events.append)

    assert not clip.cache_hit and clip.backend == "fal" and clip.request_id
    assert probe.verify(clip.path, expected_seconds=5).duration == 5
    kinds = [e.kind for e in events]
    assert kinds[0] == "submitted" and events[0].request_id == clip.request_id
    assert "queued" in kinds and "running" in kinds and "log" in kinds and kinds[-1] == "downloading"
    assert kinds.index("submitted") < kinds.index("queued") < kinds.index("running") < kinds.index("downloading")
    assert any(e.kind == "queued" and e.queue_position is not None for e in events)
    assert any(e.kind == "log" and "denoising" in e.detail for e in events)

    record = Journal(cache / "jobs").read(clip.key)
    assert record.state == "downloaded" and record.request_id == clip.request_id
    assert record.video_url.endswith(f"/media/{clip.request_id}.mp4")
    assert record.status_url and record.response_url and record.cancel_url and record.attempts == 1
    assert fake_fal.billed == {shot.body_hash: 1}


def test_a_stored_clip_is_returned_without_calling_fal(fake_fal, cache):
    shot = a_shot()
    first = make_backend(cache).generate(shot)
    calls = len(fake_fal.calls)
    events = []
    again = make_backend(cache).generate(shot, on_event=events.append)
    assert again.cache_hit and again.path == first.path and again.request_id == first.request_id
    assert [e.kind for e in events] == ["cached"]
    assert len(fake_fal.calls) == calls


def test_every_one_of_the_ten_endpoints_delivers_a_clip_of_the_asked_length(fake_fal, cache):
    lines = []
    for i, spec in enumerate(MODELS):
        seconds = max(spec.seconds)
        extra = f"duration: {seconds}" if spec.durations else f"duration: {spec.native_duration}"
        if spec.has_field("resolution"):
            extra += f", resolution: {spec.resolutions[0]}"
        lines.append(f"{{id: s{i}, prompt: 'shot {i}', model: {spec.alias}, {extra}}}")
    plan = plan_from_text(storyboard(*lines), "sb.yaml")
    backend = make_backend(cache)
    with ThreadPoolExecutor(len(plan.shots)) as pool:
        clips = list(pool.map(backend.generate, plan.shots))
    for shot, clip in zip(plan.shots, clips):
        assert probe.verify(clip.path).duration == shot.seconds, shot.endpoint
    assert fake_fal.billed == {s.body_hash: 1 for s in plan.shots}


# --- faults: survived, and each body billed once -----------------------------------------------

FAULTS = {
    "429 on submit (asked again in the call)": [("submit", 429, dict(times=2))],
    "503 on submit from the app (asked again in the call)": [("submit", 503, {})],
    "503 on submit without a request id": [("submit", 503, dict(request_id_header=False))],
    "408 on submit (asked again in the call)": [("submit", 408, {})],
    "503 on status polls": [("status", 503, dict(times=2))],
    "429 on a status poll": [("status", 429, {})],
    "504 on the result after COMPLETED": [("result", 504, dict(times=2))],
    "500 on the result without a request id": [("result", 500, dict(request_id_header=False))],
    "a cut download": [("media", None, dict(truncate="cut"))],
    "a truncated faststart file": [("media", None, dict(truncate="file", times=2))],
    "503 from the media host": [("media", 503, {})],
    "everything at once": [
        ("submit", 429, {}),
        ("status", 503, {}),
        ("result", 504, {}),
        ("media", None, dict(truncate="file")),
    ],
}


@pytest.mark.parametrize("faults", FAULTS.values(), ids=FAULTS.keys())
def test_a_fault_is_survived_without_a_second_submit(fake_fal, cache, faults):
    for op, status, kw in faults:
        fake_fal.fault(op, status, **kw)
    shot = a_shot()
    clip = generate_retrying(make_backend(cache), shot)
    assert probe.verify(clip.path, expected_seconds=5)
    assert fake_fal.submits == {shot.body_hash: 1}
    assert fake_fal.billed == {shot.body_hash: 1}
    assert all(f.hits == f.times for f in fake_fal.faults)  # each fault really happened


def test_a_job_that_fails_on_fals_side_is_submitted_again_and_billed_once(fake_fal, cache):
    fake_fal.fault("job", outcome="error")
    shot = a_shot()
    backend = make_backend(cache)
    with pytest.raises(GenerationError) as info:
        backend.generate(shot)
    assert info.value.transient and "500" in str(info.value)
    clip = backend.generate(shot)
    assert clip.path.is_file()
    assert fake_fal.submits == {shot.body_hash: 2}  # the failed job is not billed by fal
    assert fake_fal.billed == {shot.body_hash: 1}
    record = Journal(cache / "jobs").read(clip.key)
    assert record.attempts == 2 and record.previous[0]["state"] == "failed"


def test_a_result_that_keeps_failing_is_fetched_again_by_id_on_the_next_attempt(fake_fal, cache):
    fake_fal.fault("result", 504, times=3)
    shot = a_shot()
    backend = make_backend(cache, fal_retries=1)
    with pytest.raises(GenerationError) as info:
        backend.generate(shot)
    assert info.value.transient and "504" in str(info.value) and "kept" in str(info.value)
    assert Journal(cache / "jobs").read(backend.store.key("fal", shot)).state == "completed"
    events = []
    clip = generate_retrying(make_backend(cache, fal_retries=1), shot, events=events)
    assert events[0].kind == "reattached" and events[0].request_id == clip.request_id
    assert fake_fal.count("submit") == 1
    assert fake_fal.billed == {shot.body_hash: 1}


def test_status_polls_that_keep_failing_leave_the_request_to_be_re_attached(fake_fal, cache):
    fake_fal.fault("status", 500, times=3)
    shot = a_shot()
    with pytest.raises(GenerationError) as info:
        make_backend(cache, fal_retries=1).generate(shot)
    assert info.value.transient
    events = []
    clip = make_backend(cache).generate(shot, on_event=events.append)
    assert events[0].kind == "reattached"
    assert clip.path.is_file() and fake_fal.count("submit") == 1


def test_a_truncated_download_is_fetched_again_not_generated_again(fake_fal, cache):
    fake_fal.fault("media", truncate="file")
    shot = a_shot()
    events = []
    clip = make_backend(cache).generate(shot, on_event=events.append)
    assert probe.verify(clip.path, expected_seconds=5)
    assert fake_fal.count("media") == 2 and fake_fal.count("result") == 1 and fake_fal.count("submit") == 1
    assert any(e.kind == "retrying" and "truncated" in e.detail for e in events)


def test_a_clip_that_left_the_store_is_downloaded_again_from_the_journal(fake_fal, cache):
    shot = a_shot()
    first = make_backend(cache).generate(shot)
    first.path.unlink()
    events = []
    again = make_backend(cache).generate(shot, on_event=events.append)
    assert again.path.is_file() and again.request_id == first.request_id and not again.cache_hit
    assert events[0].kind == "reattached"
    assert fake_fal.count("submit") == 1 and fake_fal.count("result") == 1 and fake_fal.count("media") == 2


def test_a_crash_between_sending_and_journaling_leaves_the_shot_uncertain_not_resubmitted(fake_fal, cache):
    shot = a_shot()
    key = ClipStore.key("fal", shot)
    # what a kill -9 right after the POST leaves: the intent, written before sending
    Journal(cache / "jobs").write(
        JobRecord(key=key, shot=shot.id, endpoint=shot.endpoint, body_hash=shot.body_hash, state="intended",
                  attempts=1, intended_at="2026-12-01T10:00:00.000+00:00")
    )  # fmt: skip
    with pytest.raises(GenerationError) as info:
        generate_retrying(make_backend(cache), shot)
    message = str(info.value)
    assert not info.value.transient and "shot 'opening'" in message and "uncertain" in message
    assert "2026-12-01T10:00:00" in message and "billed" in message and "--force opening" in message
    assert fake_fal.count("submit") == 0
    assert Journal(cache / "jobs").read(key).state == "uncertain"
    clip = make_backend(cache).generate(shot, force="run-2")  # the user pays again, knowingly
    record = Journal(cache / "jobs").read(key)
    assert clip.path.is_file() and fake_fal.count("submit") == 1
    assert record.previous[-1]["state"] == "uncertain" and record.previous[-1]["intended_at"].startswith("2026-12-01T10:00")


LOST_ANSWERS = {
    "the connection drops after fal took it": dict(drop=True),
    "a 502 from a gateway after fal took it": dict(status=502, accept=True, request_id_header=False, nginx=True),
    "a 500 after fal took it": dict(status=500, accept=True),
    "a 504 after fal took it": dict(status=504, accept=True, request_id_header=False),
    "a 200 that cannot be decoded": dict(garble=True),
    "a 200 without a request id": dict(omit=("request_id",)),
}


def test_an_answer_with_a_request_id_but_no_urls_is_accepted_and_reached_by_id(fake_fal, cache):
    fake_fal.fault("submit", omit=("status_url", "response_url", "cancel_url"))
    shot = a_shot()
    clip = make_backend(cache).generate(shot)
    record = Journal(cache / "jobs").read(clip.key)
    assert record.state == "downloaded" and record.request_id == clip.request_id and record.status_url is None
    assert fake_fal.submits == {shot.body_hash: 1} and fake_fal.count("result") == 1


@pytest.mark.parametrize("fault", LOST_ANSWERS.values(), ids=LOST_ANSWERS.keys())
def test_a_submit_whose_answer_is_lost_is_uncertain_and_never_sent_again_without_force(fake_fal, cache, fault):
    status = fault.pop("status", None)
    fake_fal.fault("submit", status, **fault)
    shot = a_shot()
    key = ClipStore.key("fal", shot)
    with pytest.raises(GenerationError) as info:
        generate_retrying(make_backend(cache), shot)  # as the task's retries would
    message = str(info.value)
    assert not info.value.transient and "uncertain" in message and "may have billed" in message
    assert "--force opening" in message and "$" in message  # the price it re-pays
    assert fake_fal.count("submit") == 1 and fake_fal.billed == {shot.body_hash: 1}
    record = Journal(cache / "jobs").read(key)
    assert record.state == "uncertain" and record.request_id is None and record.intended_at

    # not by a second generate, nor by another backend (the next run)
    for backend in (make_backend(cache), make_backend(cache)):
        with pytest.raises(GenerationError) as again:
            backend.generate(shot)
        assert "uncertain" in str(again.value) and not again.value.transient
    assert fake_fal.count("submit") == 1

    # --force pays again, once, even when the forced attempt is retried with the same token
    fake_fal.hold()
    with pytest.raises(GenerationError):
        make_backend(cache, fal_wait_timeout=0.05).generate(shot, force="run-2")
    fake_fal.release()
    clip = generate_retrying_forced(make_backend(cache), shot, "run-2")
    assert clip.path.is_file() and fake_fal.count("submit") == 2 and fake_fal.billed == {shot.body_hash: 2}
    record = Journal(cache / "jobs").read(key)
    assert record.state == "downloaded" and record.force_token == "run-2" and record.previous[-1]["state"] == "uncertain"


def test_a_submit_answered_without_a_request_id_is_uncertain(fake_fal, cache):
    fake_fal.fault("submit", 200)  # a 2xx that names no request: fal may have the job all the same
    shot = a_shot()
    with pytest.raises(GenerationError) as info:
        generate_retrying(make_backend(cache), shot)
    assert not info.value.transient and "without a usable request id" in str(info.value)
    assert fake_fal.count("submit") == 1
    assert Journal(cache / "jobs").read(ClipStore.key("fal", shot)).state == "uncertain"


NOT_TAKEN = {
    "429 every time": (dict(status=429, times=10), True),
    "503 every time": (dict(status=503, times=10, request_id_header=False), True),
    "400": (dict(status=400), False),
    "413": (dict(status=413), False),
}


@pytest.mark.parametrize("fault, transient", NOT_TAKEN.values(), ids=NOT_TAKEN.keys())
def test_a_submit_fal_did_not_take_is_refused_and_billed_nothing(fake_fal, cache, fault, transient):
    status = fault.pop("status")
    fake_fal.fault("submit", status, **fault)
    shot = a_shot()
    with pytest.raises(GenerationError) as info:
        make_backend(cache, fal_retries=2).generate(shot)
    assert info.value.transient is transient and str(status) in str(info.value)
    record = Journal(cache / "jobs").read(ClipStore.key("fal", shot))
    assert record.state == "refused" and record.permanent is not transient and record.request_id is None
    assert fake_fal.billed == {}
    if transient:  # nothing was billed: the next attempt submits freely
        fake_fal.faults.clear()
        assert make_backend(cache).generate(shot).path.is_file()
        assert fake_fal.billed == {shot.body_hash: 1}
    else:  # remembered: not sent again until the shot changes or --force
        with pytest.raises(GenerationError) as again:
            make_backend(cache).generate(shot)
        assert "--force opening" in str(again.value) and fake_fal.count("submit") == 1


def test_a_key_pasted_with_a_trailing_newline_just_works(fake_fal, cache):
    settings = fakefal.settings_for(cache, FAL_KEY=KEY + "\n")
    for backend in (make_backend(cache, settings=settings), make_backend(cache, key=" " + KEY + "\r\n")):
        assert backend.generate(a_shot()).path.is_file()
    assert fake_fal.count("submit") == 1 and fake_fal.count("submit", status=401) == 0


@pytest.mark.parametrize("bad", ["\n", "\u00e9"], ids=["newline", "not ascii"])
def test_an_error_raised_before_the_request_left_is_refused_not_uncertain(fake_fal, cache, bad):
    # a key with a newline (or a non-ASCII letter) inside: httpx refuses the header before sending
    key_id, secret = KEY.split(":")
    backend = make_backend(cache, key=f"{key_id}:{secret[:8]}{bad}{secret[8:]}")
    shot = a_shot()
    with pytest.raises(GenerationError) as info:
        backend.generate(shot)
    message = str(info.value)
    assert "uncertain" not in message and "nothing left this machine" in message
    record = Journal(cache / "jobs").read(ClipStore.key("fal", shot))
    assert record.state == "refused" and record.permanent
    assert fake_fal.count("submit") == 0 and fake_fal.billed == {}
    for secret in (key_id, secret[:8], secret[8:]):
        assert secret not in message and secret not in json.dumps(record.to_json())


def test_a_connection_never_made_is_refused_and_submitted_freely_later(fake_fal, cache, monkeypatch):
    monkeypatch.setattr(fal_client.client, "QUEUE_URL_FORMAT", "https://127.0.0.1:1/")  # nothing listens there
    shot = a_shot()
    with pytest.raises(GenerationError) as info:
        make_backend(cache).generate(shot)
    assert info.value.transient and "uncertain" not in str(info.value) and "ConnectError" in str(info.value)
    assert Journal(cache / "jobs").read(ClipStore.key("fal", shot)).state == "refused"
    monkeypatch.undo()
    assert make_backend(cache).generate(shot).path.is_file() and fake_fal.billed == {shot.body_hash: 1}


def test_the_submit_carries_the_key_and_the_start_timeout(fake_fal, cache):
    make_backend(cache, fal_start_timeout=90).generate(a_shot())
    (submit,) = [c for c in fake_fal.calls if c.op == "submit"]
    assert submit.authorization == f"Key {KEY}" and float(submit.request_timeout) == 90


# --- requests fal does not know (404) ----------------------------------------------------------


def test_a_404_about_a_young_request_is_waited_out_not_paid_for_again(fake_fal, cache):
    fake_fal.fault("status", 404, times=10)
    shot = a_shot()
    with pytest.raises(GenerationError) as info:  # 4 polls (fal_retries=3), all 404: kept, not lost
        generate_retrying(make_backend(cache), shot)
    assert info.value.transient and "kept" in str(info.value) and fake_fal.faults[0].hits == 4
    events = []
    clip = generate_retrying(make_backend(cache, fal_retries=6), shot, events=events)  # a re-run: 6 more 404s, then done
    assert clip.path.is_file() and fake_fal.faults[0].hits == 10 and events[0].kind == "reattached"
    assert fake_fal.submits == {shot.body_hash: 1} and fake_fal.billed == {shot.body_hash: 1}
    assert Journal(cache / "jobs").read(clip.key).state == "downloaded"


def left_running(fake_fal, cache: Path, shot) -> tuple[Journal, JobRecord]:
    """A run that stopped waiting for `shot` while fal holds its job: the journal and its
    `submitted` record (the fake server keeps holding new jobs until `release()`)."""
    fake_fal.hold()
    with pytest.raises(GenerationError):
        make_backend(cache, fal_wait_timeout=0.05).generate(shot)
    journal = Journal(cache / "jobs")
    return journal, journal.read(ClipStore.key("fal", shot))


def test_a_404_on_the_result_of_a_young_request_is_fetched_again(fake_fal, cache):
    fake_fal.fault("result", 404, times=3)
    shot = a_shot()
    clip = generate_retrying(make_backend(cache), shot)
    assert clip.path.is_file() and fake_fal.submits == {shot.body_hash: 1} and fake_fal.count("result", status=404) == 3


def test_an_old_request_fal_no_longer_knows_is_lost_and_bought_again_only_with_force(fake_fal, cache):
    shot = a_shot()
    journal, record = left_running(fake_fal, cache, shot)
    key = record.key
    # older than fal keeps requests: the start timeout (1 h), a run and the hour after it
    five_hours_ago = datetime.now(timezone.utc) - timedelta(hours=5)
    journal.write(replace(record, submitted_at=five_hours_ago.isoformat()))
    fake_fal.fault("status", 404, times=10)
    with pytest.raises(GenerationError) as info:
        generate_retrying(make_backend(cache), shot)
    message = str(info.value)
    assert not info.value.transient and record.request_id in message and "lost" in message
    assert "--force opening" in message
    assert journal.read(key).state == "lost"

    fake_fal.release()
    fake_fal.faults.clear()
    with pytest.raises(GenerationError) as again:  # a plain next run does not pay for it again
        make_backend(cache).generate(shot)
    assert "lost" in str(again.value) and fake_fal.submits == {shot.body_hash: 1}
    clip = make_backend(cache).generate(shot, force="run-2")  # the user decides to buy it again
    assert clip.path.is_file() and fake_fal.submits == {shot.body_hash: 2}


@pytest.mark.parametrize("completed", [None, 10], ids=["queued two hours", "completed ten minutes ago"])
def test_a_404_about_a_request_fal_may_still_keep_is_a_glitch_not_a_loss(fake_fal, cache, completed):
    """Submitted two hours ago: fal may have held it in its queue up to the start timeout (an
    hour), run it, and keeps its result an hour after it completed."""
    shot = a_shot()
    journal, record = left_running(fake_fal, cache, shot)
    key = record.key
    now = datetime.now(timezone.utc)
    old = replace(record, submitted_at=(now - timedelta(hours=2)).isoformat())
    if completed is not None:
        old = replace(old, state="completed", completed_at=(now - timedelta(minutes=completed)).isoformat())
    journal.write(old)
    fake_fal.release()
    fake_fal.fault("status", 404, times=100)
    fake_fal.fault("result", 404, times=100)
    with pytest.raises(GenerationError) as info:
        make_backend(cache).generate(shot)
    assert info.value.transient and "kept" in str(info.value) and journal.read(key).state == old.state
    assert "404" in journal.read(key).error  # noted: a --force run would submit anew, not wait on it
    fake_fal.faults.clear()
    clip = make_backend(cache).generate(shot)  # the next attempt collects it, paying nothing
    assert clip.path.is_file() and fake_fal.submits == {shot.body_hash: 1}


def test_a_request_is_reached_at_the_urls_fal_answered(fake_fal, cache):
    fake_fal.private_urls = True  # the by-id URLs are 404 here
    shot = a_shot()
    fake_fal.hold()
    with pytest.raises(GenerationError):
        make_backend(cache, fal_wait_timeout=0.05).generate(shot)
    fake_fal.release()
    clip = generate_retrying(make_backend(cache), shot)  # a re-attach: only the journal has the URLs
    assert clip.path.is_file() and fake_fal.submits == {shot.body_hash: 1}
    paths = {c.path for c in fake_fal.calls if c.op in ("status", "result")}
    assert paths and all(p.startswith("/private/") for p in paths)
    assert fake_fal.count("status", status=404) == 0


# --- media that cannot be fetched (yet) ---------------------------------------------------------

MEDIA_FAILS = {
    "404 from the media host": (dict(fault=("media", 404)), "404"),
    "410 from the media host": (dict(fault=("media", 410)), "410"),
    "403 from the media host": (dict(fault=("media", 403)), "403"),
    "a host not allowed": (dict(settings=dict(SHOTFLOW_MEDIA_HOSTS="media.example.org")), "not an allowed media host"),
    "over the size cap": (dict(settings=dict(SHOTFLOW_MAX_DOWNLOAD_BYTES="100")), "cap"),
}


@pytest.mark.parametrize("how, why", MEDIA_FAILS.values(), ids=MEDIA_FAILS.keys())
def test_media_that_fails_keeps_the_paid_request_and_a_later_run_downloads_it_without_paying(fake_fal, cache, how, why):
    if "fault" in how:
        fake_fal.fault(*how["fault"], times=100)
    settings = fakefal.settings_for(cache, **how.get("settings", {}))
    shot = a_shot()
    key = ClipStore.key("fal", shot)
    with pytest.raises(GenerationError) as info:
        generate_retrying(make_backend(cache, settings=settings, download_attempts=2), shot)
    message = str(info.value)
    assert why in message and "paid for" in message and "without paying" in message
    record = Journal(cache / "jobs").read(key)
    assert record.state == "completed" and record.video_url and why in record.error
    assert fake_fal.submits == {shot.body_hash: 1}

    fake_fal.faults.clear()  # the CDN recovers, or the setting is fixed
    events = []
    clip = make_backend(cache).generate(shot, on_event=events.append)
    assert clip.path.is_file() and clip.request_id == record.request_id and events[0].kind == "reattached"
    assert fake_fal.submits == {shot.body_hash: 1} and fake_fal.count("result") == 1


def test_media_still_failing_after_the_retention_is_lost_and_bought_again_only_with_force(fake_fal, cache):
    shot = a_shot()
    key = ClipStore.key("fal", shot)
    journal = Journal(cache / "jobs")
    fake_fal.fault("media", 403, times=100)
    with pytest.raises(GenerationError):
        make_backend(cache, download_attempts=1).generate(shot)
    record = journal.read(key)
    eight_days_ago = (datetime.now(timezone.utc) - timedelta(days=8)).isoformat()
    journal.write(replace(record, completed_at=eight_days_ago))
    with pytest.raises(GenerationError) as info:
        generate_retrying(make_backend(cache, download_attempts=1), shot)
    assert not info.value.transient and "lost" in str(info.value) and "--force opening" in str(info.value)
    assert journal.read(key).state == "lost" and fake_fal.submits == {shot.body_hash: 1}
    with pytest.raises(GenerationError):
        make_backend(cache).generate(shot)
    fake_fal.faults.clear()
    assert make_backend(cache).generate(shot, force="run-3").path.is_file()
    assert fake_fal.submits == {shot.body_hash: 2}


def test_a_stored_clip_gone_from_the_store_is_fetched_again_while_its_media_lives_else_lost(fake_fal, cache):
    shot = a_shot()
    journal = Journal(cache / "jobs")
    first = make_backend(cache).generate(shot)
    first.path.unlink()
    fake_fal.fault("media", 410, times=100)
    with pytest.raises(GenerationError) as info:
        make_backend(cache, download_attempts=1).generate(shot)
    assert "without paying" in str(info.value)
    assert journal.read(first.key).state == "downloaded"  # within the retention: kept, tried again later
    fake_fal.faults.clear()
    again = make_backend(cache).generate(shot)
    assert again.path.is_file() and again.request_id == first.request_id
    assert fake_fal.submits == {shot.body_hash: 1}

    again.path.unlink()
    record = journal.read(first.key)
    journal.write(replace(record, completed_at=(datetime.now(timezone.utc) - timedelta(days=8)).isoformat()))
    fake_fal.fault("media", 410, times=100)
    with pytest.raises(GenerationError) as info:
        make_backend(cache, download_attempts=1).generate(shot)
    assert "lost" in str(info.value) and journal.read(first.key).state == "lost"
    assert fake_fal.submits == {shot.body_hash: 1}


# --- requests that never finish ----------------------------------------------------------------


def test_a_request_that_never_finishes_is_waited_for_and_re_attached_but_never_cancelled_for_its_age(fake_fal, cache):
    fake_fal.fault("job", outcome="stuck")
    shot = a_shot()
    key = ClipStore.key("fal", shot)
    journal = Journal(cache / "jobs")
    # one call's patience runs out: the request is kept running, nothing is cancelled
    with pytest.raises(GenerationError) as info:
        make_backend(cache, fal_wait_timeout=0.3).generate(shot)
    assert info.value.transient and "still running" in str(info.value)
    rid = journal.read(key).request_id
    # however old it looks, a later attempt re-attaches and waits; it never cancels
    journal.write(replace(journal.read(key), submitted_at=(datetime.now(timezone.utc) - timedelta(days=2)).isoformat()))
    events = []
    with pytest.raises(GenerationError) as info:
        make_backend(cache, fal_wait_timeout=0.2).generate(shot, on_event=events.append)
    assert info.value.transient and events[0].kind == "reattached"
    assert fake_fal.cancels() == [] and fake_fal.count("cancel") == 0 and fake_fal.count("submit") == 1

    # cancelled on purpose (`shotflow cancel`): fal's answer is checked, then the next run submits anew
    record, verdict = make_backend(cache).cancel(key)
    assert verdict == "cancelled" and record.state == "failed" and fake_fal.cancels() == [rid]
    clip = make_backend(cache).generate(shot)
    assert clip.path.is_file() and fake_fal.count("submit") == 2
    assert journal.read(clip.key).previous[0]["request_id"] == rid


def test_a_cancel_that_fails_keeps_the_request(fake_fal, cache):
    fake_fal.fault("job", outcome="stuck")
    fake_fal.fault("cancel", 500)
    shot = a_shot()
    key = ClipStore.key("fal", shot)
    with pytest.raises(GenerationError):
        make_backend(cache, fal_wait_timeout=0.1).generate(shot)
    record, verdict = make_backend(cache).cancel(key)
    assert verdict == "running" and record.state == "submitted"
    assert fake_fal.count("cancel", status=500) == 1 and fake_fal.count("submit") == 1
    assert fake_fal.billed == {shot.body_hash: 1}


def test_a_request_still_running_after_its_cancel_is_kept_until_fal_says_it_ended(fake_fal, cache):
    fake_fal.fault("job", outcome="stuck")
    fake_fal.fault("cancel", outcome="ignored")  # 202, but the job runs on
    shot = a_shot()
    key = ClipStore.key("fal", shot)
    with pytest.raises(GenerationError):
        make_backend(cache, fal_wait_timeout=0.05).generate(shot)
    polls = fake_fal.count("status")
    record, verdict = make_backend(cache).cancel(key)
    assert verdict == "running" and record.state == "submitted"  # kept: it may still bill
    assert fake_fal.count("status") - polls > 2  # it looked more than once after the cancel

    record, verdict = make_backend(cache).cancel(key)  # this time the cancel stops it
    assert verdict == "cancelled" and record.state == "failed"
    assert fake_fal.count("cancel") == 2 and fake_fal.submits == {shot.body_hash: 1}


def test_a_request_that_finishes_after_its_cancel_is_used(fake_fal, cache):
    fake_fal.fault("job", outcome="stuck")
    fake_fal.fault("cancel", outcome="finished")  # 202, yet it completes two polls later, billed
    shot = a_shot()
    key = ClipStore.key("fal", shot)
    with pytest.raises(GenerationError):
        make_backend(cache, fal_wait_timeout=0.05).generate(shot)
    record, verdict = make_backend(cache).cancel(key)
    assert verdict == "finished" and record.state == "completed"
    clip = make_backend(cache).generate(shot)
    assert probe.verify(clip.path, expected_seconds=5)
    assert fake_fal.submits == {shot.body_hash: 1} and fake_fal.billed == {shot.body_hash: 1}
    assert Journal(cache / "jobs").read(clip.key).state == "downloaded"


def test_a_finished_request_is_used_however_old_it_is(fake_fal, cache):
    shot = a_shot()
    fake_fal.hold()
    with pytest.raises(GenerationError):
        make_backend(cache, fal_wait_timeout=0.2).generate(shot)
    fake_fal.release()
    key = ClipStore.key("fal", shot)
    wait_for(lambda: fake_fal.phase(fake_fal.jobs[Journal(cache / "jobs").read(key).request_id])[0] == "COMPLETED")
    clip = make_backend(cache).generate(shot)
    assert clip.path.is_file() and fake_fal.count("cancel") == 0 and fake_fal.count("submit") == 1


def test_force_pays_for_one_new_clip_per_token_even_when_the_forced_attempt_is_retried(fake_fal, cache):
    shot = a_shot()
    first = make_backend(cache).generate(shot)
    fake_fal.hold()
    with pytest.raises(GenerationError):
        make_backend(cache, fal_wait_timeout=0.1).generate(shot, force="run-7")
    assert fake_fal.submits == {shot.body_hash: 2}  # asked for: a new generation
    fake_fal.release()
    events = []
    again = make_backend(cache).generate(shot, force="run-7", on_event=events.append)  # a task retry
    assert events[0].kind == "reattached" and again.request_id != first.request_id
    assert fake_fal.submits == {shot.body_hash: 2}  # the retry did not pay a third time
    assert make_backend(cache).generate(shot, force="run-7").cache_hit  # and once stored, it is the store's
    assert fake_fal.submits == {shot.body_hash: 2}
    make_backend(cache).generate(shot, force="run-8")  # another run's --force: one more
    assert fake_fal.submits == {shot.body_hash: 3}


def test_a_forced_attempt_keeps_its_token_through_a_failed_job_and_a_refusal(fake_fal, cache):
    shot = a_shot()
    make_backend(cache).generate(shot)
    fake_fal.fault("job", outcome="error")  # the forced job fails on fal's side (not billed): the task tries again ...
    fake_fal.fault("submit", 429, times=1)  # ... its next submit is refused once (nothing billed), then accepted
    backend = make_backend(cache, fal_retries=1)
    clip = generate_retrying_forced(backend, shot, "run-5")  # each retry passes the same token
    assert clip.path.is_file() and fake_fal.submits == {shot.body_hash: 3} and fake_fal.billed == {shot.body_hash: 2}
    assert Journal(cache / "jobs").read(clip.key).force_token == "run-5"
    again = make_backend(cache).generate(shot, force="run-5")  # the same token once more: its clip, no 4th submit
    assert again.cache_hit and again.request_id == clip.request_id
    assert fake_fal.submits == {shot.body_hash: 3}


@pytest.mark.parametrize("stop", ["download fails", "stopped while fal works"])
def test_a_forced_request_left_uncollected_is_collected_by_the_next_run_not_replaced_by_the_old_clip(fake_fal, cache, stop):
    fake_fal.distinct_clips = True  # the forced take differs from the clip it replaces, as real ones do
    shot = a_shot()
    first = make_backend(cache).generate(shot)
    old = first.path.read_bytes()
    if stop == "download fails":
        fake_fal.fault("media", 403, times=100)
        with pytest.raises(GenerationError):
            make_backend(cache, download_attempts=1).generate(shot, force="run-2")
        fake_fal.faults.clear()
    else:  # Ctrl-C, or the run's wait ran out: the forced request is journaled, still running on fal
        fake_fal.hold()
        with pytest.raises(GenerationError):
            make_backend(cache, fal_wait_timeout=0.1).generate(shot, force="run-2")
        fake_fal.release()
    forced = Journal(cache / "jobs").read(first.key)
    assert forced.request_id != first.request_id and forced.state in ("submitted", "completed")
    events = []
    clip = make_backend(cache).generate(shot, on_event=events.append)  # the next run, without --force
    assert events[0].kind == "reattached" and not clip.cache_hit and clip.request_id == forced.request_id
    assert clip.path.read_bytes() != old  # the new take the user paid for, not the one it replaces
    assert [p.read_bytes() for p in (cache / "clips" / "superseded").glob("*.mp4")] == [old]  # paid: kept
    assert fake_fal.billed == {shot.body_hash: 2} and Journal(cache / "jobs").read(first.key).state == "downloaded"


def test_an_unforced_request_whose_clip_was_stored_but_not_journaled_uses_the_stored_clip(fake_fal, cache):
    """Killed between storing the clip and journaling `downloaded`: the clip in the store is that
    request's own, so it is used as it is, even when its media no longer answers, and journaled."""
    shot = a_shot()
    first = make_backend(cache).generate(shot)
    journal = Journal(cache / "jobs")
    journal.write(replace(journal.read(first.key), state="completed"))
    fake_fal.fault("media", 403, times=100)
    again = make_backend(cache).generate(shot)
    assert again.cache_hit and again.path == first.path and fake_fal.count("media", status=403) == 0
    healed = journal.read(first.key)  # and the journal says so now: the ledger shows no request left hanging
    assert healed.state == "downloaded" and healed.clip_sha256 and healed.request_id == first.request_id


# --- retries: one layer for each failure (shotflow.generation.retry) ------------------------------
# the fake server counts the calls: a transient fault costs the tries of the one layer that owns it,
# never those tries times the Prefect task's (generate_retrying uses the task's own condition)


def given_up(fake_fal, cache, op: str, status: int, **knobs) -> tuple[str, str]:
    """A shot whose `op` fal answers `status` every time, through the task's retries: its error
    (transient: a later run may do better) and the state its journal record is left in."""
    fake_fal.fault(op, status, times=100)
    with pytest.raises(GenerationError) as info:
        generate_retrying(make_backend(cache, **knobs), a_shot())
    assert info.value.transient
    return str(info.value), Journal(cache / "jobs").read(ClipStore.key("fal", a_shot())).state


def test_a_submit_fal_keeps_refusing_costs_the_in_call_tries_only(fake_fal, cache):
    message, state = given_up(fake_fal, cache, "submit", 429, fal_retries=2)
    assert state == "refused" and "3 times" in message
    assert fake_fal.count("submit", status=429) == 3 and fake_fal.billed == {}  # not 3 x 5


def test_status_polls_answered_5xx_cost_the_in_call_tries_only_and_a_re_run_collects(fake_fal, cache):
    message, state = given_up(fake_fal, cache, "status", 500, fal_retries=2)
    assert state == "submitted" and "kept" in message and "re-run" in message
    assert fake_fal.count("status", status=500) == 3  # the Job's loop: fal_retries + 1; fal_client does not retry an app's 500
    fake_fal.faults.clear()
    clip = make_backend(cache).generate(a_shot())
    assert clip.path.is_file() and fake_fal.count("submit") == 1 and sum(fake_fal.billed.values()) == 1


def test_a_download_that_keeps_failing_costs_its_attempts_only(fake_fal, cache):
    message, state = given_up(fake_fal, cache, "media", 503, download_attempts=3)
    assert state == "completed" and "without paying" in message
    assert fake_fal.count("media", status=503) == 3  # download_clip's loop, not the Job's, not the task's


def test_a_poll_fal_client_retries_itself_is_not_retried_again_by_the_job(fake_fal, cache):
    fake_fal.fault("status", 429, times=2)
    fake_fal.fault("status", 502, times=2, request_id_header=False, nginx=True)  # fal's ingress, not the app
    events = []
    clip = make_backend(cache).generate(a_shot(), on_event=events.append)
    assert clip.path.is_file() and all(f.hits == f.times for f in fake_fal.faults)
    assert [e for e in events if e.kind == "retrying"] == []  # fal_client's own tries, unseen by the Job


def _http_error(code: int, headers: dict[str, str], text: str = "") -> FalClientHTTPError:
    response = httpx.Response(code, headers=headers, text=text)
    return FalClientHTTPError(text or "why", code, dict(response.headers), response=response)


@pytest.mark.parametrize(
    "exc, retried",
    [
        (httpx.ConnectError("refused"), True),
        (httpx.ReadTimeout("slow"), True),
        (_http_error(429, {"x-fal-request-id": "r"}), True),
        (_http_error(409, {}), True),
        (_http_error(502, {}, "<center>nginx</center>"), True),
        (_http_error(502, {"x-fal-request-id": "r"}, "nginx"), False),  # the app's 502: ours to retry
        (_http_error(504, {"x-fal-request-timeout-type": "user"}, "nginx"), False),  # the request's own timeout
        (_http_error(500, {}), False),
        (_http_error(404, {}), False),
        (ValueError("not JSON"), False),
    ],
)
def test_what_fal_client_retries_itself(exc, retried):
    from shotflow.generation.fal.errors import retried_by_fal_client

    assert retried_by_fal_client(exc) is retried


def test_the_task_retries_only_what_no_inner_loop_retries(fake_fal, cache):
    from shotflow.errors import MediaError
    from shotflow.interrupt import Interrupted

    assert retry.task_retries(retry.RetryLater("a", "still running"))
    assert retry.task_retries(MediaError("ffmpeg failed"))
    assert not retry.task_retries(GenerationError("a", "fal answered 503 to the submit 5 times", transient=True))
    assert not retry.task_retries(Interrupted("a")) and not retry.task_retries(GenerationError("a", "422", transient=False))
    copy = pickle.loads(pickle.dumps(retry.RetryLater("a", "still running")))  # Prefect pickles failures
    assert isinstance(copy, retry.RetryLater) and copy.transient and str(copy) == "shot 'a': still running"
    # the wait timeout is the task's: each of its tries re-attaches to the one request
    fake_fal.hold()
    shot = a_shot()
    events = []

    def release_on_second_attach(event):
        events.append(event)
        if [e.kind for e in events].count("reattached") == 2:
            fake_fal.release()

    clip = None
    backend = make_backend(cache, fal_wait_timeout=0.2)
    for attempt in range(retry.TASK.attempts):
        try:
            clip = backend.generate(shot, on_event=release_on_second_attach)
            break
        except GenerationError as exc:
            assert retry.task_retries(exc) and "SHOTFLOW_FAL_WAIT_TIMEOUT" in str(exc)
    assert clip is not None and clip.path.is_file() and attempt >= 2  # two wait timeouts, at least, then done
    assert fake_fal.count("submit") == 1 and fake_fal.billed == {shot.body_hash: 1}


def test_the_retry_policy_backs_off_with_jitter_up_to_its_cap():
    policy = retry.RetryPolicy(attempts=8, first_wait=1.0, max_wait=30.0, jitter=0.5)
    assert policy.delays() == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert [policy.again(n) for n in (1, 7, 8)] == [True, True, False]
    for failures in range(1, 8):
        base = policy.delays()[failures - 1]
        assert base * 0.5 <= policy.wait(failures) <= min(base * 1.5, 30.0)
    settings = fakefal.settings_for(Path("/tmp/unused"))
    assert retry.RetryPolicy.in_call(settings).attempts == settings.fal_retries + 1 == 5
    assert retry.RetryPolicy.downloads(settings).attempts == settings.download_attempts == 4
    assert retry.TASK.delays() == [2.0, 4.0, 8.0, 16.0]  # the Prefect task's, as before


# --- refusals: fast, clear, not paid for twice -------------------------------------------------


def test_a_content_policy_refusal_fails_fast_names_the_shot_and_the_reason_and_is_remembered(fake_fal, cache):
    fake_fal.fault("job", outcome="refused")
    shot = a_shot()
    with pytest.raises(GenerationError) as info:
        generate_retrying(make_backend(cache), shot)
    message = str(info.value)
    assert not info.value.transient
    assert "shot 'opening'" in message and "422" in message
    assert "content checker" in message and "content_policy_violation" in message and "prompt" in message
    assert fake_fal.count("result") == 1  # no retries of a refusal

    calls = len(fake_fal.calls)
    with pytest.raises(GenerationError) as again:
        make_backend(cache).generate(shot)
    assert not again.value.transient and "content checker" in str(again.value) and "force" in str(again.value)
    assert len(fake_fal.calls) == calls  # the same body is not sent (and billed) again
    assert fake_fal.billed == {shot.body_hash: 1}

    clip = make_backend(cache).generate(shot, force="run-2")  # the user insists: pays again
    assert clip.path.is_file() and fake_fal.submits == {shot.body_hash: 2}


def test_an_invalid_body_names_the_field_fal_refused(fake_fal, cache):
    shot = replace(a_shot(), body={"prompt": "p", "duration": "7"})
    with pytest.raises(GenerationError) as info:
        make_backend(cache).generate(shot)
    assert not info.value.transient
    assert "shot 'opening'" in str(info.value) and "duration:" in str(info.value) and "422" in str(info.value)


def test_a_rejected_key_fails_fast_without_a_job(fake_fal, cache):
    with pytest.raises(GenerationError) as info:
        generate_retrying(make_backend(cache, key="wrong-key-id:wrong-secret-9Qk"), a_shot())
    assert not info.value.transient and "401" in str(info.value) and "FAL_KEY" in str(info.value)
    assert "wrong-secret-9Qk" not in str(info.value)
    assert fake_fal.jobs == {} and fake_fal.count("submit") == 1


def test_an_unknown_endpoint_fails_fast(fake_fal, cache):
    shot = replace(a_shot(), endpoint="fal-ai/no-such-model/text-to-video")
    with pytest.raises(GenerationError) as info:
        generate_retrying(make_backend(cache), shot)
    assert not info.value.transient and "no endpoint 'fal-ai/no-such-model/text-to-video'" in str(info.value)
    assert fake_fal.count("submit") == 1


def test_a_missing_key_stops_before_any_work_and_points_to_the_preview(fake_fal, cache):
    settings = Settings(_env_file=None, SHOTFLOW_CACHE_DIR=str(cache), SHOTFLOW_MEDIA_HOSTS="127.0.0.1")
    with pytest.raises(MissingKeyError) as info:
        FalBackend(ClipStore(cache), settings=settings)
    assert "--backend preview" in str(info.value)
    assert fake_fal.calls == []


@pytest.mark.parametrize(
    "code, headers, transient",
    [(429, {}, True), (500, {}, True), (502, {}, True), (503, {"x-fal-request-id": "r"}, True), (504, {}, True),
     (401, {}, False), (403, {}, False), (404, {}, False), (422, {}, False), (400, {}, False)],
)  # fmt: skip
def test_http_errors_are_classified(code, headers, transient):
    response = httpx.Response(code, headers=headers, json={"detail": "why"})
    error = classify(FalClientHTTPError("why", code, headers, response=response), "opening", a_shot().endpoint, "submitting")
    assert error.transient is transient and "why" in str(error) and "shot 'opening'" in str(error)


@pytest.mark.parametrize("exc", [httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), httpx.RemoteProtocolError("cut")])
def test_transport_errors_are_transient(exc):
    assert classify(exc, "opening", a_shot().endpoint, "polling").transient


def test_generation_errors_survive_pickling():
    error = pickle.loads(pickle.dumps(GenerationError("opening", "fal answered 503", transient=True)))
    assert error.transient and error.shot == "opening" and str(error) == "shot 'opening': fal answered 503"


def test_a_backend_closes_as_a_context_manager_and_twice_without_harm(fake_fal, cache):
    shot = a_shot()
    with make_backend(cache) as backend:
        backend.generate(shot)
        _, client = fal_client_internals(backend.fal)
    assert client.is_closed
    backend.close()
    backend.close()
    make_backend(cache).close()  # never used: nothing to close
    shot2 = a_shot("another")
    assert backend.generate(shot2).path.is_file()  # a closed backend opens new connections
    backend.close()


# --- concurrency and crashes -------------------------------------------------------------------


def test_concurrent_generations_of_the_same_clip_submit_once(fake_fal, cache):
    shot = a_shot()
    with ThreadPoolExecutor(4) as pool:
        clips = list(pool.map(lambda _: make_backend(cache).generate(shot), range(4)))
    assert len({c.path for c in clips}) == 1 and len({c.request_id for c in clips}) == 1
    assert fake_fal.submits == {shot.body_hash: 1}
    assert fake_fal.count("media") == 1  # downloaded once, under the clip's lock, by whoever got there first


DRIVER = textwrap.dedent(
    """
    import json, sys, threading
    from concurrent.futures import ThreadPoolExecutor
    from shotflow.store.clips import ClipStore
    from shotflow.generation.fal.backend import FalBackend
    from shotflow.plan import load_plan
    from shotflow.settings import Settings

    plan = load_plan(sys.argv[1])
    settings = Settings(SHOTFLOW_FAL_POLL_INTERVAL=0.05, SHOTFLOW_FAL_RETRY_BACKOFF=0.05)
    backend = FalBackend(ClipStore(settings.cache_dir), settings=settings)
    lock = threading.Lock()

    def say(**data):
        with lock:
            print(json.dumps(data), flush=True)

    def run(shot):
        clip = backend.generate(shot, on_event=lambda e: say(event=e.kind, shot=e.shot, request_id=e.request_id))
        say(done=shot.id, request_id=clip.request_id, path=str(clip.path), cache_hit=clip.cache_hit)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(run, plan.shots))
    """
)
N = 4


@pytest.fixture
def driver(tmp_path, cache):
    (tmp_path / "driver.py").write_text(DRIVER)
    board = storyboard(*(f"{{id: s{i}, prompt: 'shot number {i}', model: pika, duration: 5}}" for i in range(N)))
    (tmp_path / "sb.yaml").write_text(board)
    plan = plan_from_text(board, "sb.yaml")

    def start():
        return subprocess.Popen(
            [sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "sb.yaml")],
            env=fakefal.product_env(cache),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    return plan, start


def submitted_records(cache: Path) -> list[JobRecord]:
    root = cache / "jobs"
    if not root.is_dir():
        return []
    return [r for r in Journal(root).records() if r.request_id and r.state == "submitted"]


def test_a_run_killed_after_its_submits_is_resumed_without_paying_again(fake_fal, cache, driver):
    plan, start = driver
    fake_fal.hold()  # the jobs stay in progress until released: the kill lands while they are live
    first = start()
    try:
        wait_for(lambda: len(submitted_records(cache)) == N, what="four journaled submits")
        first.send_signal(signal.SIGKILL)
        out, err = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    before = {r.shot: r.request_id for r in submitted_records(cache)}
    assert fake_fal.submits == {s.body_hash: 1 for s in plan.shots}

    fake_fal.release()
    second = start()
    out2, err2 = second.communicate(timeout=60)
    assert second.returncode == 0, err2
    lines = [json.loads(line) for line in out2.splitlines()]
    done = {d["done"]: d for d in lines if "done" in d}
    assert {d: v["request_id"] for d, v in done.items()} == before  # the same, paid-for requests
    assert all(Path(v["path"]).is_file() and not v["cache_hit"] for v in done.values())
    assert {d["shot"] for d in lines if d.get("event") == "reattached"} == set(before)
    assert not any(d.get("event") == "submitted" for d in lines)
    assert fake_fal.submits == {s.body_hash: 1 for s in plan.shots}
    assert fake_fal.billed == {s.body_hash: 1 for s in plan.shots}
    assert KEY not in out + err + out2 + err2


def test_two_runs_of_the_same_storyboard_at_once_submit_each_shot_once(fake_fal, cache, driver):
    plan, start = driver
    fake_fal.hold()
    runs = [start(), start()]
    seen: list[list[dict]] = [[], []]
    outputs: list[list[str]] = [[], []]

    def read(i):
        for line in runs[i].stdout:
            outputs[i].append(line)
            seen[i].append(json.loads(line))

    readers = [threading.Thread(target=read, args=(i,)) for i in range(2)]
    for t in readers:
        t.start()
    try:
        # both runs are attached to every shot (one submitted it, the other re-attached)
        wait_for(
            lambda: all(len({d["shot"] for d in list(s) if d.get("event") in ("submitted", "reattached")}) == N for s in seen),
            what="both runs attached to every shot",
        )
        fake_fal.release()
        for run in runs:
            assert run.wait(timeout=60) == 0, run.stderr.read()
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
        for t in readers:
            t.join(timeout=10)
    assert fake_fal.submits == {s.body_hash: 1 for s in plan.shots}
    ids = [{d["done"]: d["request_id"] for d in s if "done" in d} for s in seen]
    assert ids[0] == ids[1] and len(ids[0]) == N
    assert fake_fal.count("media") == N  # each clip downloaded by one of the two runs only


# --- the key stays secret ----------------------------------------------------------------------


def test_the_key_appears_in_no_message_event_log_or_file(fake_fal, cache, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    events: list = []
    backend = make_backend(cache)
    backend.generate(a_shot("fine"), on_event=events.append)  # a success, with a cut download
    fake_fal.fault("media", truncate="cut")
    backend.generate(a_shot("fine again"), on_event=events.append)
    fake_fal.fault("job", outcome="refused")
    fake_fal.fault("submit", 500)
    fake_fal.fault("status", 503)
    for prompt in ("refused", "server error"):
        try:
            generate_retrying(backend, a_shot(prompt), attempts=3, events=events)
        except GenerationError as exc:
            texts += [str(exc), repr(exc), repr(pickle.dumps(exc))]
    fake_fal.key = "another-key-the-server-wants"  # now ours is rejected: 401
    with pytest.raises(GenerationError) as info:
        backend.generate(a_shot("rejected"), on_event=events.append)
    texts += [str(info.value), repr(info.value), repr(backend)]
    texts += [repr(e) for e in events]
    texts += [r.getMessage() for r in caplog.records]
    captured = capfd.readouterr()
    texts += [captured.out, captured.err]
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert any(p.suffix == ".json" for p in files)
    secrets = [KEY, *KEY.split(":")]
    for secret in secrets:
        assert not any(secret in t for t in texts), secret
        assert not any(secret.encode() in p.read_bytes() for p in files), secret


# --- continuity: a shot that starts on a frame ---------------------------------------------------


def continuing(source_id: str = "opening", prompt: str = "the car stops", model: str = "kling"):
    """A shot on `model`'s image endpoint that continues `source_id` (as the plan makes it: the
    text body less the fields the image endpoint does not take, the frame fields named)."""
    from shotflow.catalog import find_model

    text, image = a_shot(prompt, model=model), find_model(model).image
    body = {k: v for k, v in text.body.items() if k in image.input.model_fields}
    return replace(
        text,
        id="arrival",
        endpoint=image.endpoint,
        body=body,
        source=source_id,
        image_field=image.image_field,
        end_field=image.end_field,
    )


def raw_clip(path: Path, seconds: float = 1) -> Path:
    """A moving pattern (so its last frame is one of a kind), as a model's raw clip."""
    from shotflow.media.ffmpeg import ffmpeg_exe

    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s=96x54:r=24:d={seconds}",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    return path


def upstream_clip(path: Path, shot_id: str = "opening"):
    """`path` as the clip of the source shot (what the flow hands a continuing shot)."""
    from shotflow.model import GeneratedClip

    return GeneratedClip(shot_id, path, "k" * 64, "fal", cache_hit=False)


def sent_frame(fake_fal, endpoint: str):
    """The one job fal received at `endpoint`, and the image its data URI decodes to."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    (job,) = [j for j in fake_fal.jobs.values() if j.endpoint == endpoint]
    head, data = job.body["image_url"].split(",", 1)
    assert head == "data:image/png;base64"
    return job, np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


def test_a_continuing_shot_sends_its_sources_last_frame_and_journals_only_its_hash(fake_fal, cache, tmp_path):
    import av
    import numpy as np

    from shotflow.generation.continuity import resolve

    backend = make_backend(cache)
    source = backend.generate(a_shot())  # through fal, as the flow does it
    assert resolve(continuing(), source, cache).frames[0].origin == "last frame of opening"
    upstream = replace(source, path=raw_clip(tmp_path / "raw.mp4"))  # a clip with a frame of its own
    shot = resolve(continuing(), upstream, cache)
    clip = backend.generate(shot)

    job, image = sent_frame(fake_fal, shot.endpoint)
    with av.open(str(upstream.path)) as container:
        *_, last = container.decode(video=0)
    assert np.array_equal(image, last.to_ndarray(format="rgb24"))  # fal received the exact last frame
    assert fake_fal.billed[job.body_hash] == 1 and clip.frames == shot.frames and not clip.cache_hit

    journal = (cache / "jobs" / f"{clip.key}.json").read_text()
    assert "data:" not in journal and shot.frames[0].sha256 in journal
    record = Journal(cache / "jobs").read(clip.key)
    assert record.body_hash == shot.body_hash and record.state == "downloaded"
    assert record.frames == (
        {"field": "image_url", "sha256": shot.frames[0].sha256, "path": shot.frames[0].path, "origin": "last frame of opening"},
    )

    again = backend.generate(resolve(continuing(), upstream, cache))  # a later run: the same frame, the same key
    assert again.cache_hit and again.frames == shot.frames and len(fake_fal.jobs) == 2


def test_another_source_frame_is_another_clip_and_the_same_frame_is_not_paid_again(fake_fal, cache, tmp_path):
    from shotflow.generation.continuity import resolve

    backend = make_backend(cache)
    first = resolve(continuing(), upstream_clip(raw_clip(tmp_path / "a.mp4", 1)), cache)
    second = resolve(continuing(), upstream_clip(raw_clip(tmp_path / "b.mp4", 2)), cache)
    assert first.frames[0].sha256 != second.frames[0].sha256
    assert ClipStore.key("fal", first) != ClipStore.key("fal", second)
    clips = [backend.generate(s) for s in (first, second, first)]
    assert [c.cache_hit for c in clips] == [False, False, True]
    assert len(fake_fal.jobs) == 2 and all(n == 1 for n in fake_fal.billed.values())


def test_a_continuing_shot_re_attached_to_its_request_keeps_its_frames(fake_fal, cache, tmp_path):
    from shotflow.generation.continuity import resolve

    shot = resolve(continuing(), upstream_clip(raw_clip(tmp_path / "a.mp4")), cache)
    fake_fal.hold()
    with pytest.raises(retry.RetryLater):
        make_backend(cache, fal_wait_timeout=0.3).generate(shot)
    fake_fal.release()
    events = []
    clip = make_backend(cache).generate(shot, on_event=events.append)
    assert events[0].kind == "reattached" and clip.frames == shot.frames and len(fake_fal.jobs) == 1


def test_an_unresolved_shot_or_a_missing_frame_is_refused_before_anything_is_journaled_or_paid(fake_fal, cache, tmp_path):
    from shotflow.generation.continuity import resolve

    backend = make_backend(cache)
    with pytest.raises(GenerationError, match="resolve the shot first") as info:
        backend.generate(continuing())
    assert info.value.shot == "arrival" and not info.value.transient
    shot = resolve(continuing(), upstream_clip(raw_clip(tmp_path / "a.mp4")), cache)
    Path(shot.frames[0].path).unlink()
    with pytest.raises(GenerationError, match="missing or changed"):
        backend.generate(shot)
    assert fake_fal.calls == [] and not list((cache / "jobs").glob("*.json"))


def test_a_data_uri_fal_quotes_back_is_scrubbed_from_messages():
    from shotflow.generation.fal.errors import Scrubber, fal_reason

    detail = [
        {"loc": ["body", "image_url"], "msg": "bad image data:image/png;base64," + "QUJD" * 50_000, "type": "image_load_error"}
    ]
    text = Scrubber(KEY)(fal_reason(detail))
    assert "QUJD" not in text and "data:image/png;base64,[200022 characters]" in text and len(text) < 200
