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

from shotflow.journal import JobRecord, Journal, JournalError, LockTimeout

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


def test_updates_never_move_a_request_backwards(tmp_path):
    journal = Journal(tmp_path / "jobs")
    journal.write(record())
    journal.update(KEY, "req-1", state="downloaded", video_url="https://m/v.mp4")
    # a slower poller of the same request reports completion late
    journal.update(KEY, "req-1", state="completed")
    assert journal.read(KEY).state == "downloaded"
    journal.update(KEY, "req-1", state="failed", error="late")
    assert journal.read(KEY).state == "downloaded"


def test_updates_about_an_older_request_leave_the_newer_one_alone(tmp_path):
    journal = Journal(tmp_path / "jobs")
    journal.write(record(request_id="req-2", attempts=2))
    journal.update(KEY, "req-1", state="failed", error="cancelled")
    assert journal.read(KEY).state == "submitted" and journal.read(KEY).request_id == "req-2"


def test_a_live_request_can_fail(tmp_path):
    journal = Journal(tmp_path / "jobs")
    journal.write(record())
    journal.update(KEY, "req-1", state="failed", error="fal does not know this request any more")
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
    from shotflow.journal import Journal
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
            journal.update(KEY, "req-1", state="completed", lock_timeout=0.2)
        assert journal.read(KEY).state == "submitted"
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        assert journal.update(KEY, "req-1", state="completed", lock_timeout=10).state == "completed"
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
                journal.update(KEY, "req-1", state="completed", lock_timeout=0.1)
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
        assert journal.update(KEY, "req-1", state="completed", lock_timeout=0.5).state == "completed"
        with journal.submit_lock(KEY, timeout=0.5):  # re-entrant too
            pass
    # released on the way out: another thread takes it at once
    taken = []
    thread = threading.Thread(target=lambda: taken.append(journal.update(KEY, "req-1", video_url="u", lock_timeout=1)))
    thread.start()
    thread.join()
    assert taken[0].video_url == "u"


def test_a_downloaded_record_fails_only_when_its_media_is_gone(tmp_path):
    journal = Journal(tmp_path / "jobs")
    journal.write(record(state="downloaded", video_url="https://m/v.mp4"))
    journal.update(KEY, "req-1", state="failed", error="late poller")
    assert journal.read(KEY).state == "downloaded"
    journal.update(KEY, "req-1", state="failed", error="paid for, but its media is gone", media_gone=True)
    assert journal.read(KEY).state == "failed" and not journal.read(KEY).live
