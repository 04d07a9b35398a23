"""The cut handed to an editor: one run (through the fake fal server, so every shot has a request
id) writes OTIO, FCPXML and EDL next to its video; each file is read back by OpenTimelineIO and
its adapters and compared with the plan, with exactly the losses shotflow/report/timeline.py says.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote, urlparse

import opentimelineio as otio
import pytest
from fakefal import product_env
from shotflow.flows.render import render_storyboard

from shotflow.media.probe import probe
from shotflow.plan import load_plan

ROOT = Path(__file__).resolve().parents[1]
FPS = 24
FILM = """\
version: 1
title: Four doors
output: {resolution: 360p, fps: 24, transition: {type: crossfade, seconds: 0.5}}
shots:
  - {id: door, prompt: "a red door\\n   opening slowly", model: kling, duration: 5}
  - {id: hall, prompt: a long hall, model: kling, duration: 5}
  - {id: stairs, prompt: stairs going up, model: kling, duration: 5, takes: 2, transition: {type: wipeleft, seconds: 0.25}}
  - {id: roof, prompt: a roof at night, model: kling, duration: 5, transition: {type: fade, seconds: 1}}
  - {id: sky, prompt: the sky, model: kling, duration: 5, transition: {type: cut}}
"""
# the cut into each shot after the first: effect, overlap in frames at 24 fps
CUTS = [("crossfade", 12), ("wipeleft", 6), ("fadeblack", 24), ("cut", 0)]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One fal run (the fake server) of FILM with every export, take 2 of 'stairs' picked; its own clip store."""
    from fakefal import KEY, ensure_server

    from shotflow.picks import Picks, picks_path, save_picks

    tmp = tmp_path_factory.mktemp("export")
    sb = tmp / "film.yaml"
    sb.write_text(FILM)
    cache = tmp / "cache"
    save_picks(Picks(str(picks_path(str(sb), "unused", cache))).with_pick("stairs", 2), "film.yaml")
    server = ensure_server()
    server.reset()
    with pytest.MonkeyPatch.context() as mp:
        for name, value in dict(
            SHOTFLOW_CACHE_DIR=str(cache),
            FAL_KEY=KEY,
            SHOTFLOW_MEDIA_HOSTS="127.0.0.1",
            SHOTFLOW_FAL_POLL_INTERVAL="0.1",
            SHOTFLOW_FAL_RETRY_BACKOFF="0.05",
        ).items():
            mp.setenv(name, value)
        result = render_storyboard(storyboard=str(sb), backend="fal", out=str(tmp / "film.mp4"), export=["otio", "fcpxml", "edl"])
    video = Path(result["video"])
    manifest = json.loads(video.with_name("film.manifest.json").read_text())
    return SimpleNamespace(
        tmp=tmp, sb=sb, cache=cache, result=result, video=video, manifest=manifest, plan=load_plan(sb), records=result["exports"]
    )


def shotflow(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "shotflow.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env
    )


def path_of(url: str) -> Path:
    return Path(unquote(urlparse(url).path))


def frames_of(video: Path) -> int:
    return round(probe(video).duration * FPS)


def marker_names(run) -> list[str]:
    """Each shot's marker text, as the full-fidelity .otio has it."""
    timeline = otio.adapters.read_from_file(str(run.video.with_name("film.otio")))
    return [c.markers[0].name for c in timeline.tracks[0].find_clips()]


def test_the_run_writes_each_timeline_next_to_the_video_and_says_what_it_could_not_keep(run):
    by_format = {r["format"]: r for r in run.records}
    assert set(by_format) == {"otio", "fcpxml", "edl"}
    for fmt, record in by_format.items():
        assert record["path"] == str(run.video.with_name(f"film.{fmt}")) and Path(record["path"]).stat().st_size > 0
    assert (
        by_format["otio"]["description"]
        == f"{run.video.with_name('film.otio')} (OTIO: 5 clips, 3 transitions; picture and sound)"
    )
    assert by_format["fcpxml"]["description"] == f"{run.video.with_name('film.fcpxml')} (FCPXML: 5 clips; picture and sound)"
    assert by_format["edl"]["description"] == f"{run.video.with_name('film.edl')} (EDL: 5 clips, 3 transitions; picture only)"
    assert by_format["otio"]["warnings"] == []
    (fcpxml,) = by_format["fcpxml"]["warnings"]
    assert "FCPXML keeps no transitions" in fcpxml
    assert "the crossfade from 'door' into 'hall', the wipeleft from 'hall' into 'stairs' and the fadeblack from" in fcpxml
    assert "are cuts where the next clip starts" in fcpxml
    edl, picture = by_format["edl"]["warnings"]
    assert "every transition a dissolve" in edl
    assert "the wipeleft from 'hall' into 'stairs' and the fadeblack from 'stairs' into 'roof' are dissolves" in edl
    assert "crossfade" not in edl
    assert "the EDL has the picture only" in picture


def test_the_otio_timeline_is_the_plan(run):
    timeline = otio.adapters.read_from_file(str(run.video.with_name("film.otio")))
    track, sound = timeline.tracks
    assert (track.kind, sound.kind) == ("Video", "Audio")
    clips = list(track.find_clips())
    shots = run.plan.shots
    assert [c.name for c in clips] == [s.id for s in shots]
    # one frame rate for the whole cut, and the cut lasts exactly what the video lasts
    assert {c.source_range.duration.rate for c in clips} == {FPS}
    assert timeline.duration() == otio.opentime.RationalTime(frames_of(run.video), FPS)
    tails = [f for _, f in CUTS] + [0]
    for clip, shot, tail, record in zip(clips, shots, tails, run.manifest["shots"]):
        whole = shot.seconds * FPS
        # in and out points: from the clip's first frame to where the next clip starts; the
        # frames an overlap uses after that are the clip's handle (its visible range)
        assert clip.source_range.start_time.value == 0 and clip.source_range.duration.value == whole - tail
        assert clip.visible_range().duration.value == whole
        # each clip is the shot's normalised clip: the output's size and frame rate, its full length
        file = path_of(clip.media_reference.target_url)
        assert str(file) == record["normalised"]["path"] and file.is_file()
        info = probe(file)
        assert (info.width, info.height, info.fps) == (640, 360, FPS) and round(info.duration * FPS) == whole
        assert clip.media_reference.available_range.duration.value == whole
        (marker,) = clip.markers
        meta = marker.metadata["shotflow"]
        assert meta["shot"] == shot.id and meta["prompt"] == shot.body["prompt"] and meta["model"] == shot.model
        assert meta["request_id"] == record["request_id"] and record["request_id"]
        prompt = " ".join(shot.body["prompt"].split())
        take = f" (take {shot.take})" if shot.id == "stairs" else ""
        assert marker.name == f"{shot.id}{take}: {prompt} [fal request {record['request_id']}]"
    assert clips[0].markers[0].name.startswith("door: a red door opening slowly [")  # one line, for every format
    # a shot with takes: the clip is the picked take's, and its marker says which
    stairs = run.manifest["shots"][2]
    assert stairs["take"] == 2 and clips[2].markers[0].metadata["shotflow"]["take"] == 2
    (picked,) = [t for t in stairs["takes"] if t["take"] == 2]
    assert clips[2].markers[0].metadata["shotflow"]["request_id"] == picked["request_id"]
    assert path_of(clips[2].media_reference.target_url).name.startswith(Path(picked["clip"]).stem + ".norm-")
    # the transitions: where the next clip starts, for the overlap's length, named by their effect
    transitions = [t for t in track if isinstance(t, otio.schema.Transition)]
    assert [(t.name, t.in_offset.value, t.out_offset.value) for t in transitions] == [
        (effect, 0, frames) for effect, frames in CUTS if frames
    ]
    assert [t.transition_type for t in transitions] == ["SMPTE_Dissolve", "Custom_Transition", "Custom_Transition"]
    assert [type(x).__name__ for x in track][-2:] == ["Clip", "Clip"]  # no transition for a cut
    # the sound: the same clips and cuts; it crossfades under a wipe and dips through silence under a fade
    assert [(c.name, c.source_range, c.media_reference.target_url) for c in sound.find_clips()] == [
        (c.name, c.source_range, c.media_reference.target_url) for c in clips
    ]
    assert not any(c.markers for c in sound.find_clips())
    assert [
        (t.name, t.transition_type, t.in_offset.value, t.out_offset.value) for t in sound if isinstance(t, otio.schema.Transition)
    ] == [
        ("crossfade", "SMPTE_Dissolve", 0, 12),
        ("crossfade", "SMPTE_Dissolve", 0, 6),
        ("dip", "Custom_Transition", 0, 24),
    ]
    assert sound.duration() == track.duration()


def test_fcpxml_keeps_the_clips_durations_files_and_marker_text_and_writes_each_overlap_as_a_cut(run):
    back = otio.adapters.read_from_file(str(run.video.with_name("film.fcpxml")), adapter_name="fcpx_xml")
    (track,) = [t for t in back.tracks if t.kind == "Video"]
    (sound,) = [t for t in back.tracks if t.kind == "Audio"]
    assert not list(back.find_children(descended_from_type=otio.schema.Transition))  # the documented loss
    clips = list(track.find_clips())
    assert [(c.name, c.source_range.duration, c.media_reference.target_url) for c in sound.find_clips()] == [
        (c.name, c.source_range.duration, c.media_reference.target_url) for c in clips
    ]
    assert [c.name for c in clips] == [s.id for s in run.plan.shots]
    tails = [f for _, f in CUTS] + [0]
    assert [c.source_range.duration.value for c in clips] == [s.seconds * FPS - t for s, t in zip(run.plan.shots, tails)]
    assert back.duration().value == frames_of(run.video)
    assert [str(path_of(c.media_reference.target_url)) for c in clips] == [s["normalised"]["path"] for s in run.manifest["shots"]]
    for clip, name in zip(clips, marker_names(run)):
        (marker,) = clip.markers
        assert marker.name == name
        assert dict(marker.metadata) == {}  # the marker's text only: its metadata is not kept


def test_the_edl_keeps_clips_durations_and_dissolves_and_turns_other_transitions_into_dissolves(run):
    text = run.video.with_name("film.edl").read_text()
    assert text.startswith("TITLE: Four doors\n")
    for record, name in zip(run.manifest["shots"], marker_names(run)):
        assert f"* LOC: 00:00:00:00 BLUE    {name.upper()}\n" in text  # markers: capitals, in comments
        assert record["normalised"]["path"] in text
    back = otio.adapters.read_from_file(str(run.video.with_name("film.edl")), adapter_name="cmx_3600", rate=FPS)
    (track,) = back.tracks
    clips = list(track.find_clips())
    assert [c.name for c in clips] == [s.id for s in run.plan.shots]
    tails = [f for _, f in CUTS] + [0]
    assert [c.source_range.duration.value for c in clips] == [s.seconds * FPS - t for s, t in zip(run.plan.shots, tails)]
    assert back.duration().value == frames_of(run.video)
    transitions = [t for t in track if isinstance(t, otio.schema.Transition)]
    # every overlap is there with its length, all of them as dissolves (the documented loss)
    assert [(t.transition_type, t.in_offset.value, t.out_offset.value) for t in transitions] == [
        ("SMPTE_Dissolve", 0, frames) for _, frames in CUTS if frames
    ]
    files = [str(path_of(c.media_reference.target_url)) for c in clips]
    normalised = [s["normalised"]["path"] for s in run.manifest["shots"]]
    # OpenTimelineIO's EDL reader gives a clip a dissolve leads into the file and the marker of the
    # clip before it (it reads the event's FROM lines; the file names both, FROM and TO)
    dissolved_into = {i + 1 for i, (_, frames) in enumerate(CUTS) if frames}
    assert files == [normalised[i - 1] if i in dissolved_into else normalised[i] for i in range(len(clips))]
    expected = [name.upper() for name in marker_names(run)]
    assert [[m.name for m in c.markers] for c in clips] == [
        [expected[i - 1], expected[i]] if i in dissolved_into else [expected[i]] for i in range(len(clips))
    ]


def test_export_writes_one_format_where_asked_and_warns_on_stderr(run, tmp_path):
    out = tmp_path / "cut.edl"
    r = shotflow("export", str(run.sb), "--format", "edl", "--out", str(out), "--video", str(run.video))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"shotflow: timeline: {out} (EDL: 5 clips, 3 transitions; picture only)"
    assert "shotflow: warning: " in r.stderr and "are dissolves of the same length" in r.stderr
    assert out.read_text() == run.video.with_name("film.edl").read_text()
    # the manifest names the run as well as the storyboard does; by default the timeline goes next to the video
    again = shotflow("export", str(run.video.with_name("film.manifest.json")), "--format", "otio")
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert (
        again.stdout.strip()
        == f"shotflow: timeline: {run.video.with_name('film.otio')} (OTIO: 5 clips, 3 transitions; picture and sound)"
    )


def test_run_export_on_an_up_to_date_storyboard_writes_the_timeline_without_rendering(run):
    otio_file = run.video.with_name("film.otio")
    otio_file.unlink()
    r = shotflow("run", str(run.sb), "--out", str(run.video), "--export", "otio", env=product_env(run.cache))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "is up to date" in r.stdout and "starting Prefect" not in r.stdout
    assert f"timeline:      {otio_file} (OTIO: 5 clips, 3 transitions; picture and sound)" in r.stdout
    assert otio.adapters.read_from_file(str(otio_file)).duration().value == frames_of(run.video)


def test_export_errors_say_what_to_do(run, tmp_path):
    never = tmp_path / "never.yaml"
    never.write_text(FILM)
    r = shotflow("export", str(never), "--format", "otio")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"{never}: nothing to export yet: no manifest at " in r.stderr and f"run it first (`shotflow run {never}`)" in r.stderr

    # a frame rate the format cannot hold is refused before anything is paid
    slow = tmp_path / "slow.yaml"
    slow.write_text(FILM.replace("fps: 24", "fps: 16"))
    r = shotflow("run", str(slow), "--export", "fcpxml", "--backend", "fal", env=product_env(tmp_path / "cache"))
    assert r.returncode == 1 and "starting Prefect" not in r.stdout
    assert "export format 'fcpxml': FCPXML timelines run at 24, 25, 30, 50, 60 fps, not 16 fps (output.fps)" in r.stderr

    # a normalised clip gone: the shot is named, and a re-run (up to date no more) makes it again without paying
    manifest = tmp_path / "gone.manifest.json"
    data = json.loads(json.dumps(run.manifest))
    data["shots"][2]["normalised"]["path"] = str(tmp_path / "gone.mp4")
    manifest.write_text(json.dumps(data))
    r = shotflow("export", str(manifest), "--format", "edl")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"shot 'stairs': its normalised clip {tmp_path / 'gone.mp4'} is gone" in r.stderr
    assert f"`shotflow run {run.sb}` makes it again from the stored clip without paying again" in r.stderr


def test_a_missing_normalised_clip_makes_the_video_not_up_to_date(run):
    from shotflow.report import uptodate

    plan = load_plan(run.sb, out=str(run.video))
    assert uptodate.check(plan, "fal", run.cache).up_to_date
    stairs = Path(run.manifest["shots"][2]["normalised"]["path"])
    kept = stairs.with_name(stairs.name + ".kept")
    stairs.rename(kept)
    try:
        verdict = uptodate.check(plan, "fal", run.cache)
        assert not verdict.up_to_date and verdict.reason.startswith("shot 'stairs': its normalised clip is gone")
    finally:
        kept.rename(stairs)


def test_timelines_are_made_from_the_manifest_alone(run):
    """The manifest records what a timeline needs: each shot's normalised clip and its frames, the cut into it."""
    shots = run.manifest["shots"]
    assert "cut_into" not in shots[0]
    assert [s["cut_into"] for s in shots[1:]] == [{"effect": e, "frames": f} for e, f in CUTS]
    assert all(s["normalised"]["frames"] == 5 * FPS for s in shots)
