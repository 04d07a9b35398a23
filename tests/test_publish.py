"""A run's outputs in the shared store (shotflow/store/publish.py): against moto's real S3 server.

The video, its manifest and contact sheet are put in the bucket, each with a presigned URL that
opens it (fetched with urllib, no credentials); another run's different video is never silently
replaced (kept under its dated name, as locally); an output may be an s3:// URL of the store;
`shotflow ledger` lists the videos with fresh links, which still open once the worker's cache and
output folder are gone; an inline storyboard's picks live in the store.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
from teamservers import endpoint_fixture, s3_client, s3_env, s3_store  # noqa: F401 (endpoint_fixture: the fixture `endpoint`)

from shotflow.errors import StoryboardError
from shotflow.picks import Picks, load_picks, picks_path, save_picks
from shotflow.preflight import PreflightError, preflight
from shotflow.store import publish
from shotflow.store.shared import SharedStoreError, parse_store

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "shotflow-publish"

BOARD = """\
version: 1
title: Small
output: {resolution: 360p, fps: 24}
shots:
  - {id: one, prompt: a red door, model: kling, duration: 5}
"""


@pytest.fixture
def store(endpoint):
    """A fresh prefix of the test bucket for each test."""
    return s3_store(endpoint, f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}")


@pytest.fixture
def shared(endpoint, monkeypatch, store):
    """SHOTFLOW_STORE set to `store`'s prefix, boto3 pointed at the test endpoint (this process and its children)."""
    for name, value in s3_env(endpoint).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SHOTFLOW_STORE", store.location.url)
    monkeypatch.setenv("SHOTFLOW_LEASE_TTL", "5")
    return store


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=20) as answer:
        return answer.read()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def outputs_of(folder: Path, name: str = "film", marker: bytes = b"") -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "video": folder / f"{name}.mp4",
        "contact_sheet": folder / f"{name}.contact.png",
        "manifest": folder / f"{name}.manifest.json",
    }
    files["video"].write_bytes(os.urandom(50_000) + marker)
    files["contact_sheet"].write_bytes(os.urandom(2_000))
    files["manifest"].write_text(json.dumps({"created": "2026-11-30T10:00:00+00:00", "marker": marker.decode()}))
    return files


def test_two_folders_videos_of_one_name_get_keys_of_their_own(tmp_path):
    run = tmp_path / "run"
    keys = {publish.default_key("/boards/show.yaml", "Show", run / "out" / ep / "film.mp4", run) for ep in ("ep1", "ep2")}
    assert keys == {"outputs/show/out/ep1/film.mp4", "outputs/show/out/ep2/film.mp4"}
    # outside the run's folder: its file name
    assert publish.default_key("/boards/show.yaml", "Show", tmp_path / "elsewhere" / "film.mp4", run) == "outputs/show/film.mp4"


def test_outputs_are_put_verified_and_their_links_open_without_credentials(store, tmp_path):
    files = outputs_of(tmp_path / "out")
    outputs = publish.Outputs(store, publish.default_key("/work/boards/film.yaml", "Film", files["video"]))
    done = publish.publish(outputs, files, existing="keep", cache_dir=tmp_path / "cache", about={"title": "Film"})
    assert outputs.video_key == "outputs/film/film.mp4" and done.earlier == "none"
    assert done.keys == {
        "video": "outputs/film/film.mp4",
        "contact_sheet": "outputs/film/film.contact.png",
        "manifest": "outputs/film/film.manifest.json",
    }
    for role, path in files.items():
        info = store.stat(done.keys[role])
        assert info is not None and info.sha256 == sha(path.read_bytes())
        assert done.store_urls[role] == f"{store.location.url}/{done.keys[role]}"
        assert "shotflow-test-secret" not in done.links[role]
        assert fetch(done.links[role]) == path.read_bytes()  # a browser's GET: the same bytes
    (found,) = publish.listed(store)
    assert (found.key, found.title, found.files["manifest"]) == (done.keys["video"], "Film", done.store_urls["manifest"])
    assert fetch(found.link) == files["video"].read_bytes()


def test_another_runs_different_video_is_kept_under_its_dated_name_never_replaced_silently(store, tmp_path):
    first = outputs_of(tmp_path / "a", marker=b"first")
    outputs = publish.Outputs(store, "outputs/film/film.mp4")
    publish.publish(outputs, first, existing="keep", cache_dir=tmp_path / "cache")
    again = publish.publish(outputs, first, existing="keep", cache_dir=tmp_path / "cache")
    assert (again.earlier, again.kept) == ("identical", None)  # an unchanged re-run piles up no copies

    second = outputs_of(tmp_path / "b", marker=b"second")
    done = publish.publish(outputs, second, existing="keep", cache_dir=tmp_path / "cache")
    # the earlier one's time is its publication's (its listing), as locally its file's mtime
    assert done.earlier == "kept" and done.kept is not None and done.kept.startswith("outputs/film/film.20")
    stamp = done.kept.removeprefix("outputs/film/film.").removesuffix(".mp4")
    assert store.get_file(done.kept, tmp_path / "c").read_bytes() == first["video"].read_bytes()
    for suffix, role in (("contact.png", "contact_sheet"), ("manifest.json", "manifest")):
        kept = store.get_file(f"outputs/film/film.{stamp}.{suffix}", tmp_path / "c")
        assert kept.read_bytes() == first[role].read_bytes()
    assert store.get_file("outputs/film/film.mp4", tmp_path / "c").read_bytes() == second["video"].read_bytes()
    assert f"was kept as {store.location.url}/{done.kept}" in done.earlier_line()
    listed = {v.key: v for v in publish.listed(store)}
    assert set(listed) == {"outputs/film/film.mp4", done.kept}
    assert listed[done.kept].files["manifest"].endswith(f"film.{stamp}.manifest.json")

    third = outputs_of(tmp_path / "c3", marker=b"third")  # a second earlier video in the same second: -2
    kept_again = publish.publish(outputs, third, existing="keep", cache_dir=tmp_path / "cache").kept
    assert kept_again not in (None, done.kept) and store.exists(kept_again)

    replaced = publish.publish(outputs, first, existing="replace", cache_dir=tmp_path / "cache")
    assert (replaced.earlier, replaced.kept) == ("replaced", None)
    assert len(store.list("outputs/film/")) == 9  # the name, two kept videos, each with two sidecars


def test_publishers_of_one_name_take_turns_under_its_lease(store, tmp_path):
    """Two runs finishing at once: each keeps the other's video (neither replaced silently)."""
    import threading

    from shotflow.store.coordination import check_coordination
    from shotflow.store.team import Team

    team = Team(store, check_coordination(store, redis_url=None), lease_ttl=5)
    outputs = publish.Outputs(store, "outputs/race/race.mp4")
    runs = [outputs_of(tmp_path / str(i), "race", marker=str(i).encode()) for i in range(3)]
    results, errors = [], []

    def run(files):
        try:
            results.append(publish.publish(outputs, files, existing="keep", team=team, cache_dir=tmp_path / "cache"))
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(files,)) for files in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    videos = [k for k in store.list("outputs/race/") if k.endswith(".mp4")]
    assert len(videos) == 3  # every run's video is somewhere: one at the name, two kept
    held = {sha(store.get_file(k, tmp_path / "got").read_bytes()) for k in videos}
    assert held == {sha(files["video"].read_bytes()) for files in runs}
    assert sorted(r.earlier for r in results) == ["kept", "kept", "none"]


def test_an_output_url_must_be_in_the_store_and_is_rendered_in_the_cache(shared, tmp_path):
    from shotflow.plan import load_plan
    from shotflow.settings import get_settings

    board = tmp_path / "film.yaml"
    board.write_text(BOARD)
    url = f"{shared.location.url}/renders/final.mp4"
    settings = get_settings()
    assert preflight(load_plan(board, out=url), settings=settings) == settings.cache_dir / "outputs" / "renders" / "final.mp4"
    assert publish.url_key(url, shared.location) == "renders/final.mp4"
    other = f"s3://another-bucket/{shared.location.prefix}/x.mp4"
    for bad, says in [
        (other, "not in SHOTFLOW_STORE"),
        (f"s3://{BUCKET}/elsewhere/x.mp4", "not in SHOTFLOW_STORE"),
        (f"{shared.location.url}/renders/final.mov2", "not a '.mov2' file"),
    ]:
        with pytest.raises(PreflightError, match=says):
            preflight(load_plan(board, out=bad), settings=settings)
    with pytest.raises(SharedStoreError, match="needs SHOTFLOW_STORE"):
        publish.url_key(url, parse_store(None, default=tmp_path))


def test_an_inline_storyboards_picks_live_in_the_store(shared, tmp_path):
    where = picks_path("<inline storyboard>", "abc123", tmp_path / "cache")
    assert where == f"{shared.location.url}/picks/abc123.yaml"
    assert load_picks(where) == Picks(where)  # none yet
    save_picks(Picks(where).with_pick("one", 2), "inline")
    read = load_picks(where)
    assert read.picked["one"].take == 2 and shared.exists("picks/abc123.yaml")
    save_picks(read.with_pick("two", 3), "inline")  # this process's own earlier save is not "another run"
    save_picks(read.with_pick("two", 3).with_pick("one", 1), "inline")
    assert {k: p.take for k, p in load_picks(where).picked.items()} == {"one": 1, "two": 3}
    # another worker saves meanwhile: a stale copy is refused, naming the store's URL
    shared.put_bytes("picks/abc123.yaml", b"picks: {one: 4}\n")
    with pytest.raises(StoryboardError, match="changed by another run since it was read"):
        save_picks(read.with_pick("one", 5), "inline")
    assert load_picks(where).picked["one"].take == 4


def shotflow(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shotflow.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_runs_publish_their_outputs_and_the_ledger_links_them_after_the_cache_is_gone(shared, clip_store, tmp_path):
    board = tmp_path / "film.yaml"
    board.write_text(BOARD)
    out = tmp_path / "out" / "film.mp4"
    r = shotflow("run", str(board), "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    base = shared.location.url
    assert f"in the store:  {base}/outputs/film/out/film.mp4" in r.stdout
    video_link = r.stdout.split("  video:         ", 1)[1].split()[0]
    assert fetch(video_link) == out.read_bytes()
    manifest = json.loads(out.with_name("film.manifest.json").read_text())
    assert manifest["output"]["url"] == f"{base}/outputs/film/out/film.mp4"
    assert manifest["store"]["contact_sheet"] == f"{base}/outputs/film/out/film.contact.png"
    assert json.loads(shared.get_bytes("outputs/film/out/film.manifest.json").data) == manifest
    first = out.read_bytes()

    # the storyboard changed: a different video under the same name; the first is kept, in the bucket too
    board.write_text(BOARD.replace("a red door", "a green door"))
    r = shotflow("run", str(board), "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"the earlier video at {base}/outputs/film/out/film.mp4 was kept as {base}/outputs/film/out/film.20" in r.stdout
    kept = [k for k in shared.list("outputs/film/out/") if k.endswith(".mp4") and k != "outputs/film/out/film.mp4"]
    assert len(kept) == 1 and fetch(shared.url(kept[0])) == first
    second = out.read_bytes()
    assert second != first and fetch(shared.url("outputs/film/out/film.mp4")) == second

    # an output that is a URL of the store: rendered in the cache, put at that key
    r = shotflow("run", str(board), "--out", f"{base}/renders/final.mp4", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["video"] == f"{base}/renders/final.mp4" and report["store"]["manifest"] == f"{base}/renders/final.manifest.json"
    assert Path(report["local_video"]).is_relative_to(clip_store)
    assert fetch(report["links"]["video"]) == Path(report["local_video"]).read_bytes()

    # nothing on this machine is needed any more: the ledger lists the videos with links that open
    shutil.rmtree(clip_store)
    shutil.rmtree(out.parent)
    r = shotflow("ledger", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "videos in the store (3" in r.stdout and f"{base}/renders/final.mp4" in r.stdout
    r = shotflow("ledger", "--videos", "--json", cwd=tmp_path)
    videos = {v["video"]: v for v in json.loads(r.stdout)}
    assert set(videos) == {f"{base}/renders/final.mp4", f"{base}/outputs/film/out/film.mp4", f"{shared.location.url}/{kept[0]}"}
    assert fetch(videos[f"{base}/outputs/film/out/film.mp4"]["link"]) == second
    assert fetch(videos[f"{base}/{kept[0]}"]["link"]) == first


def test_a_video_missing_from_the_store_is_not_up_to_date_and_is_published_again(shared, clip_store, tmp_path):
    board = tmp_path / "film.yaml"
    board.write_text(BOARD)
    out = tmp_path / "out" / "film.mp4"
    assert shotflow("run", str(board), "--out", str(out), cwd=tmp_path).returncode == 0
    again = shotflow("run", str(board), "--out", str(out), cwd=tmp_path)
    assert again.returncode == 0 and "up to date" in again.stdout, again.stdout + again.stderr
    shared.delete("outputs/film/out/film.mp4")  # its publish lost, say, or the bucket cleaned by hand
    r = shotflow("run", str(board), "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0 and "up to date" not in r.stdout, r.stdout + r.stderr
    assert shared.stat("outputs/film/out/film.mp4").sha256 == sha(out.read_bytes())
