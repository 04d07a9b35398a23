"""One paid request as a state machine (shotflow.generation.fal.job.Job) and the submit path
(shotflow.generation.fal.submit), against the fake fal queue through the real fal_client.

Billed counts come from the fake server. Faults here: odd answers, a journal that cannot take the
request id, clock jumps, schema-1 journals, unknown states, Ctrl-C, the daily budget.
"""

from __future__ import annotations

import fakefal  # first: points fal_client and httpx at the fake server

fakefal.ensure_server()

import errno  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from decimal import Decimal  # noqa: E402
from pathlib import Path  # noqa: E402

import fal_client  # noqa: E402
import pytest  # noqa: E402

from shotflow import interrupt  # noqa: E402
from shotflow.errors import BudgetError, GenerationError  # noqa: E402
from shotflow.generation.fal import job as job_module  # noqa: E402
from shotflow.generation.fal import submit  # noqa: E402
from shotflow.generation.fal.backend import FalBackend, accept_clip  # noqa: E402
from shotflow.generation.fal.job import Job  # noqa: E402
from shotflow.interrupt import Interrupted  # noqa: E402
from shotflow.plan import plan_from_text  # noqa: E402
from shotflow.store.atomic import StoreFullError  # noqa: E402
from shotflow.store.clips import ClipStore  # noqa: E402
from shotflow.store.journal import JobRecord, Journal  # noqa: E402

fake_fal = fakefal.fake_fal
KEY = fakefal.KEY


def a_shot(prompt: str = "a harbour at dawn"):
    text = f"version: 1\ntitle: t\nshots:\n  - {{id: opening, prompt: '{prompt}', model: kling, duration: 5}}\n"
    return plan_from_text(text, "sb.yaml").shots[0]


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


@pytest.fixture(autouse=True)
def no_stop():
    interrupt.reset()
    yield
    interrupt.reset()


def make_backend(cache: Path, *, settings=None, key=None, **knobs) -> FalBackend:
    """A FalBackend on the fake server, quick to poll and retry; `knobs` are Settings fields."""
    knobs = dict(fal_poll_interval=0.02, fal_retry_backoff=0.01, fal_retries=3) | knobs
    settings = (settings or fakefal.settings_for(cache)).model_copy(update=knobs)
    return FalBackend(ClipStore(cache), settings=settings, key=key, storyboard="/boards/sb.yaml")


def journal_of(cache: Path) -> Journal:
    return Journal(cache / "jobs")


# --- fal_client's private names: the submit path depends on them -------------------------------


def test_the_private_names_of_fal_client_the_submit_uses_still_exist():
    """If this fails, fal_client renamed SyncClient._client or QUEUE_URL_FORMAT: the once-only
    submit (shotflow/generation/fal/submit.py) must be adapted before upgrading fal-client."""
    from fal_client import client as fal_client_module

    assert isinstance(fal_client_module.QUEUE_URL_FORMAT, str) and fal_client_module.QUEUE_URL_FORMAT.startswith("https://")
    sync = fal_client.SyncClient(key=KEY)
    queue_url, client = submit.fal_client_internals(sync)
    assert queue_url == fal_client_module.QUEUE_URL_FORMAT and submit.queue_host() == fakefal.ensure_server().host
    assert client.headers["Authorization"] == f"Key {KEY}" and submit.fal_client_internals(sync)[1] is client
    submit.close_client(sync)
    assert client.is_closed and "_client" not in sync.__dict__


# --- the intent, the record's ledger fields ------------------------------------------------------


def test_the_intent_is_written_before_the_post_and_the_record_carries_the_ledger_fields(fake_fal, cache):
    shot = a_shot()
    key = ClipStore.key("fal", shot)
    seen = []
    original = submit.send_submit

    def spy(*args, **kw):
        seen.append(journal_of(cache).read(key))
        return original(*args, **kw)

    backend = make_backend(cache)
    import shotflow.generation.fal.backend as backend_module

    backend_module.send_submit, saved = spy, backend_module.send_submit
    try:
        clip = backend.generate(shot)
    finally:
        backend_module.send_submit = saved
    (before,) = seen
    assert before.state == "intended" and before.request_id is None and before.intended_at
    record = journal_of(cache).read(key)
    assert record.state == "downloaded" and record.request_id == clip.request_id
    assert record.storyboard == "/boards/sb.yaml" and record.estimated_cost_usd == str(shot.cost)
    assert record.submitted_at and record.completed_at and record.downloaded_at and record.finished_at
    assert record.clip_sha256 and record.clip_bytes == clip.path.stat().st_size
    assert record.force_token is None and record.schema == 2


def test_a_continuing_shots_intent_carries_its_frames_and_a_record_without_them_reads_as_none(fake_fal, cache):
    from dataclasses import replace

    from PIL import Image

    from shotflow.catalog import find_model
    from shotflow.generation.continuity import resolve

    still = cache.parent / "still.png"
    Image.new("RGB", (64, 36), (200, 30, 40)).save(still)
    text, image = a_shot("the bottle turns"), find_model("kling").image
    body = {k: v for k, v in text.body.items() if k in image.input.model_fields}
    shot = resolve(
        replace(text, endpoint=image.endpoint, body=body, image=str(still), image_field=image.image_field), None, cache
    )
    job = Job.intend(journal_of(cache), shot, ClipStore.key("fal", shot), prior=None, storyboard=None, force_token=None)
    (frame,) = shot.frames
    assert journal_of(cache).read(job.record.key).frames == (
        {"field": "image_url", "sha256": frame.sha256, "path": frame.path, "origin": str(still)},
    )
    assert "data:" not in journal_of(cache).path(job.record.key).read_text()
    older = json.loads(journal_of(cache).path(job.record.key).read_text())
    del older["frames"]  # written before continuity existed
    journal_of(cache).path(job.record.key).write_text(json.dumps(older))
    assert journal_of(cache).read(job.record.key).frames == ()


# --- odd answers: errors naming the shot and the request; re-attachable; force works -----------

ODD = {
    "a result that is a JSON list": (("result",), dict(payload=[{"video": {"url": "x"}}]), "list"),
    "a video url over http": (("result",), dict(payload={"video": {"url": "http://127.0.0.1/v.mp4"}}), "https"),
    "a video url that is a number": (("result",), dict(payload={"video": {"url": 42}}), "number"),
    "a result without a video": (("result",), dict(payload={"images": []}), "no video"),
    "logs that are not a list": (("status",), dict(payload={"status": "COMPLETED", "logs": "step 1", "metrics": {}}), "logs"),
    "a status of another shape": (("status",), dict(payload={"status": "EXPLODED"}), "another shape"),
}


@pytest.mark.parametrize("where, fault, what", ODD.values(), ids=ODD.keys())
def test_an_odd_answer_names_the_shot_and_request_keeps_it_and_force_still_works(fake_fal, cache, where, fault, what):
    fake_fal.fault(*where, **fault)
    shot = a_shot()
    key = ClipStore.key("fal", shot)
    with pytest.raises(GenerationError) as info:
        make_backend(cache).generate(shot)
    record = journal_of(cache).read(key)
    message = str(info.value)
    assert "shot 'opening'" in message and record.request_id in message and what in message
    assert "--force opening" in message and not info.value.transient
    assert record.state in ("submitted", "completed") and what in record.error  # kept, re-attachable
    assert fake_fal.billed == {shot.body_hash: 1}

    clip = make_backend(cache).generate(shot)  # the glitch passed: re-attached, not paid again
    assert clip.request_id == record.request_id and fake_fal.billed == {shot.body_hash: 1}


def test_force_always_works_on_a_request_stuck_on_odd_answers(fake_fal, cache):
    fake_fal.fault("result", payload=[1, 2], times=100)
    shot = a_shot()
    with pytest.raises(GenerationError):
        make_backend(cache).generate(shot)
    fake_fal.faults.clear()
    clip = make_backend(cache).generate(shot, force="run-2")
    assert clip.path.is_file() and fake_fal.submits == {shot.body_hash: 2}


# --- the request id cannot be journaled ----------------------------------------------------------


def full_after(n: int, *, times: int | None = None):
    """A journal writer that works `n` times, then finds the disk full (`times` writes, then has
    room again; None: for good)."""
    from shotflow.store.atomic import write_bytes_atomic

    calls = {"n": 0}

    def writer(path, data, **kw):
        calls["n"] += 1
        if calls["n"] > n and (times is None or calls["n"] <= n + times):
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_bytes_atomic(path, data, **kw)

    return writer


def test_a_request_id_that_cannot_be_journaled_is_cancelled_checked_and_the_shot_uncertain(fake_fal, cache, monkeypatch):
    import shotflow.store.journal as journal_module

    fake_fal.hold()  # still queued/running when the cancel lands
    monkeypatch.setattr(journal_module, "write_bytes_atomic", full_after(1))  # the intent, then nothing
    shot = a_shot()
    with pytest.raises(GenerationError) as info:
        make_backend(cache).generate(shot)
    message = str(info.value)
    (rid,) = fake_fal.jobs
    assert "uncertain" in message and rid in message and "no space left" in message and "--force opening" in message
    assert "cancelled it (fal confirms)" in message and fake_fal.cancels() == [rid]
    cancels = [c for c in fake_fal.calls if c.op == "cancel"]
    assert cancels and all(c.path.startswith("/fal-ai/") for c in cancels)  # on the queue host, checked
    monkeypatch.undo()
    record = journal_of(cache).read(ClipStore.key("fal", shot))
    assert record.state == "intended"  # what the full disk left: read as uncertain under the lock
    with pytest.raises(GenerationError) as again:
        make_backend(cache).generate(shot)
    assert "uncertain" in str(again.value) and fake_fal.count("submit") == 1


def test_a_request_that_finished_despite_its_cancel_is_journaled_once_the_disk_has_room(fake_fal, cache, monkeypatch):
    import shotflow.store.journal as journal_module

    fake_fal.fault("cancel", outcome="finished")  # the cancel comes too late: the job completes (paid)
    # the intent is written, fal's answer is not, then space is freed
    monkeypatch.setattr(journal_module, "write_bytes_atomic", full_after(1, times=1))
    shot = a_shot()
    with pytest.raises(GenerationError) as info:
        make_backend(cache).generate(shot)
    (rid,) = fake_fal.jobs
    assert info.value.transient and rid in str(info.value) and "collects it, without paying" in str(info.value)
    record = journal_of(cache).read(ClipStore.key("fal", shot))
    assert record.state == "completed" and record.request_id == rid
    clip = make_backend(cache).generate(shot)  # a re-run collects the paid job
    assert clip.request_id == rid and fake_fal.submits == {shot.body_hash: 1} and fake_fal.billed == {shot.body_hash: 1}


def test_a_request_still_running_after_its_cancel_whose_id_could_not_be_journaled_stays_uncertain(fake_fal, cache, monkeypatch):
    import shotflow.store.journal as journal_module

    fake_fal.hold()
    fake_fal.fault("cancel", outcome="ignored", times=100)  # fal takes the cancel but the job runs on
    monkeypatch.setattr(journal_module, "write_bytes_atomic", full_after(1))
    shot = a_shot()
    with pytest.raises(GenerationError) as info:
        make_backend(cache).generate(shot)
    assert "uncertain" in str(info.value) and "still reports it running" in str(info.value)
    assert not info.value.transient and fake_fal.count("submit") == 1


def test_a_cancel_after_a_failed_journal_write_goes_only_to_the_queue_host(fake_fal, cache, monkeypatch):
    import shotflow.store.journal as journal_module

    fake_fal.hold()
    fake_fal.private_urls = True  # the answer's URLs are the only ones that work, on the queue host
    monkeypatch.setattr(journal_module, "write_bytes_atomic", full_after(1))
    with pytest.raises(GenerationError):
        make_backend(cache).generate(a_shot())
    assert [c.path.startswith("/private/") for c in fake_fal.calls if c.op == "cancel"] == [True]


def test_a_handle_never_sends_the_key_off_the_queue_host(fake_fal):
    sync = fal_client.SyncClient(key=KEY)
    handle = submit.request_handle(
        sync, "fal-ai/kling-video/v2/master/text-to-video", "rid-1",
        status_url="https://evil.example/status", response_url="https://evil.example/r", cancel_url="https://evil.example/c",
    )  # fmt: skip
    assert all(submit.on_queue_host(u) for u in (handle.status_url, handle.response_url, handle.cancel_url))
    plain = submit.request_handle(sync, "fal-ai/x/y", "rid-1", status_url="http://" + fake_fal.host + "/s",
                                  response_url="https://" + fake_fal.host + "/r", cancel_url="https://" + fake_fal.host + "/c")  # fmt: skip
    assert plain.status_url.startswith("https://") and "/requests/rid-1" in plain.status_url


# --- ages and clocks -----------------------------------------------------------------------------


@pytest.mark.parametrize("jump", [timedelta(days=30), -timedelta(days=30)], ids=["forwards", "backwards"])
def test_a_clock_jump_mid_run_neither_cancels_nor_resubmits(fake_fal, cache, monkeypatch, jump):
    fake_fal.hold()
    shot = a_shot()
    jumped = threading.Event()
    real = job_module.utc_now

    def events(event):
        if event.kind == "running" and not jumped.is_set():
            monkeypatch.setattr(job_module, "utc_now", lambda: real() + jump)  # NTP, a laptop waking up
            jumped.set()
            # 404s are judged by the request's age: after the jump they must still read as young
            fake_fal.fault("status", 404, times=2)
            fake_fal.release()

    clip = make_backend(cache).generate(shot, on_event=events)
    assert jumped.is_set() and clip.path.is_file() and fake_fal.faults[0].hits == 2
    assert fake_fal.count("cancel") == 0 and fake_fal.submits == {shot.body_hash: 1}


def test_ages_count_the_recorded_utc_age_plus_the_monotonic_time_since_attach(monkeypatch, tmp_path):
    journal = Journal(tmp_path / "jobs")
    an_hour_ago = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    record = JobRecord(
        key="k", shot="s", endpoint="e", body_hash="h", state="submitted", request_id="r", submitted_at=an_hour_ago
    )
    job = Job(journal, record)
    monkeypatch.setattr(job_module, "utc_now", lambda: datetime(1999, 1, 1, tzinfo=timezone.utc))  # a jump back
    assert 3590 < job.age("submitted_at") < 3700
    future = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()  # written by a clock that was ahead
    assert (
        0
        <= Job(journal, JobRecord(key="k", shot="s", endpoint="e", body_hash="h", state="submitted", submitted_at=future)).age(
            "submitted_at"
        )
        < 5
    )


# --- schema-1 journals, unknown states -----------------------------------------------------------


def schema_1(cache: Path, shot, **fields) -> None:
    """A record exactly as the schema-1 code wrote it."""
    key = ClipStore.key("fal", shot)
    data = dict(key=key, shot=shot.id, endpoint=shot.endpoint, body_hash=shot.body_hash, seconds=5, attempts=1,
                created_at="2026-11-30T10:00:00.000+00:00", updated_at="2026-11-30T10:00:05.000+00:00",
                request_id=None, status_url=None, response_url=None, cancel_url=None, video_url=None, error=None,
                permanent=False, submitted_at=None, completed_at=None, downloaded_at=None, previous=[], schema=1)  # fmt: skip
    data.update(fields)
    journal_of(cache).path(key).write_text(json.dumps(data))


def test_an_upgrade_buys_nothing_again(fake_fal, cache):
    # a clip downloaded by the old version, and one still running when it stopped
    done, live = a_shot("done before the upgrade"), a_shot("live at the upgrade")
    first = make_backend(cache).generate(done)
    record = journal_of(cache).read(first.key)
    schema_1(cache, done, state="downloaded", request_id=record.request_id, video_url=record.video_url,
             submitted_at=record.submitted_at, completed_at=record.completed_at)  # fmt: skip
    fake_fal.hold()
    with pytest.raises(GenerationError):
        make_backend(cache, fal_wait_timeout=0.05).generate(live)
    r = journal_of(cache).read(ClipStore.key("fal", live))
    schema_1(cache, live, state="submitted", request_id=r.request_id, status_url=r.status_url,
             response_url=r.response_url, cancel_url=r.cancel_url, submitted_at=r.submitted_at)  # fmt: skip
    # and one whose submit answer was lost under the old version
    lost = a_shot("cut off under the old version")
    schema_1(cache, lost, state="submitting", error="the submit was cut off before fal's answer arrived")
    fake_fal.release()
    billed = dict(fake_fal.billed)

    assert make_backend(cache).generate(done).cache_hit
    assert make_backend(cache).generate(live).request_id == r.request_id
    with pytest.raises(GenerationError) as info:
        make_backend(cache).generate(lost)
    assert "uncertain" in str(info.value)
    assert fake_fal.billed == billed  # nothing bought again
    assert journal_of(cache).read(ClipStore.key("fal", live)).schema == 2  # written as 2 at its transition


def test_a_schema_1_media_gone_failure_is_downloaded_again_without_paying(fake_fal, cache):
    shot = a_shot()
    first = make_backend(cache).generate(shot)
    record = journal_of(cache).read(first.key)
    first.path.unlink()
    ClipStore(cache).meta_path(first.key).unlink(missing_ok=True)
    schema_1(cache, shot, state="failed", request_id=record.request_id, video_url=record.video_url,
             submitted_at=record.submitted_at, completed_at=record.completed_at,
             error="paid for, but its media is gone: 403")  # fmt: skip
    clip = make_backend(cache).generate(shot)
    assert clip.request_id == record.request_id and fake_fal.submits == {shot.body_hash: 1}


def test_a_state_from_a_newer_version_blocks_the_shot_like_uncertain(fake_fal, cache):
    shot = a_shot()
    schema_1(cache, shot, state="paused-by-v9", request_id="r-9", schema=3)
    with pytest.raises(GenerationError) as info:
        make_backend(cache).generate(shot)
    message = str(info.value)
    assert "uncertain" in message and "paused-by-v9" in message and "--force opening" in message
    assert fake_fal.count("submit") == 0
    assert make_backend(cache).generate(shot, force="run-2").path.is_file()


def test_a_journal_file_that_is_not_an_object_stops_the_shot_naming_the_file(fake_fal, cache):
    from shotflow.store.journal import JournalError

    shot = a_shot()
    path = journal_of(cache).path(ClipStore.key("fal", shot))
    path.write_text("[]")
    with pytest.raises(JournalError) as info:
        make_backend(cache).generate(shot)
    assert str(path) in str(info.value) and fake_fal.count("submit") == 0


# --- quarantine and accept -----------------------------------------------------------------------


def test_a_clip_that_fails_verification_is_quarantined_not_fetched_in_a_loop_and_can_be_accepted(fake_fal, cache):
    fake_fal.fault("job", outcome="short")  # a complete clip of the wrong length
    shot = a_shot()
    key = ClipStore.key("fal", shot)
    with pytest.raises(GenerationError) as info:
        make_backend(cache).generate(shot)
    assert "accept opening" in str(info.value) and "--force opening" in str(info.value)
    record = journal_of(cache).read(key)
    assert record.state == "quarantined" and Path(record.quarantine_path).is_file()
    media = fake_fal.count("media")
    with pytest.raises(GenerationError):
        make_backend(cache).generate(shot)
    assert fake_fal.count("media") == media and fake_fal.submits == {shot.body_hash: 1}
    accepted = accept_clip(journal_of(cache), ClipStore(cache), key)
    assert accepted.state == "downloaded" and accepted.clip_sha256
    clip = make_backend(cache).generate(shot)
    assert clip.cache_hit and fake_fal.submits == {shot.body_hash: 1}
    # the manifest of the run that uses it says why it had been kept aside
    assert clip.accepted_despite and clip.accepted_despite == accepted.quarantine_reason


# --- Ctrl-C and the daily budget ------------------------------------------------------------------


def test_a_stop_before_the_submit_sends_nothing(fake_fal, cache):
    interrupt.request_stop()
    with pytest.raises(Interrupted) as info:
        make_backend(cache).generate(a_shot())
    assert "nothing paid" in str(info.value) and fake_fal.count("submit") == 0


def test_a_stop_while_waiting_leaves_the_request_journaled_for_a_re_run(fake_fal, cache):
    fake_fal.hold()
    shot = a_shot()

    def stop_when_running(event):
        if event.kind == "running":
            interrupt.request_stop()

    with pytest.raises(Interrupted) as info:
        make_backend(cache).generate(shot, on_event=stop_when_running)
    record = journal_of(cache).read(ClipStore.key("fal", shot))
    assert record.request_id in str(info.value) and "re-run collects it" in str(info.value)
    assert record.state == "submitted" and fake_fal.count("cancel") == 0
    interrupt.reset()
    fake_fal.release()
    assert make_backend(cache).generate(shot).request_id == record.request_id
    assert fake_fal.submits == {shot.body_hash: 1}


def test_the_daily_budget_stops_a_submit_before_its_intent(fake_fal, cache):
    settings = fakefal.settings_for(cache, SHOTFLOW_DAILY_BUDGET="1.50")
    make_backend(cache, settings=settings).generate(a_shot("first"))  # kling 5 s: $1.40
    with pytest.raises(BudgetError) as info:
        make_backend(cache, settings=settings).generate(a_shot("second"))
    assert "budget" in str(info.value) and "shot 'opening'" in str(info.value)
    assert fake_fal.count("submit") == 1
    assert journal_of(cache).read(ClipStore.key("fal", a_shot("second"))) is None
    assert Decimal(journal_of(cache).read(ClipStore.key("fal", a_shot("first"))).estimated_cost_usd) == Decimal("1.40")


def test_a_full_disk_when_writing_the_intent_sends_nothing(fake_fal, cache, monkeypatch):
    import shotflow.store.journal as journal_module

    monkeypatch.setattr(journal_module, "write_bytes_atomic", full_after(0))
    with pytest.raises(StoreFullError) as info:
        make_backend(cache).generate(a_shot())
    assert "no space left" in str(info.value) and str(cache / "jobs") in str(info.value)
    assert fake_fal.count("submit") == 0


def test_a_stored_clip_corrupted_on_disk_is_fetched_again_from_its_url_without_paying(fake_fal, cache):
    shot = a_shot()
    first = make_backend(cache).generate(shot)
    data = bytearray(first.path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped bit: same size, another hash
    first.path.write_bytes(bytes(data))
    again = make_backend(cache).generate(shot)
    assert not again.cache_hit and again.request_id == first.request_id
    assert fake_fal.submits == {shot.body_hash: 1} and fake_fal.count("media") == 2
    assert any((cache / "clips" / "corrupt").iterdir())  # the damaged copy is kept aside, not deleted


KILLED_AFTER_SENDING = """
import os, signal, sys
from shotflow.store.clips import ClipStore
from shotflow.generation.fal import job
from shotflow.generation.fal.backend import FalBackend
from shotflow.plan import plan_from_text
from shotflow.settings import Settings

# SIGKILL at the worst moment: fal has taken the submit, its answer is not journaled yet
job.Job.accepted = lambda self, answer: os.kill(os.getpid(), signal.SIGKILL)
text = "version: 1\\ntitle: t\\nshots:\\n  - {id: opening, prompt: 'a harbour at dawn', model: kling, duration: 5}\\n"
settings = Settings()
FalBackend(ClipStore(settings.cache_dir), settings=settings).generate(plan_from_text(text, "sb.yaml").shots[0])
"""


def test_a_process_killed_between_sending_and_journaling_leaves_an_uncertain_shot(fake_fal, cache):
    import signal
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_SENDING], env=fakefal.product_env(cache), capture_output=True, timeout=120
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    shot = a_shot()
    assert fake_fal.billed == {shot.body_hash: 1}
    assert journal_of(cache).read(ClipStore.key("fal", shot)).state == "intended"
    for _ in range(2):  # the next run, and the one after: never sent again without --force
        with pytest.raises(GenerationError) as info:
            make_backend(cache).generate(shot)
        assert "uncertain" in str(info.value) and "--force opening" in str(info.value)
    assert fake_fal.count("submit") == 1
