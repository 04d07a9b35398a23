"""The review gates in the terminal (`shotflow run --review` on a terminal), driven through a
pseudo-terminal: the questions are the gates' own, asked with prompts; the answers decide what
is paid and which takes the video is cut from. Without a terminal and without a Prefect UI to
answer in, a reviewed run is refused before anything is sent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import fakefal
from terminal import Terminal

from shotflow.model import body_hash
from shotflow.plan import load_plan

BOARD = """\
version: 1
title: Terminal review
output: {resolution: 360p, transition: {type: cut}}
shots:
  - {id: boats, prompt: boats leave the harbour, model: pika, resolution: 720p, duration: 5, takes: 2}
  - {id: gulls, prompt: gulls over the wall, model: pika, resolution: 720p, duration: 5}
"""


def test_run_review_on_a_terminal_asks_before_paying_then_for_the_take_and_cuts_it(tmp_path, fake_fal, clip_store):
    board = tmp_path / "film.yaml"
    board.write_text(BOARD)
    env = fakefal.product_env(clip_store) | {"SHOTFLOW_FAL_POLL_INTERVAL": "0.1", "SHOTFLOW_FAL_RETRY_BACKOFF": "0.05"}
    env["HOME"] = str(tmp_path / "home")  # a private Prefect server: no UI, so only the terminal can answer
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    env.pop("PREFECT_API_URL", None)
    term = Terminal(["run", "film.yaml", "--review", "--out", "film.mp4"], tmp_path, env)
    try:
        term.expect("Review before paying")
        term.expect("[Y/n]: ")  # the question comes after the cost table (read up to it, not just to the heading)
        assert "| boats | pika-2.2 | 5 | 2 | $0.20 | $0.40 |" in term.text  # the cost table, every take counted
        assert not fake_fal.billed  # nothing is paid before the answer
        term.answer("maybe")  # not an answer: asked again, on the spot
        term.expect("type y or n")
        term.answer("y")
        term.expect("comma-separated; Enter: none]: ")
        term.answer("")  # skip nothing
        term.expect("Enter: none]: ")  # the budget
        term.answer("")
        term.expect("A frame of every take: ")
        term.expect("[1/2; Enter: 1]: ")  # the sheet's path is whole once the question after it came
        sheet = Path(term.text.split("A frame of every take: ")[1].split()[0])
        assert sheet.is_file() and sheet.stat().st_size > 0
        term.answer("2")
        term.expect("comma-separated; Enter: none]: ")  # another take: none
        term.answer("")
        term.expect("New prompt")
        term.answer("")
        assert term.wait() == 0, term.text[-3000:]
    finally:
        term.close()
    plan = load_plan(board)
    boats = plan.takes_of("boats")
    # every take billed once (pika takes a seed: each take has its own body)
    assert sorted(fake_fal.billed.values()) == [1, 1, 1]
    assert set(fake_fal.billed) == {body_hash(t.endpoint, t.body) for t in (*boats, plan.shot("gulls"))}
    # the answer is kept as the storyboard's pick, and the video is cut from take 2
    assert plan.shot("boats").take == 2
    manifest = json.loads((tmp_path / "film.manifest.json").read_text())
    take2 = next(t for t in manifest["shots"][0]["takes"] if t["take"] == 2)
    assert manifest["shots"][0]["take"] == 2 and manifest["shots"][0]["clip"] == take2["clip"]
    # the clip cut into the video is take 2's, normalised (named after its clip's key)
    assert Path(manifest["shots"][0]["normalised"]["path"]).name.startswith(Path(take2["clip"]).stem)
    assert take2["clip"] != manifest["shots"][0]["takes"][0]["clip"]


def test_a_reviewed_run_with_nobody_to_answer_is_refused_before_paying(tmp_path, fake_fal, clip_store):
    board = tmp_path / "film.yaml"
    board.write_text(BOARD.replace("title: Terminal review", "title: Terminal review\nreview: true"))
    env = fakefal.product_env(clip_store) | {"HOME": str(tmp_path / "home"), "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    r = subprocess.run(
        [sys.executable, "-m", "shotflow.cli", "run", "film.yaml"],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr
    assert "nobody can give" in r.stderr and "nothing was sent" in r.stderr and "Traceback" not in r.stderr
    assert not fake_fal.billed


def test_ctrl_c_while_a_gate_asks_stops_the_run_without_paying(tmp_path, fake_fal, clip_store):
    board = tmp_path / "film.yaml"
    board.write_text(BOARD)
    env = fakefal.product_env(clip_store) | {"HOME": str(tmp_path / "home"), "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    term = Terminal(["run", "film.yaml", "--review"], tmp_path, env)
    try:
        term.expect("[Y/n]: ")
        os.killpg(term.proc.pid, signal.SIGINT)  # what Ctrl-C sends
        assert term.wait(timeout=60) != 0
    finally:
        term.close()
    assert "nothing is paid" in term.text
    assert not fake_fal.billed
