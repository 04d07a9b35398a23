"""`shotflow gc`: what it deletes from the clip store (only what no known storyboard, manifest or
journal entry needs), what it keeps although nothing needs it (the only copy of something paid
for, a request still running, files in use), and what --dry-run says."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from shotflow.cli import main
from shotflow.media.ffmpeg import ffmpeg_exe
from shotflow.needs import Needs
from shotflow.picks import Picks, save_picks
from shotflow.plan import load_plan
from shotflow.store import gc
from shotflow.store.clips import ClipStore

BOARD = """\
version: 1
output: {resolution: 720p}
shots:
  - {id: lake, prompt: a quiet lake, model: kling, duration: 5, takes: 2}
  - {id: street, prompt: a busy street, model: pika-2.2, duration: 5}
"""
OLD = time.time() - 40 * 86400


def put(cache: Path, key: str, data: bytes, *, old: bool = True) -> Path:
    """A clip stored under `key` (any bytes: gc never decodes one), 40 days old unless `old` is False."""
    part = cache / f"incoming-{key[:8]}"
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(data)
    path = ClipStore(cache).put(key, part).path
    if old:
        age(path, path.with_name(f"{key}.meta.json"))
    return path


def age(*paths: Path) -> None:
    for path in paths:
        os.utime(path, (OLD, OLD))


def made(path: Path, data: bytes = b"x" * 10, *, old: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if old:
        age(path)
    return path


def record(cache: Path, key: str, state: str, *, request_id: str = "req-1", cost: str = "0.35", frames=()) -> None:
    data = {
        "key": key,
        "shot": "s",
        "endpoint": "fal-ai/kling-video/v2.1/standard/text-to-video",
        "body_hash": key,
        "state": state,
        "request_id": request_id,
        "estimated_cost_usd": cost,
        "submitted_at": "2026-01-01T00:00:00+00:00",
        "frames": list(frames),
        "schema": 2,
    }
    (cache / "jobs").mkdir(parents=True, exist_ok=True)
    (cache / "jobs" / f"{key}.json").write_text(json.dumps(data))


@pytest.fixture
def store(tmp_path, clip_store, monkeypatch):
    """A project (film.yaml, its video's manifest in out/) and a clip store holding what it needs,
    what it no longer needs, and what nothing needs but must stay. `store.gone` is what a real run
    with --older-than 30 deletes."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "film.yaml").write_text(BOARD)
    (tmp_path / "notes.yaml").write_text("todo: [a, b]\n")  # not a storyboard: left out
    cache = clip_store
    plan = load_plan(tmp_path / "film.yaml")
    (lake1, lake2), street = plan.takes_of("lake"), plan.shot("street")
    key = {name: ClipStore.key(backend, s) for name, backend, s in [
        ("p-lake1", "preview", lake1), ("p-lake2", "preview", lake2), ("p-street", "preview", street),
        ("f-lake1", "fal", lake1), ("f-lake2", "fal", lake2),
    ]}  # fmt: skip
    key.update(orphan="a" * 64, paid="b" * 64, live="c" * 64, video="d" * 64)
    clips = cache / "clips"
    paths = {name: put(cache, k, name.encode() * 100) for name, k in key.items()}
    record(cache, key["f-lake1"], "downloaded")
    record(cache, key["f-lake2"], "downloaded", request_id="req-2")
    record(cache, key["paid"], "downloaded", request_id="req-3", frames=[{"sha256": "e" * 64, "field": "image_url"}])
    record(cache, key["live"], "submitted", request_id="req-4")
    # derived files: the picked take's normalised copy stays, the unpicked take's and the orphan's go
    norm = {name: made(clips / f"{key[name]}.norm-0123456789abcdef.mp4") for name in ("p-lake1", "p-lake2", "orphan", "video")}
    # the video in out/ was cut from a clip no storyboard names now (the storyboard changed since)
    manifest = tmp_path / "out" / "film.manifest.json"
    made(manifest, b"")
    manifest.write_text(
        json.dumps(
            {
                "shotflow_manifest": 2,
                "output": {"path": str(tmp_path / "out" / "film.mp4")},
                "shots": [
                    {
                        "id": "lake",
                        "clip": str(paths["video"]),
                        "clip_sha256": "0" * 64,
                        "normalised": {"path": str(norm["video"]), "frames": 120},
                        "frames": [{"sha256": "f" * 64}],
                    }
                ],
            }
        )
    )
    frames = cache / "frames"
    orphan_sha = json.loads((clips / f"{key['orphan']}.meta.json").read_text())["sha256"]
    video_sha = json.loads((clips / f"{key['video']}.meta.json").read_text())["sha256"]
    others = {
        "orphan memo": made(
            frames / "clips" / f"{orphan_sha}.8388608.json", json.dumps({"sha256": "1" * 64, "ext": "png"}).encode()
        ),
        "orphan frame": made(frames / f"{'1' * 64}.png"),
        "video memo": made(
            frames / "clips" / f"{video_sha}.8388608.json", json.dumps({"sha256": "2" * 64, "ext": "png"}).encode()
        ),
        "video frame": made(frames / f"{'2' * 64}.png"),
        "paid record's frame": made(frames / f"{'e' * 64}.png"),
        "manifest's frame": made(frames / f"{'f' * 64}.png"),
        "url memo": made(frames / "urls" / f"{'3' * 64}.json", json.dumps({"sha256": "4" * 64, "ext": "jpg"}).encode()),
        "url frame": made(frames / f"{'4' * 64}.jpg"),
        "stray frame": made(frames / f"{'5' * 64}.png", b"y" * 30),
        "old piece": made(cache / "pieces" / "overlap-0123.mp4", b"z" * 50),
        "new piece": made(cache / "pieces" / "overlap-4567.mp4", old=False),
        "superseded": made(clips / "superseded" / f"{key['f-lake1']}.123.mp4", b"s" * 70),
        "stale part": made(clips / f".{key['orphan']}.99.part"),
        "quarantined": made(clips / "quarantine" / f"{key['paid']}.mp4"),
    }
    store = {**{f"clip {k}": v for k, v in paths.items()}, **{f"norm {k}": v for k, v in norm.items()}, **others}
    gone = [
        paths["orphan"], paths["orphan"].with_name(f"{key['orphan']}.meta.json"), paths["p-lake2"],
        paths["p-lake2"].with_name(f"{key['p-lake2']}.meta.json"), norm["p-lake2"], norm["orphan"], others["orphan memo"],
        others["orphan frame"], others["stray frame"], others["old piece"], others["stale part"],
    ]  # fmt: skip
    return type("Store", (), {"cache": cache, "key": key, "paths": store, "gone": set(gone), "root": tmp_path})


def files(cache: Path) -> set[Path]:
    return {p for p in cache.rglob("*") if p.is_file() and ".locks" not in p.parts and "jobs" not in p.parts}


def test_dry_run_lists_what_would_go_with_sizes_and_a_total_and_deletes_nothing(store, capsys):
    before = files(store.cache)
    assert main(["gc", "--dry-run", "--older-than", "30"]) == 0
    out = capsys.readouterr().out
    assert files(store.cache) == before
    listed = out.split("would delete (dry run):\n")[1].split("would free")[0].splitlines()
    shown = {line.split()[2] for line in listed}
    assert shown == {str(p.relative_to(store.cache)) for p in store.gone if not p.name.endswith(".meta.json")}
    p_lake2 = [line for line in listed if store.key["p-lake2"] + ".mp4" in line][0]
    assert "take 2 of 'lake' (film.yaml): no video is cut from it, stored 40 days ago" in p_lake2
    meta = store.paths["clip p-lake2"].with_name(store.key["p-lake2"] + ".meta.json")
    assert p_lake2.split()[:2] == [str(700 + meta.stat().st_size), "B"]  # the clip and its meta, in bytes
    total = sum(p.stat().st_size for p in store.gone)
    freed = out.split("would free ")[1]
    assert freed.split()[1] == "KB" and abs(float(freed.split()[0]) * 1000 - total) <= 50
    assert freed.split(" (")[1].startswith("11 files); nothing was deleted")  # a clip and its meta are two
    assert "film.yaml" in out and "notes.yaml" in out.split("not storyboards")[1]
    # kept although nothing needs them: each said once with why
    only = [line for line in out.splitlines() if "the only copy of something paid for" in line and line.startswith("kept")]
    assert (
        only and "5 files" in only[0] and "--include-only-copies deletes them" in only[0]
    )  # paid, fal lake 2 (+ metas), superseded
    assert "kept 2 files" in out and "its fal request is not settled" in out  # the live request
    assert "changed in the last hour" in out  # the new piece


def test_a_real_run_deletes_exactly_what_nothing_needs(store, capsys):
    before = files(store.cache)
    assert main(["gc", "--older-than", "30"]) == 0
    out = capsys.readouterr().out
    assert before - files(store.cache) == store.gone
    assert "freed" in out and "(11 files)" in out and "deleted:" in out
    # without --older-than every take stays: only what nothing needs goes
    assert main(["gc"]) == 0
    assert store.paths["clip p-lake1"].is_file() and store.paths["norm p-lake1"].is_file()  # the picked take, normalised
    assert store.paths["clip video"].is_file() and store.paths["norm video"].is_file()  # a manifest's video is cut from them
    assert store.paths["video memo"].is_file() and store.paths["video frame"].is_file()  # the frame memo of a kept clip
    assert all(store.paths[k].is_file() for k in ("url memo", "url frame", "manifest's frame", "quarantined", "new piece"))


def test_unpicked_takes_stay_until_they_are_older_than_asked(store, capsys):
    assert main(["gc"]) == 0
    assert store.paths["clip p-lake2"].is_file()  # a take, kept to be picked
    assert not store.paths["norm p-lake2"].exists()  # its normalised copy: no video is cut from it
    assert main(["gc", "--older-than", "50"]) == 0
    assert store.paths["clip p-lake2"].is_file()
    save_picks(Picks(str(store.root / "film.picks.yaml")).with_pick("lake", 2), "film.yaml")
    assert main(["gc", "--older-than", "30"]) == 0
    assert store.paths["clip p-lake2"].is_file()  # picked now: it stays, whatever its age
    assert not store.paths["clip p-lake1"].exists() and not store.paths["norm p-lake1"].exists()  # take 1: not cut now
    capsys.readouterr()


def test_only_copies_go_only_when_asked_and_never_a_live_requests_clip(store, capsys):
    main(["gc", "--older-than", "30"])
    assert store.paths["clip paid"].is_file() and store.paths["clip f-lake2"].is_file() and store.paths["superseded"].is_file()
    assert main(["gc", "--older-than", "30", "--include-only-copies"]) == 0
    out = capsys.readouterr().out
    assert not store.paths["clip paid"].exists() and not store.paths["clip f-lake2"].exists()
    assert not store.paths["superseded"].exists()
    line = [x for x in out.splitlines() if store.key["paid"] + ".mp4" in x][0]
    assert "[the only copy of something paid for: fal request req-3, estimated $0.35]" in line
    assert not store.paths["paid record's frame"].exists()  # its clip is gone: what it was sent with goes too
    assert store.paths["clip live"].is_file()  # a request not settled: never
    assert store.paths["clip f-lake1"].is_file()  # the picked take (of a fal run)


def test_a_request_sent_between_the_survey_and_the_sweep_keeps_its_clip(store):
    found = gc.survey(store.cache, Needs(), include_only_copies=True)
    assert store.paths["clip orphan"] in [e.path for e in found.doomed]
    record(store.cache, store.key["orphan"], "submitted", request_id="req-9")  # a run sent it meanwhile
    deleted, skipped = gc.sweep(found)
    assert store.paths["clip orphan"].is_file()
    assert [why for e, why in skipped if e.path == store.paths["clip orphan"]] == ["a request for it was sent meanwhile"]
    assert store.paths["clip paid"] in [e.path for e in deleted]  # nothing else stopped


def test_a_storyboard_that_does_not_validate_stops_gc_before_anything_goes(store, capsys):
    (store.root / "broken.yaml").write_text("version: 1\nshots:\n  - {id: a, prompt: x, model: nope}\n")
    before = files(store.cache)
    assert main(["gc", "--older-than", "30"]) == 1
    captured = capsys.readouterr()
    assert "broken.yaml" in captured.out and "nothing was deleted" in captured.err
    assert files(store.cache) == before
    # named storyboards: only those count (film.yaml's takes are then not needed)
    assert main(["gc", "--dry-run", "--storyboards", str(store.root / "film.yaml")]) == 0
    with pytest.raises(SystemExit):
        main(["gc", "--older-than", "-1"])


def test_a_continuing_shots_clip_and_the_frame_memo_keeping_its_key_stay(tmp_path, clip_store, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "chain.yaml").write_text(
        "version: 1\noutput: {resolution: 360p}\nshots:\n"
        "  - {id: a, prompt: a door, model: kling, duration: 5}\n"
        "  - {id: b, from: a, prompt: it opens, model: kling, duration: 5}\n"
    )
    clip = tmp_path / "a.mp4"
    subprocess.run(
        [
            ffmpeg_exe(),
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=c=red:s=64x36:r=25:d=0.2",
            "-pix_fmt",
            "yuv420p",
            str(clip),
        ],
        check=True,
        timeout=60,
    )
    plan = load_plan(tmp_path / "chain.yaml")
    put(clip_store, ClipStore.key("preview", plan.shot("a")), clip.read_bytes())
    from shotflow.generation.known import known_requests

    b = known_requests(plan, "preview", clip_store)["b"][0]  # resolved from a's last frame (its memo is written)
    put(clip_store, ClipStore.key("preview", b), b"b-clip")
    age(*(clip_store / "frames").rglob("*.*"))
    before = files(clip_store)
    assert main(["gc", "--older-than", "0"]) == 0
    assert files(clip_store) == before  # the clip, its frame, the memo that keeps b's key exact


def test_with_no_storyboard_in_sight_gc_refuses_and_deletes_nothing(store, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    monkeypatch.chdir(empty)
    before = files(store.cache)
    assert main(["gc"]) == 1
    assert files(store.cache) == before
    assert "no storyboard here" in capsys.readouterr().err
    assert main(["gc", "--dry-run"]) == 0  # a dry run only lists
