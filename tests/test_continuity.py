"""Shots that continue shots, end to end (issue 12): the render flow against the fake fal server
(real fal_client, ffmpeg, Prefect in its embedded mode) and the real CLI. A chain and a fork wait
for their sources and are sent their source clip's exact last frame (each fake job's clip has a
colour of its own, so a frame tells which job made it); independent shots still run side by side;
a changed shot makes exactly its descendants again; `--force` pays for descendants only with
consent; the continuity example renders with the preview backend."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import av
import fakefal
import numpy as np
import pytest
from fakefal import KEY
from PIL import Image
from shotflow.flows.render import render_storyboard
from terminal import answer_once

from shotflow.errors import ShotflowError
from shotflow.model import FRAME_REF
from shotflow.money import usd
from shotflow.plan import load_plan
from shotflow.preflight import PreflightError, preflight
from shotflow.report import uptodate
from shotflow.settings import get_settings
from shotflow.spend import budget_problems, made_again, made_again_line
from shotflow.store.digest import file_sha256

ROOT = Path(__file__).resolve().parents[1]

# approach -> arrival -> (driver, keeper): a chain and a fork; sea and gulls stand alone; flag starts on a still
STORYBOARD = """\
version: 1
title: Coast
output: {resolution: 360p, transition: {type: cut}}
shots:
  - {id: approach, prompt: a red car on a coastal road, model: kling}
  - {id: arrival, from: approach, prompt: the car stops at a lighthouse, model: kling}
  - {id: driver, from: arrival, prompt: the driver steps out, model: luma-ray-2-flash, resolution: 540p}
  - {id: keeper, from: arrival, prompt: a keeper waves from the lamp room, model: veo3, resolution: 720p}
  - {id: sea, prompt: waves breaking on dark rocks, model: pika, resolution: 720p}
  - {id: gulls, prompt: gulls over a grey sea, model: hailuo-02}
  - {id: flag, image: flag.png, prompt: a flag flutters on the lighthouse, model: luma-ray-2-flash, resolution: 540p}
"""
DEPENDENTS = {"arrival": "approach", "driver": "arrival", "keeper": "arrival"}


@pytest.fixture
def fal_env(fal_env):
    """fakefal's fal_env, with jobs long enough to overlap and a clip colour per job."""
    fake_fal = fal_env
    fake_fal.reset(queue_seconds=0.3, run_seconds=0.6)
    fake_fal.distinct_clips = True  # every job's clip a colour of its own
    return fake_fal


@pytest.fixture
def board(tmp_path) -> Path:
    path = tmp_path / "coast.yaml"
    path.write_text(STORYBOARD)
    Image.new("RGB", (64, 36), (200, 30, 40)).save(tmp_path / "flag.png")  # the still, beside the storyboard
    return path


def last_frame(clip) -> np.ndarray:
    """The clip's last decoded frame as RGB pixels (PyAV, every frame decoded)."""
    with av.open(str(clip)) as container:
        frame = None
        for frame in container.decode(video=0):
            pass
    return frame.to_ndarray(format="rgb24")


def first_frame(clip) -> np.ndarray:
    with av.open(str(clip)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def sent_image(uri: str) -> tuple[np.ndarray, bytes]:
    """The pixels and the bytes of a data URI fal received."""
    header, _, data = uri.partition(",")
    assert header.startswith("data:image/") and header.endswith(";base64"), header[:60]
    raw = base64.b64decode(data)
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB")), raw


def jobs_by_shot(fake, plan) -> dict[str, list]:
    """The fake server's jobs by the shot whose prompt they carry, in the order they came."""
    found: dict[str, list] = {s.id: [] for s in plan.shots}
    for job in sorted(fake.jobs.values(), key=lambda j: j.submitted_at):
        (shot,) = [s.id for s in plan.shots if s.body["prompt"] == job.body.get("prompt")]
        found[shot].append(job)
    return found


def test_a_chain_and_a_fork_wait_for_their_sources_and_are_sent_their_last_frames(board, fal_env, clip_store):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    plan = load_plan(board, out=str(board.with_suffix(".mp4")))
    state = render_storyboard(storyboard=str(board), backend="fal", out=str(board.with_suffix(".mp4")), return_state=True)
    result = state.result()
    jobs = {shot: runs[0] for shot, runs in jobs_by_shot(fal_env, plan).items() if len(runs) == 1}
    assert set(jobs) == {s.id for s in plan.shots}, "every shot was sent once"
    assert set(fal_env.billed.values()) == {1} and len(fal_env.billed) == 7
    clips = {s["id"]: s["clip"] for s in result["shots"]}
    manifest = json.loads(Path(result["manifest"]).read_text())
    recorded = {s["id"]: s for s in manifest["shots"]}
    for shot, source in DEPENDENTS.items():
        job, upstream = jobs[shot], jobs[source]
        assert job.endpoint == plan.shot(shot).endpoint and job.endpoint.endswith("image-to-video")
        assert upstream.delivered_at < job.submitted_at, f"{shot} was sent before {source}'s clip was there"
        pixels, raw = sent_image(job.body[plan.shot(shot).image_field])
        assert np.array_equal(pixels, last_frame(clips[source])), f"{shot} was not sent {source}'s last frame"
        assert not np.array_equal(pixels, last_frame(clips[shot]))  # the clips differ: the frame names its clip
        # the manifest names the source and the frame (hash, stored file), never its data
        (frame,) = recorded[shot]["frames"]
        assert recorded[shot]["source"] == source and frame["field"] == plan.shot(shot).image_field
        assert frame["sha256"] == hashlib.sha256(raw).hexdigest() == file_sha256(frame["path"])
        assert recorded[shot]["body"][frame["field"]] == FRAME_REF + frame["sha256"]
    assert "source" not in recorded["sea"] and "frames" not in recorded["sea"]
    # a still is sent as it is (a small PNG), and recorded by its hash
    _, raw = sent_image(jobs["flag"].body["image_url"])
    (still,) = recorded["flag"]["frames"]
    assert raw == (board.parent / "flag.png").read_bytes() and still["sha256"] == hashlib.sha256(raw).hexdigest()
    assert "data:image" not in json.dumps(manifest)
    for record in (clip_store / "jobs").glob("*.json"):  # the journal holds references, not megabytes
        assert "data:image" not in record.read_text(), record
    # independent shots overlapped on fal: each was sent before any of them was delivered
    alone = [jobs[s] for s in ("approach", "sea", "gulls", "flag")]
    assert max(j.submitted_at for j in alone) < min(j.delivered_at for j in alone)
    # Prefect's graph: each dependent task took its source's task run as its upstream input
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    generate = {r.name.removeprefix("generate-"): r for r in runs if r.name.startswith("generate-")}
    for shot, source in DEPENDENTS.items():
        assert [i.id for i in generate[shot].task_inputs["upstream"]] == [generate[source].id]
    assert generate["sea"].task_inputs["upstream"] == []
    # a re-run is up to date: each dependent resolved from its source's stored clip
    verdict = uptodate.check(plan, "fal", clip_store, get_settings())
    assert verdict.up_to_date, verdict.reason


def test_a_changed_shot_makes_exactly_its_descendants_again_and_the_budget_counts_them(board, fal_env, clip_store):
    plan = load_plan(board)
    settings = get_settings().model_copy(update={"daily_budget": Decimal(1000)})  # the preflight's budget check only
    # nothing stored: every shot is to be paid, dependents too (their requests are not known yet)
    (problem,) = budget_problems(plan, settings)
    assert "no known price for shot(s) arrival, driver" in str(problem)  # kling's and luma's image prices are unknown
    render_storyboard(storyboard=str(board), backend="fal", out=str(board.with_suffix(".mp4")))
    assert budget_problems(plan, settings) == []  # all stored: nothing to pay
    first = dict(fal_env.billed)

    board.write_text(STORYBOARD.replace("the car stops at a lighthouse", "the car parks by a lighthouse"))
    plan = load_plan(board, out=str(board.with_suffix(".mp4")))
    verdict = uptodate.check(plan, "fal", clip_store, settings)
    assert not verdict.up_to_date and "the storyboard" in verdict.reason
    (problem,) = budget_problems(plan, settings)
    assert "no known price for shot(s) arrival, driver" in str(problem)  # keeper (priced) pays too, it has a new frame
    result = render_storyboard(storyboard=str(board), backend="fal", out=str(board.with_suffix(".mp4")))
    made = {s["id"]: not s["cache_hit"] for s in result["shots"]}
    assert made == {
        "approach": False,
        "arrival": True,
        "driver": True,
        "keeper": True,
        "sea": False,
        "gulls": False,
        "flag": False,
    }
    assert {h: n for h, n in fal_env.billed.items() if h in first} == first  # nothing paid again
    assert len(fal_env.billed) == 10 and set(fal_env.billed.values()) == {1}


def test_a_shot_whose_source_failed_fails_naming_it_and_costs_nothing_while_the_rest_finish(board, fal_env):
    plan = load_plan(board)
    fal_env.fault("job", outcome="refused", match="coastal road")  # approach: a content-policy refusal
    with pytest.raises(ShotflowError) as info:
        render_storyboard(storyboard=str(board), backend="fal", out=str(board.with_suffix(".mp4")))
    message = str(info.value)
    assert "4 of 7 shots failed" in message, message
    for shot, source in DEPENDENTS.items():
        assert f"shot '{shot}': it starts on the last frame of shot '{source}', which has no clip" in message, message
    jobs = jobs_by_shot(fal_env, plan)
    assert not any(jobs[s] for s in DEPENDENTS), "a shot whose source failed was sent"
    assert [len(jobs[s]) for s in ("approach", "sea", "gulls", "flag")] == [1, 1, 1, 1]
    assert not board.with_suffix(".mp4").exists()


def test_force_names_the_shots_it_makes_again_and_only_a_paid_run_asks(board, tmp_path):
    plan = load_plan(board)
    assert [s.id for s in made_again(plan, ["approach"])] == ["arrival", "driver", "keeper"]
    assert [s.id for s in made_again(plan, ["arrival", "driver"])] == ["keeper"]  # forced ones are not listed twice
    assert made_again(plan, ["sea"]) == () and made_again_line(plan, ["sea"]) == ""
    assert made_again_line(plan, ["approach", "flag"]).startswith(
        "--force approach, --force flag also generates again the shots that continue them"
    )
    settings = get_settings()
    with pytest.raises(PreflightError, match="force_descendants"):
        preflight(plan, backend="fal", key=KEY, settings=settings, cwd=tmp_path, force=["approach"])
    preflight(plan, backend="fal", key=KEY, settings=settings, cwd=tmp_path, force=["approach"], force_descendants=True)
    preflight(plan, backend="preview", settings=settings, cwd=tmp_path, force=["approach"])  # an animatic costs nothing
    # deployments and the UI's run form get the consent as a flow parameter, off unless set
    from prefect.utilities.callables import parameter_schema

    field = parameter_schema(render_storyboard.fn).model_dump()["properties"]["force_descendants"]
    assert field["type"] == "boolean" and field["default"] is False and "refused before anything is paid" in field["description"]


def cli(*args: str, cwd: Path, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "shotflow.cli", "run", *args], cwd=cwd, env=env, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=timeout,
    )  # fmt: skip


def on_a_terminal(args: list[str], answer: bytes, cwd: Path, env: dict) -> tuple[int, str]:
    """`shotflow run ARGS` with a terminal as stdin and stderr: answers its question with `answer`."""
    return answer_once(["run", *args], answer, cwd, env)


def test_force_pays_again_for_the_descendants_only_with_consent(board, fal_env, clip_store, tmp_path):
    render_storyboard(storyboard=str(board), backend="fal", out=str(board.with_suffix(".mp4")))
    plan = load_plan(board)
    submits = fal_env.count("submit")
    keeper = usd(plan.shot("keeper").cost)
    listing = f"--force arrival also generates again the shots that continue it (from:): driver (unknown), keeper ({keeper})"
    # a deployment or a UI run (the flow itself): refused without the parameter, before anything is paid
    with pytest.raises(PreflightError) as info:
        render_storyboard(storyboard=str(board), backend="fal", out=str(board.with_suffix(".mp4")), force=["arrival"])
    assert listing in str(info.value) and "force_descendants" in str(info.value)
    assert fal_env.count("submit") == submits

    env = fakefal.product_env(clip_store) | {"PREFECT_HOME": str(tmp_path / "prefect-home"), "SHOTFLOW_FAL_POLL_INTERVAL": "0.1"}
    env.pop("PREFECT_API_URL", None)
    # the CLI with no terminal: refused, naming the flag, before Prefect starts
    refused = cli(str(board), "--force", "arrival", cwd=tmp_path, env=env)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert listing in refused.stderr and "--force-descendants" in refused.stderr
    assert "starting Prefect" not in refused.stdout
    # on a terminal it asks; "no" sends nothing
    code, text = on_a_terminal([str(board), "--force", "arrival"], b"n\n", tmp_path, env)
    assert code == 1 and listing in text and "nothing was sent" in text, text
    assert fal_env.count("submit") == submits

    # consent: the forced shot is paid again, and its descendants (a new first frame); nothing else
    done = cli(str(board), "--force", "arrival", "--force-descendants", "--json", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert {s["id"]: s["from_clip_store"] for s in report["shots"]} == {
        "approach": True, "arrival": False, "driver": False, "keeper": False, "sea": True, "gulls": True, "flag": True,
    }  # fmt: skip
    assert fal_env.billed[plan.shot("approach").body_hash] == 1
    jobs = jobs_by_shot(fal_env, plan)
    assert [len(jobs[s]) for s in ("approach", "arrival", "driver", "keeper", "sea", "gulls", "flag")] == [1, 2, 2, 2, 1, 1, 1]
    assert jobs["arrival"][0].body == jobs["arrival"][1].body  # the same request, bought again
    assert jobs["driver"][0].body != jobs["driver"][1].body  # a new first frame: the new arrival's last
    assert KEY not in done.stdout + done.stderr
    # the same run again: up to date, so it pays nothing and no --max-cost stops it
    again = cli(str(board), "--max-cost", "0", cwd=tmp_path, env=env)
    assert again.returncode == 0 and "is up to date" in again.stdout, again.stdout + again.stderr


def test_the_continuity_example_renders_with_the_preview_backend(tmp_path, fake_fal, clip_store):
    example = ROOT / "pipelines" / "continuity.yaml"
    out = tmp_path / "coastal.mp4"
    plan = load_plan(example, out=str(out))
    assert {s.id: s.source for s in plan.shots if s.source} == {"arrival": "approach", "driver": "arrival", "keeper": "arrival"}
    result = render_storyboard(storyboard=str(example), backend="preview", out=str(out))
    assert out.is_file() and fake_fal.count("submit") == 0
    manifest = json.loads(Path(result["manifest"]).read_text())
    recorded = {s["id"]: s for s in manifest["shots"]}
    clips = {s["id"]: s["clip"] for s in result["shots"]}
    for shot, source in (("arrival", "approach"), ("driver", "arrival"), ("keeper", "arrival")):
        (frame,) = recorded[shot]["frames"]
        assert recorded[shot]["source"] == source and frame["origin"] == f"last frame of {source}"
        # the animatic opens on its source's last frame: the continuity shows in the preview
        sent = np.asarray(Image.open(frame["path"]).convert("RGB"))
        assert np.array_equal(sent, last_frame(clips[source]))
        opening = first_frame(clips[shot])
        scaled = np.asarray(Image.fromarray(sent).resize(opening.shape[1::-1]))
        assert np.abs(opening.astype(int) - scaled.astype(int)).mean() < 12
    (still,) = recorded["bottle"]["frames"]
    assert "source" not in recorded["bottle"] and still["sha256"] == file_sha256(ROOT / "pipelines" / "assets" / "bottle.png")
    assert uptodate.check(plan, "preview", clip_store, get_settings()).up_to_date
    # without the source's clip, the shots that continue it have no request: not up to date (no crash)
    Path(clips["approach"]).unlink()
    verdict = uptodate.check(plan, "preview", clip_store, get_settings())
    assert not verdict.up_to_date and verdict.reason == "shot 'approach': its clip is no longer in the clip store"
