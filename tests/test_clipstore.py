"""The clip store: durable puts, checked finds, nothing paid for ever deleted, safe to share."""

from __future__ import annotations

import errno
import json
import os
import pickle
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import imageio_ffmpeg
import pytest

from shotflow.errors import MediaError
from shotflow.store import StoreFullError, move_atomic, write_bytes_atomic
from shotflow.store.clips import ClipStore, StoredClip
from shotflow.store.digest import file_sha256

KEY = "c" * 64


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """Two different tiny valid clips (1 s and 2 s)."""
    folder = tmp_path_factory.mktemp("media")
    clips = {}
    for seconds in (1, 2):
        path = folder / f"{seconds}s.mp4"
        subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
             "-i", f"color=c=black:s=16x16:r=4:d={seconds}", "-c:v", "libx264", "-preset", "ultrafast",
             "-crf", "51", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path)],
            check=True, timeout=60,
        )  # fmt: skip
        clips[f"{seconds}s"] = path
    return clips


@pytest.fixture
def store(tmp_path) -> ClipStore:
    return ClipStore(tmp_path / "cache")


def staged(store: ClipStore, source: Path, name: str = "in") -> Path:
    """A copy of `source` next to the store, as a download leaves it."""
    path = store.clips / f".{name}.{os.urandom(4).hex()}.part"
    path.write_bytes(source.read_bytes())
    return path


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_a_put_clip_is_found_with_its_recorded_hash_and_size(store, media):
    stored = store.put(KEY, staged(store, media["1s"]))
    assert stored == StoredClip(store.path(KEY), file_sha256(media["1s"]), media["1s"].stat().st_size)
    assert json.loads(store.meta_path(KEY).read_text()) == {"sha256": stored.sha256, "bytes": stored.size}
    assert store.find(KEY) == store.path(KEY)
    assert store.stored(KEY) == stored
    assert store.find("e" * 64) is None


def test_putting_the_same_clip_twice_changes_nothing(store, media):
    first = store.put(KEY, staged(store, media["1s"]))
    again = staged(store, media["1s"])
    assert store.put(KEY, again) == first
    assert not again.exists()  # consumed either way
    assert not (store.clips / "superseded").exists()
    assert store.find(KEY) == first.path


def test_a_different_clip_supersedes_the_paid_one_without_deleting_it(store, media):
    first = store.put(KEY, staged(store, media["1s"]))
    second = store.put(KEY, staged(store, media["2s"]))
    assert second.sha256 != first.sha256 and store.find(KEY) == second.path
    kept = list((store.clips / "superseded").iterdir())
    assert len(kept) == 1 and file_sha256(kept[0]) == first.sha256
    # a free preview clip is simply replaced
    store.put(KEY, staged(store, media["1s"]), keep_previous=False)
    assert len(list((store.clips / "superseded").iterdir())) == 1


def test_a_clip_corrupted_on_disk_is_set_aside_not_served_not_deleted(store, media):
    stored = store.put(KEY, staged(store, media["2s"]))
    data = bytearray(stored.path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one flipped byte: only the hash sees it
    stored.path.write_bytes(bytes(data))
    assert store.find(KEY) is None
    assert not stored.path.exists() and not store.meta_path(KEY).exists()
    corrupt = store.clips / "corrupt"
    [clip] = corrupt.glob("*.mp4")
    assert clip.read_bytes() == bytes(data)  # kept as it was
    note = json.loads(clip.with_suffix(".json").read_text())
    assert note["key"] == KEY and "content changed" in note["reason"] and note["stored"]["sha256"] == stored.sha256
    # downloaded again, it is stored and found as usual
    assert store.put(KEY, staged(store, media["2s"])) == stored
    assert store.find(KEY) == stored.path


def test_a_clip_cut_short_on_disk_is_set_aside(store, media):
    stored = store.put(KEY, staged(store, media["2s"]))
    with open(stored.path, "r+b") as fh:
        fh.truncate(stored.size // 2)
    assert store.find(KEY) is None
    [note] = (store.clips / "corrupt").glob("*.json")
    assert "size changed" in json.loads(note.read_text())["reason"]


def test_a_clip_stored_by_the_previous_version_is_accepted_and_gets_its_meta(store, media):
    # the previous version stored the bare clip, no meta: an upgrade must not buy it again
    store.path(KEY).write_bytes(media["1s"].read_bytes())
    assert store.find(KEY) == store.path(KEY)
    assert json.loads(store.meta_path(KEY).read_text()) == {
        "sha256": file_sha256(media["1s"]),
        "bytes": media["1s"].stat().st_size,
    }
    assert not (store.clips / "corrupt").exists()


def test_an_old_clip_that_is_not_a_video_is_set_aside(store, media):
    store.path(KEY).write_bytes(b"<html>503</html>")
    assert store.find(KEY) is None
    [note] = (store.clips / "corrupt").glob("*.json")
    assert "not a readable clip" in json.loads(note.read_text())["reason"]


def test_an_unreadable_meta_is_checked_again_from_the_clip(store, media):
    store.put(KEY, staged(store, media["1s"]))
    store.meta_path(KEY).write_text("{not json")
    assert store.find(KEY) == store.path(KEY)
    assert json.loads(store.meta_path(KEY).read_text())["sha256"] == file_sha256(media["1s"])


def test_a_quarantined_download_waits_for_the_user_then_moves_in(store, media):
    before = store.put(KEY, staged(store, media["2s"]))
    kept = store.quarantine(KEY, staged(store, media["1s"]), "lasts 1.00 s, expected 5 s (±0.5 s)")
    assert kept == store.quarantine_path(KEY) and kept.is_file()
    note = json.loads(kept.with_suffix(".json").read_text())
    assert note["reason"] == "lasts 1.00 s, expected 5 s (±0.5 s)" and note["when"] and "url" not in note
    assert store.quarantined(KEY) == (kept, "lasts 1.00 s, expected 5 s (±0.5 s)")
    assert store.find(KEY) == before.path  # quarantine does not touch the stored clip

    accepted = store.accept(KEY)
    assert accepted.sha256 == file_sha256(media["1s"]) and store.find(KEY) == accepted.path
    assert store.quarantined(KEY) is None and not kept.exists()
    [previous] = (store.clips / "superseded").iterdir()
    assert file_sha256(previous) == before.sha256


def test_quarantining_twice_keeps_both_copies(store, media):
    store.quarantine(KEY, staged(store, media["1s"]), "first")
    store.quarantine(KEY, staged(store, media["1s"]), "same again")  # identical: one copy
    assert len(list((store.clips / "quarantine").glob("*.mp4"))) == 1
    store.quarantine(KEY, staged(store, media["2s"]), "another")
    assert len(list((store.clips / "quarantine").glob("*.mp4"))) == 2
    assert store.quarantined(KEY)[1] == "another"


def test_accepting_a_file_from_elsewhere_copies_it_and_refuses_what_is_not_a_video(store, media, tmp_path):
    mine = tmp_path / "mine.mp4"
    mine.write_bytes(media["2s"].read_bytes())
    assert store.accept(KEY, mine).sha256 == file_sha256(mine)
    assert mine.is_file()  # the user's file stays where it is
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video")
    with pytest.raises(MediaError):
        store.accept(KEY, junk)
    with pytest.raises(MediaError, match="no quarantined clip"):
        store.accept("f" * 64)


def test_threads_finishing_the_same_clip_at_once_all_succeed(store, media):
    errors, results = [], []
    sources = [staged(store, media["1s"], f"t{i}") for i in range(8)]

    def finish(source):
        try:
            results.append(store.put(KEY, source))
            results.append(store.stored(KEY))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=finish, args=(s,)) for s in sources]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(results)) == 1 and store.find(KEY)
    assert not (store.clips / "superseded").exists() and not (store.clips / "corrupt").exists()
    assert [n for n in files(store.clips) if n.endswith(".part")] == []


def test_two_processes_sharing_a_store_never_crash_or_lose_a_clip(store, media):
    script = textwrap.dedent(
        """
        import os, sys
        from pathlib import Path
        from shotflow.store.clips import ClipStore
        store, source, tag = ClipStore(Path(sys.argv[1])), Path(sys.argv[2]), sys.argv[3]
        for i in range(25):
            part = store.clips / f".{tag}.{i}.part"
            part.write_bytes(source.read_bytes())
            store.put(sys.argv[4], part)
            assert store.find(sys.argv[4]) is not None
        print("ok")
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(store.root), str(media["1s"]), f"p{i}", KEY],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    assert store.find(KEY) and file_sha256(store.path(KEY)) == file_sha256(media["1s"])
    assert not (store.clips / "superseded").exists() and not (store.clips / "corrupt").exists()


# --- the atomic-write helper ---------------------------------------------------------------------


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_one_clear_line_naming_the_path_and_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "record.json"
    write_bytes_atomic(target, b"old")
    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(StoreFullError) as info:
        write_bytes_atomic(target, b"new")
    monkeypatch.undo()
    assert str(info.value).startswith(f"no space left on the device holding {target}")
    assert "\n" not in str(info.value) and info.value.path == str(target)
    assert target.read_bytes() == b"old" and files(tmp_path) == ["record.json"]


def test_a_full_quota_on_a_move_and_a_full_disk_on_a_put_name_their_path(store, media, monkeypatch):
    source = staged(store, media["1s"])
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError(errno.EDQUOT, "Disk quota exceeded")))
    with pytest.raises(StoreFullError, match=f"holding {store.path(KEY)}"):
        move_atomic(source, store.path(KEY))
    with pytest.raises(StoreFullError, match=f"holding {store.path(KEY)}"):
        store.put(KEY, source)
    monkeypatch.undo()
    assert source.exists() and store.find(KEY) is None  # nothing lost: the download can be put again
    assert store.put(KEY, source).path == store.path(KEY)


def test_other_os_errors_are_not_called_a_full_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError) as info:
        write_bytes_atomic(tmp_path / "x", b"data")
    assert not isinstance(info.value, StoreFullError) and info.value.errno == errno.EIO
    monkeypatch.undo()
    assert files(tmp_path) == []


def test_store_full_errors_pickle(tmp_path):
    error = StoreFullError(tmp_path / "clips", "No space left on device")
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) and again.path == error.path


def test_a_clip_put_over_another_is_newer_than_what_was_derived_from_the_old_one(store, media):
    store.put(KEY, staged(store, media["1s"]))
    derived = store.derived(KEY, "norm-720p")
    derived.write_bytes(b"made from the first clip")
    late = staged(store, media["2s"])
    os.utime(late, ns=(1, 1))  # a copy downloaded long ago (say, quarantined last week, accepted now)
    store.quarantine(KEY, late, "lasts 2.00 s, expected 5 s")
    store.accept(KEY)
    assert store.path(KEY).stat().st_mtime_ns > derived.stat().st_mtime_ns  # assemble makes it again


def test_a_new_clip_stored_after_a_quarantine_retires_the_waiting_copy_without_deleting_it(store, media):
    store.quarantine(KEY, staged(store, media["1s"]), "lasts 1.00 s, expected 5 s")
    store.put(KEY, staged(store, media["2s"]))  # `--force` bought a new one
    assert store.quarantined(KEY) is None
    [kept] = (store.clips / "superseded").glob("*.quarantined.mp4")
    assert file_sha256(kept) == file_sha256(media["1s"])
    assert json.loads(kept.with_suffix(".json").read_text())["reason"] == "lasts 1.00 s, expected 5 s"


def test_clips_kept_aside_never_overwrite_each_other(store, media):
    for source in ("1s", "2s", "1s"):
        if store.path(KEY).exists():
            os.utime(store.path(KEY), ns=(5, 5))  # the same name would be chosen each time
        store.put(KEY, staged(store, media[source]))
    kept = sorted((store.clips / "superseded").iterdir())
    assert [p.name for p in kept] == [f"{KEY}.5.1.mp4", f"{KEY}.5.mp4"]
    assert {file_sha256(p) for p in kept} == {file_sha256(media["1s"]), file_sha256(media["2s"])}
