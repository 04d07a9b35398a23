"""The job journal: durable records of paid requests, and one submitter per clip at a time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from dataclasses import replace

import pytest

from shotflow.store.journal import JobRecord, Journal, JournalError, LockTimeout

KEY = "c" * 64


def record(**kw) -> JobRecord:
    values = dict(key=KEY, shot="opening", endpoint="fal-ai/veo3", body_hash="b" * 64, state="submitted", request_id="req-1")
    values.update(kw)
    return JobRecord(**values)


def test_a_record_survives_a_round_trip_as_plain_json(tmp_path):
    journal = Journal(tmp_path / "jobs")
    written = journal.write(record(status_url="https://q/status", attempts=1, submitted_at="2026-01-01T00:00:00+00:00"))
    assert journal.read(KEY) == written
    data = json.loads(journal.path(KEY).read_text())
    assert data["request_id"] == "req-1" and data["state"] == "submitted" and data["attempts"] == 1
    assert "body" not in data  # only its hash
    assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == [f"{KEY}.json"]  # no temporary files left


def test_a_missing_record_reads_as_none(tmp_path):
    assert Journal(tmp_path / "jobs").read(KEY) is None


def test_an_unreadable_record_is_an_error_not_a_fresh_start(tmp_path):
    journal = Journal(tmp_path / "jobs")
    journal.path(KEY).write_text('{"key": "c", "state": ')
    with pytest.raises(JournalError) as info:
        journal.read(KEY)
    assert str(journal.path(KEY)) in str(info.value) and "paid" in str(info.value)


def test_an_update_applies_only_from_the_states_it_expects(tmp_path):
    journal = Journal(tmp_path / "jobs")
    journal.write(record())
    journal.update(KEY, "req-1", expect=("submitted",), state="completed", video_url="https://m/v.mp4")
    journal.update(KEY, "req-1", expect=("completed",), state="downloaded")
    # a slower run of the same request reports completion late: the record does not move back
    assert journal.update(KEY, "req-1", expect=("submitted",), state="completed").state == "downloaded"
    journal.update(KEY, "req-1", expect=("submitted", "completed"), state="failed", error="late")
    assert journal.read(KEY).state == "downloaded"


def test_updates_about_an_older_request_leave_the_newer_one_alone(tmp_path):
    journal = Journal(tmp_path / "jobs")
    journal.write(record(request_id="req-2", attempts=2))
    journal.update(KEY, "req-1", expect=("submitted",), state="failed", error="cancelled")
    assert journal.read(KEY).state == "submitted" and journal.read(KEY).request_id == "req-2"


def test_a_live_request_can_fail(tmp_path):
    journal = Journal(tmp_path / "jobs")
    journal.write(record())
    journal.update(KEY, "req-1", expect=("submitted",), state="failed", error="fal does not know this request any more")
    assert not journal.read(KEY).live


def test_records_lists_every_clip(tmp_path):
    journal = Journal(tmp_path / "jobs")
    for k in ("a" * 64, "b" * 64):
        journal.write(record(key=k))
    assert [r.key for r in journal.records()] == ["a" * 64, "b" * 64]


def test_old_fields_are_kept_in_previous_and_unknown_fields_ignored(tmp_path):
    journal = Journal(tmp_path / "jobs")
    journal.write(record(previous=({"request_id": "req-0", "state": "failed"},)))
    data = json.loads(journal.path(KEY).read_text())
    data["from_a_newer_version"] = True
    journal.path(KEY).write_text(json.dumps(data))
    assert journal.read(KEY).previous == ({"request_id": "req-0", "state": "failed"},)


def test_the_submit_lock_excludes_threads(tmp_path):
    journal = Journal(tmp_path / "jobs")
    inside, overlaps = [], []
    guard = threading.Lock()
    start = threading.Barrier(4)

    def submitter():
        start.wait()
        with journal.submit_lock(KEY, timeout=30):
            with guard:
                inside.append(1)
                overlaps.append(len(inside))
            # read-modify-write of the record, as a submit would
            current = journal.read(KEY)
            journal.write(replace(current, attempts=current.attempts + 1) if current else record(attempts=1))
            with guard:
                inside.pop()

    threads = [threading.Thread(target=submitter) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(overlaps) == 1
    assert journal.read(KEY).attempts == 4


HOLDER = textwrap.dedent(
    """
    import sys
    from shotflow.store.journal import Journal
    lock = Journal(sys.argv[1]).submit_lock(sys.argv[2])
    lock.__enter__()
    print("locked", flush=True)
    sys.stdin.read()
    """
)


def test_the_submit_lock_excludes_other_processes_and_dies_with_its_holder(tmp_path):
    journal = Journal(tmp_path / "jobs")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(journal.root), KEY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockTimeout):
            with journal.submit_lock(KEY, timeout=0.2):
                pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        # the kernel released it: no stale lock to break
        with journal.submit_lock(KEY, timeout=10):
            pass
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_an_update_takes_the_keys_lock_across_processes(tmp_path):
    journal = Journal(tmp_path / "jobs")
    journal.write(record())
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(journal.root), KEY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        # another process holds the lock (deciding to submit, or updating): no read-modify-write now
        with pytest.raises(LockTimeout):
            journal.update(KEY, "req-1", expect=("submitted",), state="completed", lock_timeout=0.2)
        assert journal.read(KEY).state == "submitted"
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        assert journal.update(KEY, "req-1", expect=("submitted",), state="completed", lock_timeout=10).state == "completed"
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_an_update_waits_for_another_thread_holding_the_lock(tmp_path):
    journal = Journal(tmp_path / "jobs")
    journal.write(record())
    outcome = []
    with journal.submit_lock(KEY, timeout=10):

        def other():
            try:
                journal.update(KEY, "req-1", expect=("submitted",), state="completed", lock_timeout=0.1)
                outcome.append("updated")
            except LockTimeout:
                outcome.append("waited")

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert outcome == ["waited"] and journal.read(KEY).state == "submitted"


def test_an_update_under_the_same_threads_submit_lock_does_not_wait_for_itself(tmp_path):
    journal = Journal(tmp_path / "jobs")
    journal.write(record())
    with journal.submit_lock(KEY, timeout=10):
        assert journal.update(KEY, "req-1", expect=("submitted",), state="completed", lock_timeout=0.5).state == "completed"
        with journal.submit_lock(KEY, timeout=0.5):  # re-entrant too
            pass
    # released on the way out: another thread takes it at once
    taken = []
    thread = threading.Thread(
        target=lambda: taken.append(journal.update(KEY, "req-1", expect=("completed",), video_url="u", lock_timeout=1))
    )
    thread.start()
    thread.join()
    assert taken[0].video_url == "u"


def test_a_downloaded_record_can_be_lost_but_not_failed_by_a_late_poller(tmp_path):
    journal = Journal(tmp_path / "jobs")
    journal.write(record(state="downloaded", video_url="https://m/v.mp4"))
    journal.update(KEY, "req-1", expect=("submitted", "completed"), state="failed", error="late poller")
    assert journal.read(KEY).state == "downloaded"
    journal.update(KEY, "req-1", expect=("downloaded",), state="lost", error="clip gone, media past its retention")
    assert journal.read(KEY).state == "lost" and not journal.read(KEY).live


# --- schema 2: unknown states, odd files, a full disk ------------------------------------------


def test_a_json_file_that_is_not_an_object_is_a_journal_error_naming_the_file(tmp_path):
    journal = Journal(tmp_path / "jobs")
    for text in ("[1, 2]", '"submitted"', "null", "3"):
        journal.path(KEY).write_text(text)
        with pytest.raises(JournalError) as info:
            journal.read(KEY)
        assert str(journal.path(KEY)) in str(info.value) and "not an object" in str(info.value)


def test_a_state_this_version_does_not_know_is_kept_as_written_not_as_nothing(tmp_path):
    journal = Journal(tmp_path / "jobs")
    journal.write(record())
    data = json.loads(journal.path(KEY).read_text())
    data.update(state="rebilled-by-v9", schema=3)
    journal.path(KEY).write_text(json.dumps(data))
    read = journal.read(KEY)
    assert read.state == "rebilled-by-v9" and not read.known and not read.live


def test_a_schema_2_record_keeps_the_ledger_fields(tmp_path):
    journal = Journal(tmp_path / "jobs")
    journal.write(record(storyboard="/sb.yaml", estimated_cost_usd="1.40", force_token="run-1", intended_at="t0"))
    data = json.loads(journal.path(KEY).read_text())
    assert data["schema"] == 2 and data["storyboard"] == "/sb.yaml" and data["estimated_cost_usd"] == "1.40"
    assert data["force_token"] == "run-1" and data["intended_at"] == "t0"
    for name in ("finished_at", "clip_sha256", "clip_bytes", "quarantine_path", "quarantine_reason", "previous"):
        assert name in data


SCHEMA_1 = {  # as shotflow wrote them before schema 2 (fields and states of that version)
    "submitting": dict(state="submitting", request_id=None, error="the submit was cut off"),
    "refused": dict(state="failed", request_id=None, error="fal refused (422)", permanent=True),
    "media gone": dict(state="failed", request_id="r", video_url="https://m/v.mp4", error="paid for, but its media is gone: 403"),
    "job failed": dict(state="failed", request_id="r", error="Internal Server Error"),
    "submitted": dict(state="submitted", request_id="r"),
    "completed": dict(state="completed", request_id="r"),
    "downloaded": dict(state="downloaded", request_id="r", video_url="https://m/v.mp4"),
}
MIGRATED = {"submitting": "uncertain", "refused": "refused", "media gone": "completed", "job failed": "failed",
            "submitted": "submitted", "completed": "completed", "downloaded": "downloaded"}  # fmt: skip


@pytest.mark.parametrize("name", SCHEMA_1)
def test_a_schema_1_record_is_read_as_schema_2(tmp_path, name):
    journal = Journal(tmp_path / "jobs")
    data = dict(key=KEY, shot="opening", endpoint="fal-ai/veo3", body_hash="b" * 64, attempts=1, schema=1,
                created_at="2026-01-01T00:00:00+00:00", updated_at="2026-01-01T00:01:00+00:00",
                previous=[{"request_id": None, "state": "submitting", "error": "cut off", "at": "2026-01-01T00:00:30+00:00"}])  # fmt: skip
    data.update(SCHEMA_1[name])
    journal.path(KEY).write_text(json.dumps(data))
    read = journal.read(KEY)
    assert read.state == MIGRATED[name] and read.schema == 2
    assert read.permanent == bool(data.get("permanent"))
    assert read.previous[0]["state"] == "uncertain"  # a lost submit of an older run: maybe billed
    assert read.storyboard is None and read.estimated_cost_usd is None  # never guessed


def test_a_full_disk_is_one_line_naming_the_journal_file(tmp_path, monkeypatch):
    import errno

    from shotflow.store import journal as journal_module
    from shotflow.store.atomic import StoreFullError

    journal = Journal(tmp_path / "jobs")

    def full(path, data, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal_module, "write_bytes_atomic", full)
    with pytest.raises(StoreFullError) as info:
        journal.write(record())
    message = str(info.value)
    assert "\n" not in message and str(journal.path(KEY)) in message and "no space left" in message
