"""The render-storyboard flow end to end: real fal_client against the fake queue, real ffmpeg,
Prefect in its embedded mode."""

from __future__ import annotations

import json
import os
import textwrap
import threading
import time
from pathlib import Path

import pytest
from fakefal import KEY
from shotflow.flows.render import render_storyboard
from waiting import wait_for

from shotflow.errors import BudgetError, MissingKeyError, ShotflowError
from shotflow.generation.fal.key import secret_parts
from shotflow.media.probe import probe
from shotflow.plan import load_plan

ALL_TEN = (Path(__file__).parent / "fixtures" / "ten-models.yaml").read_text()  # the ten models, shared with bench/bench_run.py


def write(tmp_path, text: str, name="sb.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_all_ten_models_in_one_storyboard_through_fal(tmp_path, fal_env, caplog):
    sb = write(tmp_path, ALL_TEN)
    out = tmp_path / "out" / "ten.mp4"
    plan = load_plan(sb)
    result = render_storyboard(storyboard=str(sb), backend="fal", out=str(out))

    info = probe(out)
    assert (info.width, info.height, info.fps) == (640, 360, 24.0)
    assert info.has_audio and info.audio_rate == 48000 and info.audio_channels == 2
    assert abs(info.duration - plan.final_seconds) < 1 / 24 + 1e-6
    assert plan.final_seconds == sum(s.seconds for s in plan.shots) - 9 * 0.5
    # every shot paid for exactly once
    assert sorted(fal_env.billed.values()) == [1] * 10
    assert set(fal_env.billed) == {s.body_hash for s in plan.shots}

    manifest = json.loads(out.with_name("ten.manifest.json").read_text())
    assert [s["id"] for s in manifest["shots"]] == [s.id for s in plan.shots]
    assert all(s["request_id"] and s["cache_hit"] is False for s in manifest["shots"])
    assert manifest["shots"][0]["body"] == plan.shots[0].body
    assert out.with_name("ten.contact.png").stat().st_size > 0
    # the 9 crossfades were rendered as clips landed: the join only did those touching the last one
    assert manifest["join"]["video_copied"] is True
    assert manifest["join"]["overlaps_rendered_after_last_clip"] <= 2
    assert result["video"] == str(out)
    assert KEY not in json.dumps(result) and KEY not in json.dumps(manifest)
    # the run logs show each shot's request id and its way through fal's queue
    logged = caplog.text
    for s in manifest["shots"]:
        assert f"shot '{s['id']}': submitted (fal request {s['request_id']})" in logged
    assert "queue position" in logged
    assert_no_key_in(Path(os.environ["PREFECT_HOME"]), tmp_path)

    # a re-run of the same storyboard costs nothing: every clip comes from the store
    again = render_storyboard(storyboard=str(sb), backend="fal", out=str(tmp_path / "again.mp4"))
    assert sorted(fal_env.billed.values()) == [1] * 10
    assert all(s["cache_hit"] for s in again["shots"])


def assert_no_key_in(*folders: Path) -> None:
    """Nothing Prefect or shotflow stored (logs, artifacts, parameters, results, the journal, the
    manifest) holds the key or either of its halves."""
    parts = [p.encode() for p in secret_parts(KEY)]
    assert len(parts) == 3  # the key, its id and its secret
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert not any(p in data for p in parts), path


def test_a_refused_shot_fails_the_run_keeps_the_others_and_a_rerun_redoes_only_it(tmp_path, fal_env):
    sb = write(
        tmp_path,
        """\
        version: 1
        output: {resolution: 360p}
        shots:
          - {id: calm, prompt: a quiet lake, model: kling}
          - {id: banned, prompt: something forbidden, model: pika-2.2, resolution: 720p}
          - {id: street, prompt: a busy street, model: hailuo-02}
        """,
    )
    fal_env.fault("job", outcome="refused", match="forbidden")
    with pytest.raises(ShotflowError) as info:
        render_storyboard(storyboard=str(sb), backend="fal", out=str(tmp_path / "a.mp4"))
    message = str(info.value)
    assert "1 of 3 shots failed" in message and "shot 'banned'" in message
    assert not (tmp_path / "a.mp4").exists()
    assert fal_env.count("submit") == 3
    plan = load_plan(sb)
    # a refusal is not retried: one submit of the banned body
    assert fal_env.submits[plan.shot("banned").body_hash] == 1
    assert KEY not in message and "fakesecret" not in message
    assert_no_key_in(Path(os.environ["PREFECT_HOME"]), tmp_path)  # a failed run's logs and artifacts too

    # the user rewrites the prompt; the two good shots come from the store
    sb.write_text(sb.read_text().replace("something forbidden", "a garden"))
    result = render_storyboard(storyboard=str(sb), backend="fal", out=str(tmp_path / "a.mp4"))
    assert fal_env.count("submit") == 4
    assert {s["id"]: s["cache_hit"] for s in result["shots"]} == {"calm": True, "banned": False, "street": True}
    assert probe(tmp_path / "a.mp4").duration == pytest.approx(5 + 5 + 6, abs=0.05)


def test_a_transient_error_is_retried_by_one_layer_only_without_paying_twice(tmp_path, fal_env, monkeypatch):
    sb = write(tmp_path, "version: 1\noutput: {resolution: 360p}\nshots:\n  - {id: a, prompt: p, model: veo2, duration: 5}\n")
    # a 503 on the result is the backend's loop's (SHOTFLOW_FAL_RETRIES=4: 5 fetches): the Prefect
    # task does not multiply them (shotflow.generation.retry), and a re-run collects it unpaid
    fal_env.fault("result", 503, times=6)
    with pytest.raises(ShotflowError, match="1 of 1 shots failed"):
        render_storyboard(storyboard=str(sb), backend="fal", out=str(tmp_path / "t.mp4"))
    assert fal_env.count("result", status=503) == 5
    result = render_storyboard(storyboard=str(sb), backend="fal", out=str(tmp_path / "t.mp4"))
    assert result["shots"][0]["status"] == "done" and fal_env.count("result", status=503) == 6
    assert sum(fal_env.billed.values()) == 1 and fal_env.count("submit") == 1
    # a request still running after the wait timeout is the task's: its retry re-attaches to it
    monkeypatch.setenv("SHOTFLOW_FAL_WAIT_TIMEOUT", "0.3")
    fal_env.hold()
    threading.Timer(1.0, fal_env.release).start()
    sb.write_text(sb.read_text().replace("prompt: p", "prompt: q"))
    result = render_storyboard(storyboard=str(sb), backend="fal", out=str(tmp_path / "t.mp4"))
    assert result["shots"][0]["status"] == "done" and fal_env.count("submit") == 2 and sum(fal_env.billed.values()) == 2


def test_budget_and_key_are_checked_before_anything_runs(tmp_path, fal_env, monkeypatch):
    sb = write(tmp_path, ALL_TEN)
    with pytest.raises(BudgetError, match=r"no known price for .*wan-pro \(shot .wan.\)"):
        render_storyboard(storyboard=str(sb), backend="fal", max_cost=100)
    priced = write(tmp_path, "version: 1\nshots:\n  - {id: a, prompt: p, model: veo3}\n", "priced.yaml")
    with pytest.raises(BudgetError, match=r"estimated \$3.20 is over the budget of \$1.00"):
        render_storyboard(storyboard=str(priced), backend="fal", max_cost=1)
    monkeypatch.delenv("FAL_KEY")
    with pytest.raises(MissingKeyError, match="--backend preview"):
        render_storyboard(storyboard=str(priced), backend="fal")
    assert fal_env.count("submit") == 0


def test_preview_backend_renders_the_same_flow_offline(tmp_path, fake_fal):
    sb = write(
        tmp_path,
        """\
        version: 1
        title: "{{ what }} preview"
        vars: {what: Harbour}
        output: {resolution: 360p, fps: 25, fit: crop, transition: {type: cut}}
        shots:
          - {id: wide, prompt: "{{ what }} at dawn", model: hailuo-02}
          - {id: tall, prompt: a lighthouse, model: veo3, aspect_ratio: "9:16", resolution: 720p, duration: 8}
        """,
    )
    out = tmp_path / "p.mp4"
    result = render_storyboard(storyboard=str(sb), out=str(out), vars={"what": "Dock"})
    assert result["backend"] == "preview"  # no key: the offline default
    info = probe(out)
    assert (info.width, info.height, info.fps) == (640, 360, 25.0)
    assert info.duration == pytest.approx(14, abs=0.05)
    manifest = json.loads(out.with_name("p.manifest.json").read_text())
    assert manifest["title"] == "Dock preview"
    assert manifest["shots"][0]["body"]["prompt"] == "Dock at dawn"
    assert fake_fal.count("submit") == 0


def test_the_key_can_come_from_a_prefect_secret_block(tmp_path, fal_env, monkeypatch):
    from prefect.blocks.system import Secret

    Secret(value=KEY).save("shotflow-test-fal-key", overwrite=True)
    monkeypatch.delenv("FAL_KEY")
    monkeypatch.setenv("SHOTFLOW_FAL_KEY_BLOCK", "shotflow-test-fal-key")
    sb = write(tmp_path, "version: 1\noutput: {resolution: 360p}\nshots:\n  - {id: a, prompt: p, model: kling}\n")
    try:
        result = render_storyboard(storyboard=str(sb), out=str(tmp_path / "s.mp4"))
    finally:
        Secret.delete("shotflow-test-fal-key")  # the one place the key may live: keep other tests' scans meaningful
    assert result["backend"] == "fal" and result["shots"][0]["request_id"]
    assert fal_env.count("submit") == 1


def test_requests_in_flight_are_bounded_per_run_and_per_model(tmp_path, fal_env):
    shots = "".join(f"  - {{id: s{i}, prompt: shot {i}, model: {'veo2' if i < 3 else 'kling'}, duration: 5}}\n" for i in range(6))
    sb = write(tmp_path, "version: 1\noutput: {resolution: 360p}\nshots:\n" + shots)
    fal_env.reset(queue_seconds=0.3, run_seconds=0.6)
    render_storyboard(storyboard=str(sb), backend="fal", out=str(tmp_path / "a.mp4"), concurrency=2)
    assert fal_env.max_in_flight == 2  # concurrent, yet never more than asked

    fal_env.reset(queue_seconds=0.3, run_seconds=0.6)
    sb.write_text(sb.read_text().replace("shot ", "take "))
    render_storyboard(
        storyboard=str(sb), backend="fal", out=str(tmp_path / "b.mp4"), concurrency=6, model_concurrency={"veo2": 1}
    )
    veo2 = [j for j in fal_env.jobs.values() if j.endpoint == "fal-ai/veo2"]
    spans = sorted((j.submitted_at, j.delivered_at) for j in veo2)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:])), "veo2 shots overlapped"
    assert fal_env.max_in_flight >= 3  # the kling shots ran alongside


def test_the_progress_artifact_and_the_assembly_bar_follow_each_shot_as_it_lands(tmp_path, fake_fal):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from shotflow.tasks.artifacts import artifact_key

    from shotflow.generation import events

    sb = write(
        tmp_path,
        """\
        version: 1
        title: Landing
        output: {resolution: 360p, fps: 24, transition: {type: cut}}
        shots:
          - {id: a, prompt: one, model: kling, duration: 5}
          - {id: b, prompt: two, model: veo2, duration: 5}
          - {id: c, prompt: three, model: hailuo-02, duration: 6}
        """,
    )
    seen: list[tuple[str, int, int, float | None]] = []

    def progress_now() -> float | None:
        key = artifact_key("Landing", "progress")
        with get_client(sync_client=True) as client:
            found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), limit=1)
        return float(found[0].data) if found else None

    def shown(done: int) -> float | None:
        """What the Prefect UI's bar reaches once `done` of 3 shots are ready. The update goes out
        from the artifact sender's thread while the flow goes on; the flow's thread waits here, so
        no later update replaces it meanwhile."""
        return wait_for(f"the progress artifact at {done} of 3", lambda: (v := progress_now()) == 100 * done / 3 and v, 30, 0.05)

    def watch(event) -> None:
        if isinstance(event, events.AssemblyEvent):
            seen.append((event.step, event.done, event.total, shown(event.done) if event.step == "clips normalised" else None))

    unsubscribe = events.subscribe(watch)
    try:
        result = render_storyboard(storyboard=str(sb), backend="preview", out=str(tmp_path / "l.mp4"))
    finally:
        unsubscribe()
    landed = [(done, value) for step, done, _, value in seen if step == "clips normalised"]
    assert [done for done, _ in landed] == [1, 2, 3]
    assert [round(value) for _, value in landed] == [33, 67, 100]  # the UI's bar moved with each shot
    assert [step for step, *_ in seen][3:] == ["joining", "contact sheet and manifest", "done"]
    assert all(total == 5 for _, _, total, _ in seen)
    manifest = json.loads((tmp_path / "l.manifest.json").read_text())
    assert manifest["timings"]["last_clip_to_final_s"] == result["last_clip_to_final_s"] >= 0
    # the claim "that clip's normalisation plus the join" can be checked: which clip, and its part
    assert manifest["timings"]["last_clip"] == result["last_clip"] in ("a", "b", "c")
    assert 0 <= manifest["timings"]["last_clip_normalise_s"] == result["last_clip_normalise_s"] <= result["last_clip_to_final_s"]


def test_the_artifact_sender_sends_in_order_off_the_flow_keeps_the_latest_progress_and_only_warns(monkeypatch):
    from shotflow.tasks import artifacts

    sent, warnings, gate = [], [], threading.Event()
    monkeypatch.setattr(artifacts, "advance_progress", lambda _id, done, total: sent.append(("progress", done)))
    sender = artifacts.Sender(warnings.append)
    sender.send(lambda: gate.wait(30) and sent.append("table"))  # a slow request holds the thread
    for done in (1, 2, 3):  # meanwhile three clips land: the bar goes to the last of them, once
        sender.progress("bar", done, 3)

    def broken():
        raise RuntimeError("server said 500")

    sender.send(broken)
    sender.send(lambda: sent.append("summary"))
    assert sent == []  # nothing waited for the sends
    gate.set()
    sender.close()
    assert sent == ["table", ("progress", 3), "summary"]
    assert warnings == ["a Prefect artifact was not sent (broken: RuntimeError: server said 500)"]
    late = artifacts.Sender(warnings.append)
    late.send(lambda: time.sleep(5))
    late.close(timeout=0.2)  # given up, and said: the run does not wait on a server that does not answer
    assert warnings[-1] == "1 Prefect artifact(s) were not sent within 0.2 s; given up"


def test_the_pictures_drawn_while_the_join_runs_land_after_it_and_an_earlier_videos_are_kept_with_it(tmp_path):
    """The contact sheet and the takes view are drawn while the join runs, under temporary names:
    a second, different video keeps the first with its own pictures (output.existing: keep), and
    the new pictures take their names only once the new video has landed."""
    board = """\
        version: 1
        title: Twice
        output: {resolution: 360p, fps: 24, transition: {type: cut}}
        shots:
          - {id: a, prompt: one, model: MODEL, duration: 5, takes: 2}
          - {id: b, prompt: two, model: veo2, duration: 5}
        """
    out = tmp_path / "out"
    render_storyboard(storyboard=str(write(tmp_path, board.replace("MODEL", "kling"))), backend="preview", out=str(out / "t.mp4"))
    first = {name: (out / f"t.{name}").read_bytes() for name in ("mp4", "contact.png", "takes.png")}
    render_storyboard(storyboard=str(write(tmp_path, board.replace("MODEL", "veo2"))), backend="preview", out=str(out / "t.mp4"))
    kept = sorted(p.name for p in out.iterdir() if p.name.startswith("t.2"))  # t.<the first video's time>.*
    assert len(kept) == 4 and sum(name.endswith(".mp4") for name in kept) == 1  # video, manifest, both pictures
    stamp = kept[0].split(".")[1]
    for name, data in first.items():
        assert (out / f"t.{stamp}.{name}").read_bytes() == data  # the earlier video's own, renamed with it
        assert (out / f"t.{name}").read_bytes() != data  # the new run's (the sheet labels the new model)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left
    # a join that fails leaves the pictures drawn meanwhile nowhere, and the last video's as they were
    from shotflow.flows import render

    def failing_join(*args, **kwargs):
        raise ShotflowError("the disk is full")

    now = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(render, "join_clips", failing_join)
        with pytest.raises(ShotflowError, match="the disk is full"):
            render_storyboard(
                storyboard=str(write(tmp_path, board.replace("MODEL", "kling"))), backend="preview", out=str(out / "t.mp4")
            )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == now


def test_the_tail_timings_name_the_clip_that_landed_last_and_its_normalisation():
    from shotflow.flows.render import _tail_timings

    timings = _tail_timings({"a": 10.0, "b": 14.0, "c": 12.0}, {"a": 11.0, "b": 15.5, "c": 16.0}, 16.25)
    # c was normalised last (it waited for an encoder), but b landed last: the figure starts there
    assert timings == {"last_clip": "b", "last_clip_normalise_s": 1.5, "last_clip_to_final_s": 2.25}
    assert _tail_timings({"a": 3.0}, {}, 4.0)["last_clip_normalise_s"] == 0  # not normalised by this run: none
    # clips in the store before the flow had them (an early start) count from then: b was
    # downloaded at 6.0, though the flow had it last; a, downloaded at 9.5, was the user's last wait
    early = _tail_timings({"a": 10.0, "b": 14.0}, {"a": 11.0, "b": 15.5}, 16.25, stored_at={"a": 9.5, "b": 6.0})
    assert early == {"last_clip": "a", "last_clip_normalise_s": 1.5, "last_clip_to_final_s": 6.75}
    # c came from the clip store (not downloaded): the flow had it last, but the figure is a's
    stored = _tail_timings({"a": 10.0, "c": 14.0}, {"a": 11.0, "c": 14.1}, 16.25, stored_at={"a": 9.5})
    assert stored["last_clip"] == "a" and stored["last_clip_to_final_s"] == 6.75


def test_the_contact_sheet_draws_frames_grabbed_as_clips_landed(tmp_path, fake_fal, monkeypatch):
    """Every clip is decoded once, in the background as it lands; the sheet after the final file only draws."""
    import threading

    from shotflow.assembly import contactsheet

    decoded = []
    real = contactsheet.middle_frame

    def middle_frame(path):
        decoded.append((Path(path).name, threading.current_thread().name))
        return real(path)

    monkeypatch.setattr(contactsheet, "middle_frame", middle_frame)
    shots = "".join(f"  - {{id: s{i}, prompt: 'sheet {i}', model: kling, duration: 5}}\n" for i in range(3))
    sb = write(tmp_path, "version: 1\ntitle: sheet\noutput: {resolution: 360p, transition: {type: cut}}\nshots:\n" + shots)
    result = render_storyboard(storyboard=str(sb), backend="preview", out=str(tmp_path / "s.mp4"))
    assert Path(result["contact_sheet"]).is_file()
    clips = {Path(s["clip"]).name for s in result["shots"]}
    assert sorted(name for name, _ in decoded) == sorted(clips)  # once each
    assert {thread for _, thread in decoded} == {"contact-frames_0"}  # none by the sheet itself
    # cuts: the soundtrack was encoded before the join, which copied it
    assert json.loads(Path(result["manifest"]).read_text())["join"]["audio_encoded_ahead"] is True


def test_media_refused_for_a_while_is_waited_out_and_nothing_is_paid_twice(tmp_path, fal_env):
    """Issue 9, case 13: with fal's media answering 403 for a while, a ten-shot run and its re-run
    paid every shot twice. Now a failed download keeps the paid request: retried, then re-attached."""
    shots = "".join(
        f"  - {{id: s{i}, prompt: 'media shot {i}', model: pika, resolution: 720p, duration: 5}}\n" for i in range(10)
    )
    sb = write(tmp_path, "version: 1\ntitle: cdn\noutput: {resolution: 360p}\nshots:\n" + shots)
    out = tmp_path / "out" / "cdn.mp4"
    plan = load_plan(sb)
    fal_env.fault("media", 403, for_seconds=3, times=10_000)
    try:
        render_storyboard(storyboard=str(sb), backend="fal", out=str(out))
    except ShotflowError as exc:  # whatever the task retries did not wait out, the re-run collects
        assert "without paying" in str(exc)
    assert fal_env.count("media", status=403) > 0  # the media host did refuse
    render_storyboard(storyboard=str(sb), backend="fal", out=str(out))
    assert fal_env.billed == {s.body_hash: 1 for s in plan.shots}
    assert abs(probe(out).duration - plan.final_seconds) < 0.1
