"""The one preflight: what would fail after paying is refused before, each problem naming its path."""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from shotflow.assembly.formats import OUTPUT_FORMATS
from shotflow.errors import StoryboardError
from shotflow.media.ffmpeg import ffmpeg_exe
from shotflow.plan import load_plan, plan_from_data
from shotflow.preflight import PreflightError, preflight, var_problem
from shotflow.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
WRITTEN = ", ".join(sorted(OUTPUT_FORMATS))  # the assembly's list is the preflight's
KEY = "fakekeyid-7f3a9c:fakesecret-Zq8wX2vLp0TnR4"

BOARD = """\
version: 1
title: Harbour
vars:
  topic: dawn
  folder: reels
output:
  path: OUTPUT
AUDIO
shots:
  - id: a
    prompt: "A drone shot of the harbour at {{ topic }}"
    model: kling
"""


def write_wav(path: Path, seconds: float = 0.2) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * int(8000 * seconds))
    return path


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A storyboard folder and a separate folder the run starts in."""
    monkeypatch.delenv("FAL_KEY", raising=False)
    boards = tmp_path / "boards"
    boards.mkdir()
    write_wav(boards / "music.wav")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    return boards, run_dir


def plan_of(boards: Path, output: str = "out/{{ topic }}.mp4", audio: str | None = "music.wav", **kw):
    text = BOARD.replace("OUTPUT", f'"{output}"').replace("AUDIO", f'  audio: {{path: "{audio}"}}' if audio else "")
    sb = boards / "sb.yaml"
    sb.write_text(text)
    return load_plan(sb, **kw)


def check(plan, run_dir: Path, **kw) -> list[str]:
    with pytest.raises(PreflightError) as info:
        preflight(plan, cwd=run_dir, settings=Settings(_env_file=None), **kw)
    assert isinstance(info.value, StoryboardError)
    return [str(p) for p in info.value.problems]


def test_a_good_plan_passes_and_resolves_the_output_against_the_run_folder(work):
    boards, run_dir = work
    out = preflight(plan_of(boards), cwd=run_dir, settings=Settings(_env_file=None))
    assert out == (run_dir / "out" / "dawn.mp4").resolve()
    assert not (run_dir / "out").exists(), "the probe leaves nothing behind"
    assert list(run_dir.iterdir()) == []


def test_the_probe_write_leaves_an_existing_folder_as_it_was(work):
    boards, run_dir = work
    (run_dir / "out").mkdir()
    preflight(plan_of(boards), cwd=run_dir, settings=Settings(_env_file=None))
    assert list((run_dir / "out").iterdir()) == []


# --- vars in paths ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, why",
    [
        ("../../x", "contains a path separator"),
        ("..", "contains '..'"),
        ("/etc", "contains a path separator"),
        ("~root", "starts with '~'"),
        ("a\\b", "contains a path separator"),
        ("a\0b", "contains a NUL character"),
    ],
)
def test_a_var_that_would_climb_out_of_the_output_folder_is_refused(work, value, why):
    boards, run_dir = work
    (msg,) = check(plan_of(boards, vars={"topic": value}), run_dir)
    assert msg.startswith(f"{boards / 'sb.yaml'}:7: var 'topic' = ")
    assert f"is used in output.path and {why}" in msg


def test_a_scheduled_style_var_in_out_is_refused_and_nothing_is_probed_where_it_points(work, monkeypatch):
    import shotflow.preflight as pf

    boards, run_dir = work

    def no_probe(*args, **kw):
        raise AssertionError("probed a path a refused var points to")

    monkeypatch.setattr(pf, "folder_problems", no_probe)
    (msg,) = check(plan_of(boards, out="videos/{{ topic }}.mp4", vars={"topic": "../../x"}), run_dir)
    assert "var 'topic' = '../../x' is used in --out and contains a path separator" in msg


def test_a_var_in_the_soundtrack_path_is_checked_too(work):
    boards, run_dir = work
    (boards / "x").mkdir()
    write_wav(boards / "x" / "y.wav")
    plan = plan_of(boards, audio="{{ folder }}.wav", vars={"folder": "x/y"})
    msgs = check(plan, run_dir)
    assert any("var 'folder' = 'x/y' is used in output.audio.path and contains a path separator" in m for m in msgs)


def test_plain_names_and_the_run_date_are_fine():
    for value in ("dawn", "2026-12-01", "harbour_at-dawn.v2", "a b"):
        assert var_problem(value) is None


# --- the output ---------------------------------------------------------------------------


def test_out_pointing_at_the_storyboard(work):
    boards, run_dir = work
    sb = boards / "sb.yaml"
    msgs = check(plan_of(boards, out=str(sb)), run_dir)
    assert f"{sb}: the output would overwrite the storyboard {sb}" in msgs
    assert any(m.startswith(f"{sb}: shotflow writes {WRITTEN} videos, not a '.yaml' file") for m in msgs)


def test_an_output_whose_sidecar_is_the_storyboard(work):
    boards, run_dir = work
    plan_of(boards)  # writes sb.yaml
    (boards / "sb.yaml").rename(boards / "film.manifest.json")
    plan = load_plan(boards / "film.manifest.json", out=str(boards / "film.mp4"))
    (msg,) = check(plan, run_dir)
    assert f"its manifest sidecar would overwrite the storyboard {boards / 'film.manifest.json'}" in msg


def test_out_pointing_at_the_soundtrack(work):
    boards, run_dir = work
    track = boards / "music.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "sine=d=0.2", "-c:a", "aac", str(track)], check=True, timeout=60
    )
    msgs = check(plan_of(boards, audio="music.mp4", out=str(track)), run_dir)
    assert f"{track}: the output would overwrite the soundtrack (an input) {track}" in msgs


def test_out_inside_the_clip_store(work, clip_store):
    boards, run_dir = work
    target = clip_store / "jobs" / "x.mp4"
    (msg,) = check(plan_of(boards, out=str(target)), run_dir)
    assert (
        msg
        == f"{target}: is inside shotflow's clip store and journal ({clip_store}, SHOTFLOW_CACHE_DIR): write the video elsewhere"
    )


def test_out_at_the_clip_store_through_a_relative_path(work, clip_store, monkeypatch):
    boards, run_dir = work
    monkeypatch.setenv("SHOTFLOW_CACHE_DIR", str(run_dir / "cache"))
    (msg,) = check(plan_of(boards, out="cache/../cache/clips/a.mp4"), run_dir)
    assert msg.startswith(f"{run_dir / 'cache' / 'clips' / 'a.mp4'}: is inside shotflow's clip store")


def test_out_at_a_folder(work):
    boards, run_dir = work
    folder = run_dir / "videos.mp4"
    folder.mkdir()
    (msg,) = check(plan_of(boards, out="videos.mp4"), run_dir)
    assert msg.startswith(f"{folder}: is a folder: give the output a file name")


@pytest.mark.parametrize(
    "name, said", [("v.txt", "not a '.txt' file"), ("v.mkv", "not a '.mkv' file"), ("v", "not a file without an extension")]
)
def test_out_with_an_extension_shotflow_does_not_write(work, name, said):
    boards, run_dir = work
    (msg,) = check(plan_of(boards, out=name), run_dir)
    assert msg == f"{run_dir / name}: shotflow writes {WRITTEN} videos, {said}: give the output one of these extensions"


@pytest.mark.parametrize("ext", sorted(OUTPUT_FORMATS) + [e.upper() for e in OUTPUT_FORMATS])
def test_every_extension_the_assembly_writes_is_accepted(work, ext):
    boards, run_dir = work
    preflight(plan_of(boards, out="v" + ext), cwd=run_dir, settings=Settings(_env_file=None))


def test_an_output_folder_under_a_file_cannot_be_created(work):
    boards, run_dir = work
    (run_dir / "taken").write_text("a file")
    (msg,) = check(plan_of(boards, out="taken/sub/v.mp4"), run_dir)
    assert (
        msg == f"{run_dir / 'taken' / 'sub'}: the output's folder cannot be created: {run_dir / 'taken'} is a file, not a folder"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_output_folder(work):
    boards, run_dir = work
    locked = run_dir / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        (msg,) = check(plan_of(boards, out="locked/v.mp4"), run_dir)
        assert msg.startswith(f"{locked}: cannot write into the output's folder (Permission denied")
        (msg,) = check(plan_of(boards, out="locked/new/v.mp4"), run_dir)
        assert msg.startswith(f"{locked / 'new'}: the output's folder cannot be created in {locked} (Permission denied")
    finally:
        locked.chmod(0o700)


def test_a_full_disk_is_found_by_the_probe_write(work, monkeypatch):
    import errno

    import shotflow.preflight as pf

    boards, run_dir = work
    (run_dir / "out").mkdir()

    def full(*args, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pf.tempfile, "NamedTemporaryFile", full)
    (msg,) = check(plan_of(boards), run_dir)
    assert msg == f"{run_dir / 'out'}: cannot write into the output's folder (No space left on device)"


def test_an_output_path_with_a_leading_tilde_or_nul(work):
    boards, run_dir = work
    (msg,) = check(plan_of(boards, out="~/v.mp4"), run_dir)
    assert "~/v.mp4: the output path starts with '~', which is not expanded" in msg
    (msg,) = check(plan_of(boards, out="v\0.mp4"), run_dir)
    assert msg == "v\\0.mp4: the output path contains a NUL character"


# --- input files --------------------------------------------------------------------------


def test_a_missing_soundtrack_is_refused_at_planning_with_its_resolved_path(work):
    boards, run_dir = work
    with pytest.raises(StoryboardError, match=f"output.audio.path: no such file {boards / 'gone.wav'}"):
        plan_of(boards, audio="gone.wav")


def test_a_soundtrack_that_went_missing_after_planning(work):
    boards, run_dir = work
    plan = plan_of(boards)
    (boards / "music.wav").unlink()
    (msg,) = check(plan, run_dir)
    assert msg == f"{boards / 'music.wav'}: output.audio.path: no such file"


def test_a_soundtrack_that_is_a_folder(work):
    boards, run_dir = work
    (boards / "tracks.wav").mkdir()
    plan = plan_of(boards, audio="music.wav")
    object.__setattr__(plan.output, "soundtrack", str(boards / "tracks.wav"))
    (msg,) = check(plan, run_dir)
    assert msg == f"{boards / 'tracks.wav'}: output.audio.path: is a folder, not an audio file"


def test_a_soundtrack_that_is_a_text_file(work):
    boards, run_dir = work
    (boards / "notes.mp3").write_text("not a soundtrack at all\n" * 20)
    (msg,) = check(plan_of(boards, audio="notes.mp3"), run_dir)
    assert msg.startswith(f"{boards / 'notes.mp3'}: output.audio.path: not a readable audio file")


def test_a_soundtrack_without_an_audio_stream(work):
    boards, run_dir = work
    silent = boards / "silent.mp4"
    subprocess.run(
        [
            ffmpeg_exe(),
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=c=black:s=64x64:d=0.2",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            str(silent),
        ],
        check=True,
        timeout=60,
    )
    (msg,) = check(plan_of(boards, audio="silent.mp4"), run_dir)
    assert msg == f"{silent}: output.audio.path: has no audio stream"


def test_a_video_with_sound_is_a_soundtrack(work):
    boards, run_dir = work
    track = boards / "music.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "sine=d=0.2", "-c:a", "aac", str(track)], check=True, timeout=60
    )
    preflight(plan_of(boards, audio="music.mp4"), cwd=run_dir, settings=Settings(_env_file=None))


# --- the key ------------------------------------------------------------------------------


def test_the_fal_backend_needs_a_well_shaped_key(work, monkeypatch):
    boards, run_dir = work
    plan = plan_of(boards)
    (msg,) = check(plan, run_dir, backend="fal")
    assert msg.startswith("no fal key: set FAL_KEY")
    monkeypatch.setenv("FAL_KEY", "fakekeyid7f3a9cfakesecretZq8wX2vLp0TnR4\n")
    (msg,) = check(plan, run_dir, backend="fal")
    assert msg.startswith("FAL_KEY is not a fal key: it has no ':'") and "fakesecret" not in msg
    monkeypatch.setenv("FAL_KEY", KEY + "\n")
    preflight(plan, cwd=run_dir, settings=Settings(_env_file=None), backend="fal")
    preflight(plan, cwd=run_dir, settings=Settings(_env_file=None), backend="preview")


def test_a_key_given_directly_wins(work):
    boards, run_dir = work
    (msg,) = check(plan_of(boards), run_dir, backend="fal", key="no-colon-here-at-all")
    assert "FAL_KEY is not a fal key" in msg and "no-colon" not in msg


# --- every problem at once ----------------------------------------------------------------


def test_every_problem_is_reported_at_once(work):
    boards, run_dir = work
    (boards / "notes.mp3").write_text("text")
    (run_dir / "v.txt").mkdir()
    msgs = check(plan_of(boards, audio="notes.mp3", out="v.txt"), run_dir, backend="fal")
    assert [m.split(": ")[0] for m in msgs] == [
        str(run_dir / "v.txt"),
        str(run_dir / "v.txt"),
        str(boards / "notes.mp3"),
        "no fal key",
    ]


def test_a_refused_var_is_the_one_problem_of_its_path(work):
    boards, run_dir = work
    msgs = check(plan_of(boards, out="{{ topic }}.txt", vars={"topic": "../up"}), run_dir)
    assert len(msgs) == 1 and "var 'topic' = '../up' is used in --out" in msgs[0]


# --- wired into the CLI -------------------------------------------------------------------


def test_shotflow_run_refuses_before_starting_prefect(work):
    boards, run_dir = work
    plan_of(boards)  # writes sb.yaml
    env = {k: v for k, v in os.environ.items() if k != "FAL_KEY"}
    args = ["run", str(boards / "sb.yaml"), "--backend", "preview", "--out", "v.txt"]
    # its own session: if the preflight ever let it through, the Prefect server it starts dies with it
    proc = subprocess.Popen(
        [sys.executable, "-m", "shotflow.cli", *args],
        cwd=run_dir,
        env={**env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    assert proc.returncode == 1, stderr
    assert f"{run_dir / 'v.txt'}: shotflow writes {WRITTEN} videos, not a '.txt' file" in stderr
    assert "Prefect" not in stdout and "Traceback" not in stderr


def test_an_empty_var_on_the_command_line_is_named_before_anything_starts(work, capsys):
    from shotflow.cli import main

    boards, run_dir = work
    plan_of(boards)
    assert main(["run", str(boards / "sb.yaml"), "--backend", "preview", "--var", "topic="]) == 1
    err = capsys.readouterr().err
    assert f"{boards / 'sb.yaml'}:4: var 'topic': the value given for this run is empty" in err
    assert "Traceback" not in err and "ValidationError" not in err


# --- wired into the flow: nothing is submitted to fal for a run that cannot finish ---------


def test_the_flow_refuses_before_submitting_anything(work, fake_fal, monkeypatch):
    from shotflow.flows.render import render_storyboard

    boards, run_dir = work
    monkeypatch.setenv("FAL_KEY", KEY)
    monkeypatch.setenv("SHOTFLOW_MEDIA_HOSTS", "127.0.0.1")
    plan_of(boards)
    (boards / "notes.mp3").write_text("not audio")
    sb = boards / "sb.yaml"
    sb.write_text(sb.read_text().replace("music.wav", "notes.mp3"))
    with pytest.raises(PreflightError) as info:
        render_storyboard(storyboard=str(sb), backend="fal", out=str(run_dir / "v.txt"))
    msgs = [str(p) for p in info.value.problems]
    assert msgs[0].startswith(f"{run_dir / 'v.txt'}: shotflow writes {WRITTEN} videos")
    assert msgs[1].startswith(f"{boards / 'notes.mp3'}: output.audio.path: not a readable audio file")
    assert sum(fake_fal.submits.values()) == 0 and fake_fal.count("submit") == 0


# --- the daily budget ---------------------------------------------------------------------


def spent_today(cache: Path, usd: str) -> None:
    from shotflow.store.journal import JobRecord, Journal, now

    journal = Journal.in_cache(cache)
    stamp = now()
    journal.write(
        JobRecord(
            key="other",
            shot="x",
            endpoint="fal-ai/veo3",
            body_hash="h",
            state="downloaded",
            request_id="r1",
            submitted_at=stamp,
            finished_at=stamp,
            estimated_cost_usd=usd,
        )
    )


def test_a_run_that_would_pass_the_daily_budget_stops_before_paying(work, clip_store, monkeypatch):
    boards, run_dir = work
    monkeypatch.setenv("FAL_KEY", KEY)
    monkeypatch.setenv("SHOTFLOW_DAILY_BUDGET", "5")
    spent_today(clip_store, "4.00")
    plan = plan_of(boards)  # one kling shot of 5 s: $1.40
    (msg,) = check(plan, run_dir, backend="fal")
    assert msg == (
        "SHOTFLOW_DAILY_BUDGET: the run may pay $1.40 for 1 new clip(s) (a); today's estimated spend (UTC) is $4.00, "
        "so it would pass the daily budget of $5.00 (see `shotflow ledger`): nothing was sent"
    )
    preflight(plan, cwd=run_dir, settings=Settings(_env_file=None), backend="preview")  # a preview pays nothing

    monkeypatch.setenv("SHOTFLOW_DAILY_BUDGET", "5.40")
    preflight(plan, cwd=run_dir, settings=Settings(_env_file=None), backend="fal")


def test_clips_in_the_store_cost_nothing_but_a_forced_shot_does(work, clip_store, monkeypatch):
    from shotflow.store.clips import ClipStore

    boards, run_dir = work
    monkeypatch.setenv("FAL_KEY", KEY)
    monkeypatch.setenv("SHOTFLOW_DAILY_BUDGET", "1")
    plan = plan_of(boards)
    store = ClipStore(clip_store)
    store.path(ClipStore.key("fal", plan.shots[0])).write_bytes(b"stored")
    preflight(plan, cwd=run_dir, settings=Settings(_env_file=None), backend="fal")
    (msg,) = check(plan, run_dir, backend="fal", force=["a"])
    assert "may pay $1.40 for 1 new clip(s) (a)" in msg


def test_an_unpriced_shot_cannot_be_held_to_a_daily_budget(work, monkeypatch):
    boards, run_dir = work
    monkeypatch.setenv("FAL_KEY", KEY)
    monkeypatch.setenv("SHOTFLOW_DAILY_BUDGET", "100")
    sb = boards / "sb.yaml"
    plan_of(boards)
    sb.write_text(sb.read_text().replace("model: kling", "model: veo2"))
    (msg,) = check(load_plan(sb), run_dir, backend="fal")
    assert msg.startswith(
        "SHOTFLOW_DAILY_BUDGET: no known price for shot(s) a, so the run cannot be held to the daily budget of $100.00"
    )


# --- paths: one rule ------------------------------------------------------------------------


def test_inputs_resolve_against_the_storyboard_and_outputs_against_the_run_folder(work, monkeypatch):
    boards, run_dir = work
    monkeypatch.chdir(run_dir)  # the run starts here; the storyboard lives in boards/
    plan = plan_of(boards, output="films/{{ topic }}.mp4", audio="music.wav")
    assert plan.output.soundtrack == str(boards / "music.wav")
    settings = Settings(_env_file=None)
    assert preflight(plan, settings=settings) == run_dir.resolve() / "films" / "dawn.mp4"
    assert preflight(plan_of(boards, out="cuts/final.mov"), settings=settings) == run_dir.resolve() / "cuts" / "final.mov"
    assert preflight(plan_of(boards, output="/tmp/abs.mp4"), settings=settings) == Path("/tmp/abs.mp4").resolve()


def test_an_inline_storyboard_has_no_folder_so_its_inputs_resolve_against_the_run_folder(work, monkeypatch):
    boards, run_dir = work
    monkeypatch.chdir(run_dir)
    write_wav(run_dir / "music.wav")
    data = {
        "version": 1,
        "output": {"path": "v.mp4", "audio": {"path": "music.wav"}},
        "shots": [{"id": "a", "prompt": "p", "model": "kling"}],
    }
    plan = plan_from_data(data)
    assert plan.output.soundtrack == str(run_dir / "music.wav")
    assert preflight(plan, settings=Settings(_env_file=None)) == run_dir.resolve() / "v.mp4"


def test_a_problem_with_a_relative_output_names_the_resolved_path(work):
    boards, run_dir = work
    (run_dir / "taken.mp4").mkdir()
    (msg,) = check(plan_of(boards, out="taken.mp4"), run_dir)
    assert msg.startswith(f"{run_dir.resolve() / 'taken.mp4'}: is a folder")


# --- what --force makes again -------------------------------------------------------------------

# a and b make the same request (one clip in the store); d and e too, once a's clip exists
TWINS = """\
version: 1
title: Twins
output: {resolution: 360p, transition: {type: cut}}
shots:
  - {id: a, prompt: a red door, model: kling, duration: 5}
  - {id: b, prompt: a red door, model: kling, duration: 5}
  - {id: c, from: b, prompt: the door opens, model: kling, duration: 5}
  - {id: d, from: a, prompt: the door shuts, model: kling, duration: 5}
  - {id: e, from: a, prompt: the door shuts, model: kling, duration: 5}
  - {id: f, from: e, prompt: an empty hall, model: kling, duration: 5}
"""


def test_forcing_a_shot_makes_again_what_continues_a_shot_sharing_its_clip(tmp_path, clip_store, monkeypatch):
    from shotflow.spend import made_again, made_again_line
    from shotflow.store.clips import ClipStore

    monkeypatch.delenv("FAL_KEY", raising=False)
    board = tmp_path / "twins.yaml"
    board.write_text(TWINS)
    plan = load_plan(board)
    settings = Settings(_env_file=None)
    # forcing a replaces b's clip too (the store keeps one per request): c starts from the new one
    assert [s.id for s in made_again(plan, ["a"], settings)] == ["c", "d", "e", "f"]
    assert [s.id for s in made_again(plan, ["b"], settings)] == ["c", "d", "e", "f"]
    line = made_again_line(plan, ["a"], settings)
    assert line.startswith(
        "--force a also generates again the shots that continue it (from:), or continue b (the same request: one clip): c ("
    )
    assert line.endswith("; shots of other storyboards that continue this clip are made again, and paid for, on their next run")
    # d and e make the same request once a's clip exists (the same first frame): forcing d replaces e's clip
    assert made_again(plan, ["d"], settings) == ()  # no clip of a yet: neither is known, nothing shared
    raw = tmp_path / "a.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=160x90:r=24:d=1", str(raw)],
        check=True, timeout=60,
    )  # fmt: skip
    ClipStore(clip_store).put(ClipStore.key("fal", plan.shot("a")), raw)
    assert [s.id for s in made_again(plan, ["d"], settings)] == ["f"]
    with pytest.raises(PreflightError) as info:
        preflight(plan, backend="fal", key=KEY, settings=settings, cwd=tmp_path, force=["d"])
    assert "--force d also generates again the shots that continue it (from:), or continue e" in str(info.value)
    assert "--force-descendants" in str(info.value)
    preflight(plan, backend="fal", key=KEY, settings=settings, cwd=tmp_path, force=["d"], force_descendants=True)


def test_the_preflight_checks_forced_ids_and_max_cost_first_and_asks_consent_last(tmp_path, clip_store, monkeypatch):
    from decimal import Decimal

    from shotflow.errors import BudgetError, ShotflowError
    from shotflow.spend import made_again_line

    monkeypatch.delenv("FAL_KEY", raising=False)
    board = tmp_path / "twins.yaml"
    board.write_text(TWINS)
    plan = load_plan(board)
    settings = Settings(_env_file=None)
    asked: list[str] = []

    def no(line: str) -> bool:
        asked.append(line)
        return False

    run = dict(backend="fal", key=KEY, cwd=tmp_path, force_descendants=no)
    with pytest.raises(ShotflowError, match=r"no shot 'zz' \(shots: a, b, c, d, e, f\)"):
        preflight(plan, settings=settings, force=["zz"], **run)
    with pytest.raises(BudgetError, match=r"cannot hold the run to \$1.00: no known price"):
        preflight(plan, settings=settings, max_cost=1, force=["a"], **run)
    # another problem (today's budget, worded by money.usd): refused without asking anybody
    with pytest.raises(PreflightError) as info:
        preflight(plan, settings=settings.model_copy(update={"daily_budget": Decimal("0.005")}), force=["a"], **run)
    assert "cannot be held to the daily budget of $0.005: nothing was sent" in str(info.value)
    assert asked == []
    # nothing else stops the run: asked once, with the shots it pays for again; "no" refuses
    with pytest.raises(PreflightError, match="--force-descendants"):
        preflight(plan, settings=settings, force=["a"], **run)
    assert asked == [made_again_line(plan, ["a"], settings)]
    preflight(plan, settings=settings, force=["a"], **(run | {"force_descendants": lambda line: True}))
