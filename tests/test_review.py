"""The review gates (issue 13): what each gate asks and what an answer does (shotflow/review.py,
shotflow/picking.py), and the gates in Prefect (flows/review.py) against a real `prefect server`
on 127.0.0.1 and the fake fal server: the run pauses before paying, is resumed through Prefect's
REST API with typed input, pays for every take once, pauses for the picks of each level of
`from:`, and cuts the picked takes into the video (each fake job's clip has a colour of its own,
so a frame tells which take it is). A gate nobody answers ends the run without paying; a deployment's run is suspended
(its worker freed) and re-executed after each answer without paying again or asking again.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
import waiting
from fakefal import product_env
from PIL import Image
from waiting import prefect_server, stop_group, tail, wait_for

from shotflow.errors import ShotflowError
from shotflow.picking import ANOTHER, NEW_PROMPT, PickAnswer, apply_picks, frame_uri, levels, pick_question
from shotflow.picks import Picks, load_picks
from shotflow.plan import plan_from_text
from shotflow.review import AnswerRefused, Approval, ReviewCancelled, approval_question, approve, same_run

ROOT = Path(__file__).resolve().parents[1]

# two levels of from: (boats -> quay); storm is skipped at gate 1. pika and seedance take a seed, so
# every take has its own body: the fake server's bills per body show each take paid once
STORYBOARD = """\
version: 1
title: Harbour review
review: true
output: {resolution: 360p, transition: {type: cut}}
defaults: {takes: 2, resolution: 720p}
shots:
  - {id: boats, prompt: boats leave the harbour at dawn, model: pika, duration: 5}
  - {id: gulls, prompt: gulls over the harbour wall, model: pika, duration: 5}
  - {id: quay, from: boats, prompt: the quay empties as the boats go, model: seedance, duration: 5, resolution: 480p}
  - {id: storm, prompt: a storm rolls in, model: pika, duration: 5, takes: 1}
"""


def plan_of(text: str = STORYBOARD, picks: Picks | None = None):
    return plan_from_text(text, picks=picks or Picks(""))


def picked(picks: Picks) -> dict[str, int]:
    return {shot: pick.take for shot, pick in picks.picked.items()}


# --- what the gates ask and what answers do (no Prefect) --------------------------------------


def test_gate_1_shows_every_take_and_its_price_and_skipping_a_shot_skips_what_continues_it():
    plan = plan_of()
    question = approval_question(plan, 5, "fal")
    text = question.markdown()
    assert "| **boats** | pika-2.2 | 5 | 2 | $0.20 | $0.40 |  |" in text
    assert "| **quay** | seedance-1.0-pro | 5 | 2 | $0.12 | $0.24 | boats |" in text
    assert "4 shots, 7 generations, estimated $1.24; budget $5.00." in text
    assert question.markdown(heading=False).startswith("**Harbour review**: 4 shots")  # the form's text: the table first
    fields = {f.name: f for f in question.fields}
    assert fields["skip"].choices == ("boats", "gulls", "quay", "storm") and fields["max_cost"].default == 5.0
    assert question.answer({}) == Approval(True, (), Decimal(5))

    kept, budget = approve(plan, question.answer({"skip": ["boats"], "max_cost": None}), "preview")
    assert [(s.id, s.index) for s in kept.shots] == [("gulls", 0), ("storm", 1)]  # quay starts from boats: skipped too
    assert {g.id for g in kept.generations} == {"gulls", "storm"} and budget == Decimal(5)  # an empty field keeps it
    with pytest.raises(ReviewCancelled, match="nothing was paid"):
        approve(plan, question.answer({"approve": False}), "fal")
    with pytest.raises(AnswerRefused, match="no shot 'sea'"):
        approve(plan, Approval(skip=("sea",)), "fal")
    with pytest.raises(AnswerRefused, match="every shot"):
        approve(plan, Approval(skip=("boats", "gulls", "storm")), "fal")
    assert approve(plan, Approval(skip=("quay",)), "fal")[0].known_cost == Decimal("1.00")
    with pytest.raises(AnswerRefused, match=r"over the budget of \$0.50: skip shots, or leave the budget as the run set it"):
        approve(plan, Approval(skip=("quay",), max_cost=Decimal("0.5")), "fal")
    assert approve(plan, Approval(skip=("quay", "storm"), max_cost=Decimal("0.8")), "fal")[0].known_cost == Decimal("0.8")
    # the review lowers the run's budget, never raises it; an empty field keeps it
    with pytest.raises(AnswerRefused, match=r"\$1000.00 is over the run's budget of \$5.00"):
        question.answer({"max_cost": 1000})
    assert question.answer({"max_cost": None}).max_cost == Decimal(5)
    assert question.answer({"max_cost": 2}).max_cost == Decimal(2)
    assert approval_question(plan, None, "fal").answer({"max_cost": 1000}).max_cost == Decimal(1000)  # none set: any


def test_a_plan_planned_again_after_another_take_stays_reviewed_as_the_run_asked():
    plan = plan_of(STORYBOARD.replace("review: true\n", ""))
    asked = dataclasses.replace(plan, review=True, review_timeout=120)  # shotflow run --review
    again = same_run(plan_of(STORYBOARD.replace("review: true\n", "")), asked)
    assert again.review and again.review_timeout == 120


def test_a_skipped_shot_leaves_the_other_cuts_as_written_and_a_plain_cut_where_an_overlap_no_longer_fits():
    text = """\
version: 1
output: {resolution: 720p, transition: {type: cut}}
shots:
  - {id: z, prompt: a pier, model: kling, duration: 5}
  - {id: a, prompt: a boat, model: kling, duration: 5, transition: {type: crossfade, seconds: 3}}
  - {id: b, prompt: a bay, model: kling, duration: 10}
  - {id: c, prompt: a cliff, model: kling, duration: 10, transition: {type: crossfade, seconds: 3}}
  - {id: d, prompt: a cave, model: kling, duration: 10, transition: {type: fade, seconds: 2}}
"""
    plan = plan_of(text)
    fade = plan.output.cut_into(4)
    kept, _ = approve(plan, Approval(skip=("b",)), "fal")
    assert [(s.id, s.index) for s in kept.shots] == [("z", 0), ("a", 1), ("c", 2), ("d", 3)]
    # a would hold 3 s of overlap at each end of its 5 s: the cut into c becomes a plain cut
    assert [(c.effect, c.seconds) for c in kept.output.cuts] == [("crossfade", 3.0), ("cut", 0.0), (fade.effect, 2.0)]
    assert kept.final_seconds == 5 + 5 + 10 + 10 - 3 - 2


def test_gate_2_comes_once_per_level_and_another_take_is_numbered_saved_and_asked_about_again(tmp_path):
    plan = plan_of()
    assert levels(plan) == (("boats", "gulls", "storm"), ("quay",))
    clips = {(s.id, s.take): f"/clips/{s.label}.mp4" for s in plan.all_takes if s.id in ("boats", "gulls", "storm")}
    question = pick_question(plan, 1, levels(plan)[0], clips, of_levels=2)
    fields = {f.name: f for f in question.fields}
    assert fields["boats"].choices == (1, 2) and fields["boats"].default == 1
    assert "storm" not in fields, "one take: nothing to pick"
    assert fields[ANOTHER].choices == ("boats", "gulls", "storm") and fields[NEW_PROMPT].kind == "text"
    text = question.markdown({"/clips/boats take 2.mp4": "data:image/jpeg;base64,AAAA"})
    assert "| **boats** (picked: 1) | take 1 | ![boats take 2](data:image/jpeg;base64,AAAA) |" in text
    assert "level 1 of 2" in text

    answer = question.answer({"boats": 2, "gulls": 1, ANOTHER: ["gulls"], NEW_PROMPT: "  gulls at dusk "})
    assert answer == PickAnswer({"boats": 2, "gulls": 1}, ("gulls",), {"gulls": "gulls at dusk"})
    with pytest.raises(AnswerRefused, match="new prompt: name exactly one shot"):
        question.answer({ANOTHER: ["gulls", "boats"], NEW_PROMPT: "at dusk"})
    outcome = apply_picks(plan, Picks(str(tmp_path / "p.yaml")), question, answer, None, "fal")
    assert outcome.picked == {"boats": 2, "storm": 1} and outcome.rerolls == (("gulls", 3, "gulls at dusk"),)
    assert picked(outcome.picks) == {"boats": 2, "storm": 1} and outcome.picks.extra["gulls"][0].take == 3
    # for this version of each shot (an edited shot is another shot: its picks do not carry over)
    assert outcome.picks.picked["boats"].applies(plan.shot("boats").request)
    assert not outcome.picks.picked["boats"].applies(plan.shot("gulls").request)

    # planned again with the new take, for this run's shots: the question is new, so is its key
    again = same_run(plan_of(picks=outcome.picks), plan)
    assert [t.take for t in again.takes_of("gulls")] == [1, 2, 3]
    assert again.takes_of("gulls")[2].body["prompt"] == "gulls at dusk"
    clips[("gulls", 3)] = "/clips/gulls take 3.mp4"
    asked = pick_question(again, 1, levels(again)[0], clips, of_levels=2)
    assert asked.key != question.key and asked.key.startswith("pick-level-1-")
    assert pick_question(plan, 1, levels(plan)[0], clips, of_levels=2).key == question.key  # stable for one plan
    assert {f.name: f for f in asked.fields}["boats"].default == 2  # the pick made at the last round

    with pytest.raises(AnswerRefused, match="take 3 cannot be picked"):
        apply_picks(plan, Picks(""), question, PickAnswer({"boats": 3}), None, "fal")
    with pytest.raises(AnswerRefused, match="no shot 'quay' at this gate"):
        apply_picks(plan, Picks(""), question, PickAnswer({"quay": 1}), None, "fal")
    # the budget holds another take too
    with pytest.raises(AnswerRefused, match=r"another take of gulls: the run would cost \$1.44, over the budget of \$1.30"):
        apply_picks(plan, Picks(""), question, PickAnswer(another=("gulls",)), Decimal("1.3"), "fal")
    # a failed take is shown, and not offered; a shot without any take made cannot be asked about
    failed = pick_question(plan, 1, ("boats",), {("boats", 2): "/b2.mp4"}, {("boats", 1): "refused by fal"})
    assert "boats" not in {f.name for f in failed.fields} and "failed: refused by fal" in failed.markdown()
    with pytest.raises(ShotflowError, match="shot 'boats': no take to pick from"):
        pick_question(plan, 1, ("boats",), {}, {("boats", 1): "refused", ("boats", 2): "refused"})


def test_a_take_is_shown_as_a_small_jpeg_data_uri(fake_fal):
    uri = frame_uri(fake_fal.clip(1, "0xff0000"))  # a 32x18 clip
    assert uri.startswith("data:image/jpeg;base64,") and len(uri) < 20_000
    image = Image.open(io.BytesIO(base64.b64decode(uri.partition(",")[2])))
    assert image.size == (320, 180) and image.getpixel((160, 90))[0] > 200  # red, 320 px wide like every take
    assert frame_uri("/nonexistent.mp4") is None


# --- the gates in Prefect -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with prefect_server(tmp_path_factory.mktemp("prefect-home")) as srv:
        yield srv


@pytest.fixture
def fal_env(fal_env):
    fal_env.distinct_clips = True  # every job's clip a colour of its own: a frame tells which take it is
    return fal_env


def call(server, method: str, path: str, **kw):
    return waiting.api(method, f"{server.api_url}{path}", **kw).json()


def flow_in_thread(server, **parameters):
    """The render flow in a thread of this process (so it reaches the fake fal server), reporting to `server`."""
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from shotflow.flows.render import render_storyboard

    box: dict = {}

    def run():
        try:
            with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
                box["state"] = render_storyboard(**parameters, return_state=True)
        except BaseException as exc:  # the test reports it
            box["error"] = exc

    thread = threading.Thread(target=run, name="review-flow", daemon=True)
    thread.start()
    return thread, box


def paused(server, key_prefix: str, box: dict | None = None, run_id: str | None = None, timeout: float = 180, log=None) -> dict:
    """The paused run (`run_id`, else the only one), once it waits at a gate whose key starts with
    `key_prefix`; fails at once if the flow in `box` ended."""

    def found():
        if box:
            pytest.fail(f"the flow ended instead of waiting at '{key_prefix}': {box}")
        filters: dict = {"state": {"type": {"any_": ["PAUSED"]}}}
        if run_id:
            filters["id"] = {"any_": [run_id]}
        runs = call(server, "POST", "/flow_runs/filter", json={"flow_runs": filters})
        waiting_ = [r for r in runs if (r["state"]["state_details"]["pause_key"] or "").startswith(key_prefix)]
        return waiting_[0] if waiting_ and asks(waiting_[0]) else None

    def asks(run: dict) -> bool:
        # Prefect saves the gate's form just after the run turns Paused: answered before that, the
        # server rejects the answer (no form to check it against)
        keys = run["state"]["state_details"].get("run_input_keyset") or {}
        if not keys.get("schema"):
            return False
        return httpx.get(f"{server.api_url}/flow_runs/{run['id']}/input/{keys['schema']}", timeout=30).status_code == 200

    return wait_for(f"a run paused at '{key_prefix}'", found, timeout, diagnostics=lambda: tail(log) if log else "")


def form(server, run: dict) -> tuple[dict, str]:
    """The gate's form (its JSON schema) and the markdown shown above it."""
    keys = run["state"]["state_details"]["run_input_keyset"]
    schema = call(server, "GET", f"/flow_runs/{run['id']}/input/{keys['schema']}")
    return schema, call(server, "GET", f"/flow_runs/{run['id']}/input/{keys['description']}")


def resume(server, run: dict, values: dict) -> dict:
    """What the UI's Resume form posts; the server checks the values against the form."""
    return call(server, "POST", f"/flow_runs/{run['id']}/resume", json={"run_input": values})


def colour(clip, at: float) -> np.ndarray:
    """The mean RGB of the frame at `at` seconds."""
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= at:
                return frame.to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0)
    raise AssertionError(f"{clip} has no frame at {at} s")


def test_a_reviewed_run_pauses_before_paying_pays_each_take_once_and_cuts_the_picked_takes(server, fal_env, clip_store, tmp_path):
    board = tmp_path / "harbour.yaml"
    board.write_text(STORYBOARD)
    out = tmp_path / "harbour.mp4"
    thread, box = flow_in_thread(server, storyboard=str(board), backend="fal", out=str(out), max_cost=3)
    try:
        gate = paused(server, "approve-plan", box)
        assert not fal_env.jobs, "nothing is sent before the plan is approved"
        schema, text = form(server, gate)
        props = schema["properties"]
        assert props["skip"]["items"]["enum"] == ["boats", "gulls", "quay", "storm"] and props["approve"]["type"] == "boolean"
        assert props["max_cost"]["default"] == 3.0
        assert "| **storm** | pika-2.2 | 5 | 1 | $0.20 | $0.20 |  |" in text
        refused = resume(server, gate, {"skip": ["sea"]})  # not a shot: the server refuses it, the run waits on
        assert refused["status"] == "REJECT" and "'sea' is not one of" in refused["details"]["reason"]
        assert resume(server, gate, {"approve": True, "skip": ["storm"], "max_cost": 2.5})["status"] == "ACCEPT"

        gate = paused(server, "pick-level-1-", box)
        plan = plan_of(STORYBOARD)
        bodies = {s.label: s.body for s in plan.all_takes}
        sent = fal_env.bodies()
        assert sorted(b["prompt"] for b in sent) == sorted(
            [bodies["boats take 1"]["prompt"]] * 2 + [bodies["gulls take 1"]["prompt"]] * 2
        )
        assert set(fal_env.billed.values()) == {1}, "each take paid once"
        schema, text = form(server, gate)
        assert schema["properties"]["boats"]["enum"] == [1, 2] and schema["properties"][ANOTHER]["items"]["enum"] == [
            "boats",
            "gulls",
        ]
        assert text.count("](data:image/jpeg;base64,") == 4, "a frame of every take"
        # another take of gulls, with an edited prompt: bought, saved, then asked about again
        assert resume(server, gate, {"boats": 2, ANOTHER: ["gulls"], NEW_PROMPT: "gulls at dusk"})["status"] == "ACCEPT"
        again = paused(server, "pick-level-1-", box)
        while again["state"]["state_details"]["pause_key"] == gate["state"]["state_details"]["pause_key"]:
            again = paused(server, "pick-level-1-", box)
        schema, text = form(server, again)
        assert schema["properties"]["gulls"]["enum"] == [1, 2, 3] and schema["properties"]["boats"]["default"] == 2
        assert [b["prompt"] for b in fal_env.bodies()].count("gulls at dusk") == 1
        picks = load_picks(board.with_name("harbour.picks.yaml"))
        assert picks.extra["gulls"][0].prompt == "gulls at dusk" and picked(picks)["boats"] == 2
        assert resume(server, again, {"boats": 2, "gulls": 3})["status"] == "ACCEPT"

        gate = paused(server, "pick-level-2-", box)
        schema, _ = form(server, gate)
        assert set(schema["properties"]) == {"quay", ANOTHER, NEW_PROMPT}
        assert resume(server, gate, {"quay": 2})["status"] == "ACCEPT"
        thread.join(240)
    finally:
        thread.join(0)
    assert "error" not in box, box.get("error")
    state = box["state"]
    assert state.is_completed(), state
    result = state.result()
    assert [(s["id"]) for s in result["shots"]] == ["boats", "gulls", "quay"]
    assert set(fal_env.billed.values()) == {1} and len(fal_env.billed) == 7  # 2 + 3 + 2 takes, storm never
    assert picked(load_picks(board.with_name("harbour.picks.yaml"))) == {"boats": 2, "gulls": 3, "quay": 2}
    assert_cut_from(out, Path(result["manifest"]), {"boats": 2, "gulls": 3, "quay": 2})


def assert_cut_from(video: Path, manifest: Path, picks: dict[str, int]) -> None:
    """The video's shots are the picked takes: each 5 s shot's middle frame has the colour of its
    picked take's clip, and is nearer it than any other take's."""
    for i, shot in enumerate(json.loads(manifest.read_text())["shots"]):
        takes = {t["take"]: t["clip"] for t in shot["takes"]}
        seen = colour(video, 5 * i + 2.5)
        distance = {take: np.abs(colour(clip, 2.5) - seen).sum() for take, clip in takes.items()}
        picked = picks[shot["id"]]
        assert min(distance, key=distance.get) == picked and distance[picked] < 30, (shot["id"], distance)


@pytest.mark.slow  # the shortest timeout a storyboard may set is 60 s
def test_a_gate_nobody_answers_ends_the_run_cancelled_without_paying(server, fal_env, tmp_path):
    board = tmp_path / "late.yaml"
    board.write_text(STORYBOARD.replace("review: true", "review: {timeout: 60}"))
    thread, box = flow_in_thread(server, storyboard=str(board), backend="fal", out=str(tmp_path / "late.mp4"))
    thread.join(180)
    assert not thread.is_alive() and "error" not in box, box
    state = box["state"]
    assert state.is_cancelled() and "not answered within 60 s" in state.message, state
    assert not fal_env.jobs, "nothing was sent"


@pytest.mark.slow  # a process worker starts the run four times (each start ≈ 15-30 s here)
def test_a_deployment_run_is_suspended_at_each_gate_and_executed_again_without_paying_or_asking_again(server, fal_env, tmp_path):
    from prefect import flow
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from shotflow.deployments.server import prefect_exe
    from shotflow.deployments.storyboards import ENTRYPOINT

    board = tmp_path / "harbour.yaml"
    board.write_text(STORYBOARD)
    out = tmp_path / "harbour.mp4"
    env = {
        **product_env(tmp_path / "cache"),
        "PREFECT_API_URL": server.api_url,
        "PREFECT_HOME": str(tmp_path / "client-home"),
        "SHOTFLOW_FAL_POLL_INTERVAL": "0.1",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "INFO",  # the worker's log says when the flow's process ends
    }
    r = subprocess.run(
        [prefect_exe(), "work-pool", "create", "review-pool", "--type", "process"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        deployment = flow.from_source(source=str(ROOT), entrypoint=ENTRYPOINT).deploy(
            name="review-check",
            work_pool_name="review-pool",
            parameters={"storyboard": str(board), "backend": "fal", "out": str(out)},
            print_next_steps=False,
            build=False,
            push=False,
        )
    log = tmp_path / "worker.log"
    with open(log, "wb") as sink:
        worker = subprocess.Popen(
            [prefect_exe(), "worker", "start", "--pool", "review-pool"],
            env=env,
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        run = call(server, "POST", f"/deployments/{deployment}/create_flow_run", json={})
        gate = paused(server, "approve-plan", run_id=run["id"], log=log)
        assert gate["state"]["name"] == "Suspended" and gate["state"]["state_details"]["pause_reschedule"]
        wait_for("the flow's process to end", lambda: f"Execution of flow run '{run['id']}' is paused" in log.read_text(), 60)
        assert not fal_env.jobs
        assert resume(server, gate, {"skip": ["storm"]})["status"] == "ACCEPT"

        gate = paused(server, "pick-level-1-", run_id=run["id"], log=log)
        assert set(fal_env.billed.values()) == {1} and len(fal_env.billed) == 4
        assert resume(server, gate, {"boats": 2, "gulls": 2})["status"] == "ACCEPT"
        gate = paused(server, "pick-level-2-", run_id=run["id"], log=log)
        assert resume(server, gate, {"quay": 1})["status"] == "ACCEPT"

        def finished():
            state = call(server, "GET", f"/flow_runs/{run['id']}")["state"]
            return state if state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

        state = wait_for("the run to finish", finished, 300, diagnostics=lambda: tail(log))
        assert state["type"] == "COMPLETED", f"{state}\n{tail(log)}"
    finally:
        stop_group(worker)
    # executed four times (again after each of the three answers), each gate asked once, each take paid once
    history = call(server, "GET", f"/flow_run_states/?flow_run_id={run['id']}")
    keys = [s["state_details"]["pause_key"] for s in history if s["name"] == "Suspended"]
    assert sorted(k.split("-")[0] + "-" + k.split("-")[2] if k.startswith("pick") else k for k in keys) == [
        "approve-plan",
        "pick-1",
        "pick-2",
    ], keys
    assert sum(1 for s in history if s["name"] == "Resuming") == 3
    assert set(fal_env.billed.values()) == {1} and len(fal_env.billed) == 6
    assert_cut_from(out, out.with_name("harbour.manifest.json"), {"boats": 2, "gulls": 2, "quay": 1})


@contextmanager
def reviewed_run(server, tmp_path):
    """`shotflow run --review` (no `review:` in the file) reporting to `server`, in its own session:
    yields the process and its log; stopped on leaving."""
    board = tmp_path / "plain.yaml"
    board.write_text(STORYBOARD.replace("review: true\n", ""))  # --review asks all the same
    env = {
        **product_env(tmp_path / "cache"),
        "PREFECT_API_URL": server.api_url,
        "PREFECT_HOME": str(tmp_path / "client-home"),
        "SHOTFLOW_FAL_POLL_INTERVAL": "0.1",
    }
    shotflow = str(Path(sys.executable).with_name("shotflow"))
    log = tmp_path / "run.log"
    with open(log, "wb") as sink:
        cli = subprocess.Popen(
            [shotflow, "run", str(board), "--review", "--backend", "fal", "--out", str(tmp_path / "plain.mp4")],
            env=env,
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        yield cli, log
    finally:
        stop_group(cli)


def test_run_review_waits_for_approval_on_the_prefect_server_and_cancelling_there_pays_nothing(server, fal_env, tmp_path):
    with reviewed_run(server, tmp_path) as (cli, log):
        gate = paused(server, "approve-plan", log=log)
        assert gate["state"]["name"] == "Paused"  # a process run: paused, not suspended
        assert resume(server, gate, {"approve": False})["status"] == "ACCEPT"
        code = cli.wait(timeout=120)
    text = log.read_text()
    assert code == 1 and "cancelled at the review before paying; nothing was paid" in text, text
    assert not fal_env.jobs, "nothing was sent to fal"


def test_ctrl_c_while_a_run_waits_at_the_review_in_the_ui_ends_it_cancelled_there_paying_nothing(server, fal_env, tmp_path):
    with reviewed_run(server, tmp_path) as (cli, log):
        gate = paused(server, "approve-plan", log=log)
        cli.send_signal(signal.SIGINT)
        code = cli.wait(timeout=120)
    text = log.read_text()
    assert code == 130 and "cancelled on the Prefect server" in text, text
    state = call(server, "GET", f"/flow_runs/{gate['id']}")["state"]
    assert state["type"] == "CANCELLED" and "Ctrl-C" in state["message"], state
    assert not fal_env.jobs, "nothing was sent to fal"


def test_an_answerer_in_the_flows_process_answers_the_same_questions_checked_by_the_same_forms(server, fal_env, tmp_path):
    from shotflow.flows.review import set_answerer

    board = tmp_path / "harbour.yaml"
    board.write_text(STORYBOARD)
    asked = []
    answers = iter(
        [
            {"skip": ["sea"]},  # not a shot: refused by the form, asked again saying why
            {"skip": ["storm", "quay"]},
            {"boats": 2, "gulls": "two"},  # not a take number: asked again
            {"boats": 2, "gulls": 2},
        ]
    )

    def answer(question):
        asked.append((question.key, question.problem, [f.name for f in question.fields]))
        return next(answers)

    set_answerer(answer)
    try:
        thread, box = flow_in_thread(server, storyboard=str(board), backend="fal", out=str(tmp_path / "h.mp4"))
        thread.join(240)
    finally:
        set_answerer(None)
    assert "error" not in box and box["state"].is_completed(), box
    keys = [key for key, _, _ in asked]
    assert keys[:2] == ["approve-plan", "approve-plan-2"] and keys[2].startswith("pick-level-1-") and keys[3] == keys[2] + "-2"
    assert "skip.0" in asked[1][1] and "gulls" in asked[3][1]
    assert asked[2][2] == ["boats", "gulls", ANOTHER, NEW_PROMPT]
    assert [s["id"] for s in box["state"].result()["shots"]] == ["boats", "gulls"]
    assert set(fal_env.billed.values()) == {1} and len(fal_env.billed) == 4
