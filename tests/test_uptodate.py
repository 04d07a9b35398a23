"""An unchanged storyboard re-run answers "up to date" from its manifest without importing
Prefect; any change (a var, the date, an input file, a clip, the video) renders again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import chdir, contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from shotflow.plan import load_plan
from shotflow.report import uptodate
from shotflow.store.clips import ClipStore
from shotflow.store.digest import file_sha256
from shotflow.store.journal import JobRecord, Journal

STORYBOARD = """\
version: 1
title: "Harbour {{ date }}"
vars: {what: boats}
output:
  resolution: 360p
  fps: 24
  transition: {type: cut}
  audio: {path: track.wav, volume: 0.5}
shots:
  - {id: one, prompt: "{{ what }} at dawn", model: kling, duration: 5}
  - {id: two, prompt: a lighthouse, model: veo2, duration: 5}
"""

# runs the real CLI and says on stderr whether Prefect was imported in that process
PROBE = (
    "import sys; from shotflow.cli import main; rc = main(sys.argv[1:]); "
    "print('PREFECT IMPORTED' if 'prefect' in sys.modules else 'PREFECT NOT IMPORTED', file=sys.stderr); sys.exit(rc)"
)


def run_cli(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PROBE, "run", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """One storyboard rendered once with the preview backend (a private Prefect server)."""
    import imageio_ffmpeg

    work = tmp_path_factory.mktemp("uptodate")
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=f=440:d=3",
            str(work / "track.wav"),
        ],
        check=True,
        timeout=60,
    )
    (work / "sb.yaml").write_text(STORYBOARD)
    env = {**os.environ, "SHOTFLOW_CACHE_DIR": str(work / "cache")}
    first = run_cli("sb.yaml", "--backend", "preview", "--out", "out/h.mp4", cwd=work, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "starting Prefect" in first.stdout and "up to date" not in first.stdout
    return work, env


def verdict(work: Path, env: dict, **kw):
    with chdir(work):  # the output path is relative to where the run starts
        plan = load_plan("sb.yaml", out="out/h.mp4", **kw)
        return uptodate.check(plan, "preview", Path(env["SHOTFLOW_CACHE_DIR"]))


@contextmanager
def altered(path: Path, content: bytes | None):
    """Inside the block `path` holds `content` (None: it is gone); after it, its own bytes again."""
    original = path.read_bytes()
    try:
        if content is None:
            path.unlink()
        else:
            path.write_bytes(content)
        yield
    finally:
        path.write_bytes(original)


def test_an_unchanged_rerun_is_up_to_date_without_prefect(rendered):
    work, env = rendered
    again = run_cli("sb.yaml", "--backend", "preview", "--out", "out/h.mp4", cwd=work, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "shotflow: out/h.mp4 is up to date" in again.stdout
    assert "PREFECT NOT IMPORTED" in again.stderr
    assert "starting Prefect" not in again.stdout
    assert f"video:         {work / 'out' / 'h.mp4'} (10.00 s)  (up to date: nothing rendered)" in again.stdout

    as_json = run_cli("sb.yaml", "--backend", "preview", "--out", "out/h.mp4", "--json", cwd=work, env=env)
    report = json.loads(as_json.stdout)  # one JSON object and nothing else on stdout
    assert report["up_to_date"] is True and report["video"] == str(work / "out" / "h.mp4")
    assert [s["id"] for s in report["shots"]] == ["one", "two"]
    assert "PREFECT NOT IMPORTED" in as_json.stderr


def test_force_renders_an_unchanged_storyboard(rendered):
    work, env = rendered
    forced = run_cli("sb.yaml", "--backend", "preview", "--out", "out/h.mp4", "--force", "one", cwd=work, env=env)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "up to date" not in forced.stdout and "PREFECT IMPORTED" in forced.stderr


def test_the_manifest_records_what_up_to_date_compares(rendered):
    work, env = rendered
    manifest = json.loads((work / "out" / "h.manifest.json").read_text())
    fingerprint = manifest["fingerprint"]
    assert fingerprint["backend"] == "preview" and fingerprint["shotflow"] == uptodate.shotflow_version()
    assert fingerprint["inputs"]["soundtrack"]["sha256"] == file_sha256(work / "track.wav")
    assert manifest["timings"]["last_clip_to_final_s"] >= 0
    assert verdict(work, env).up_to_date


def test_a_changed_var_or_date_renders(rendered):
    work, env = rendered
    changed = verdict(work, env, vars={"what": "ships"})
    assert not changed.up_to_date and "storyboard" in changed.reason
    tomorrow = verdict(work, env, now=datetime(2031, 1, 2))
    assert not tomorrow.up_to_date and "storyboard" in tomorrow.reason


def test_a_changed_soundtrack_renders(rendered):
    work, env = rendered
    track = work / "track.wav"
    with altered(track, track.read_bytes()[:-2] + b"\x01\x01"):
        changed = verdict(work, env)
        assert not changed.up_to_date and "soundtrack" in changed.reason
    assert verdict(work, env).up_to_date


def test_a_deleted_or_corrupted_clip_renders(rendered):
    work, env = rendered
    store = ClipStore(Path(env["SHOTFLOW_CACHE_DIR"]))
    with chdir(work):
        clip = store.path(ClipStore.key("preview", load_plan("sb.yaml").shot("two")))
    for content in (None, clip.read_bytes()[:-100]):  # deleted, then truncated
        with altered(clip, content):
            changed = verdict(work, env)
            assert not changed.up_to_date and "shot 'two'" in changed.reason
        assert verdict(work, env).up_to_date


def test_a_forced_take_not_collected_yet_renders(rendered):
    """A forced take stopped before its clip landed (Ctrl-C, a failing download): the next run
    collects it, so the old video is not up to date (the manifest is made to say fal made it)."""
    work, env = rendered
    cache = Path(env["SHOTFLOW_CACHE_DIR"])
    manifest = work / "out" / "h.manifest.json"
    with chdir(work):
        plan = load_plan("sb.yaml", out="out/h.mp4")
    shot = plan.shot("one")  # the first shot: checked before any clip (none is in the store as fal's)
    key = ClipStore.key("fal", shot)
    journal = Journal.in_cache(cache)
    data = json.loads(manifest.read_text())
    data["fingerprint"]["backend"] = "fal"
    with altered(manifest, json.dumps(data).encode()):
        pending = JobRecord(key, "one", shot.endpoint, shot.body_hash, "submitted", request_id="req-forced", force_token="run-9")
        journal.write(pending)
        try:
            with chdir(work):  # the output path is relative to where the run starts
                changed = uptodate.check(plan, "fal", cache)
                assert not changed.up_to_date
                assert "shot 'one'" in changed.reason and "req-forced" in changed.reason and "not collected" in changed.reason
                journal.write(replace(pending, state="downloaded"))  # collected: the check goes on to the clips
                assert "its clip is no longer in the clip store" in uptodate.check(plan, "fal", cache).reason
        finally:
            journal.path(key).unlink()


def test_a_modified_output_renders_through_the_cli(rendered):
    work, env = rendered
    video = work / "out" / "h.mp4"
    with open(video, "ab") as fh:
        fh.write(b"\0")
    changed = verdict(work, env)
    assert not changed.up_to_date and "modified" in changed.reason
    again = run_cli("sb.yaml", "--backend", "preview", "--out", "out/h.mp4", cwd=work, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "shotflow: rendering: " in again.stdout and "modified" in again.stdout
    assert "PREFECT IMPORTED" in again.stderr
    assert verdict(work, env).up_to_date  # the new video is recorded
