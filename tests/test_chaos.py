"""Chaos: the real `shotflow run` killed with SIGKILL at random moments of a faulty run, then re-run.

The promise under test: no shot is billed twice, except shots the CLI announced as uncertain and
that were then forced on purpose; and no clip is lost (the final run finishes every shot from what
was paid for). Billed counts come from the fake fal server. Slow (a few minutes): `make test-slow`.

The seed of the random moments is printed; set SHOTFLOW_CHAOS_SEED to replay one.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import fakefal
import pytest
from shotflow.deployments.server import PrefectServer

from shotflow.plan import load_plan
from shotflow.store.journal import Journal

pytestmark = pytest.mark.slow

fake_fal = fakefal.fake_fal
KILLS = int(os.environ.get("SHOTFLOW_CHAOS_KILLS", "24"))
SHOTS = 6  # in each killed run
NEW = 2  # shots a killed run has that no earlier run had


def faults_for(rng: random.Random, fake: fakefal.FakeFal) -> list[str]:
    """A few of the faults a network, fal and its media hosts throw, picked at random."""
    menu = [
        ("submit dropped after acceptance", lambda: fake.fault("submit", drop=True)),
        ("submit answered 502 after acceptance", lambda: fake.fault("submit", 502, accept=True)),
        ("submit 429", lambda: fake.fault("submit", 429)),
        ("status 503", lambda: fake.fault("status", 503, times=2)),
        ("result 504", lambda: fake.fault("result", 504)),
        ("media 403 for a while", lambda: fake.fault("media", 403, for_seconds=1.5)),
        ("media cut", lambda: fake.fault("media", truncate="cut")),
    ]
    picked = rng.sample(menu, k=rng.randint(1, 3))
    for _, inject in picked:
        inject()
    return [name for name, _ in picked]


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    """One real Prefect server for every run here, so a kill never leaves a server behind."""
    home = tmp_path_factory.mktemp("prefect-home")
    server = PrefectServer(env={"PREFECT_HOME": str(home)}, log=home / "server.log", start_timeout=300)
    server.start()
    try:
        yield server.api_url
    finally:
        server.stop()


@pytest.mark.timeout(900)  # 24 killed runs and the final ones: minutes on a busy machine
def test_random_kills_never_pay_twice_nor_lose_a_clip(fake_fal, tmp_path, prefect_api):
    seed = int(os.environ.get("SHOTFLOW_CHAOS_SEED", str(time.time_ns() % 10**6)))
    print(f"chaos seed {seed}")
    rng = random.Random(seed)
    fake_fal.reset(queue_seconds=0.3, run_seconds=0.8)
    cache = tmp_path / "cache"
    board = tmp_path / "chaos.yaml"

    def storyboard(ids) -> None:
        board.write_text(
            "version: 1\ntitle: chaos\ndefaults: {resolution: 720p}\noutput: {path: out/chaos.mp4, resolution: 360p}\nshots:\n"
            + "".join(f"  - {{id: s{i}, prompt: 'chaos shot number {i}', model: pika, duration: 5}}\n" for i in ids)
        )

    # each run's storyboard slides over a pool of shots: NEW new shots a run (paid for the first
    # time), the others from earlier runs (stored, in flight or uncertain), so that every kill can
    # land on a run that is sending something
    every = range(NEW * KILLS + SHOTS)
    storyboard(every)
    plan = load_plan(str(board))
    env = {
        **fakefal.product_env(cache),
        "PREFECT_API_URL": prefect_api,
        "SHOTFLOW_FAL_POLL_INTERVAL": "0.1",
        "SHOTFLOW_FAL_RETRY_BACKOFF": "0.1",
    }
    env.pop("PREFECT_HOME", None)

    def start(*extra: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "shotflow.cli", "run", str(board), "--backend", "fal", *extra],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    history = []
    mid_generation = 0  # kills that landed after the run had sent something to fal
    for kill in range(KILLS):
        faults = faults_for(rng, fake_fal)
        sent_before = fake_fal.count("submit")
        storyboard(range(NEW * kill, NEW * kill + SHOTS))
        run = start()
        moment = rng.uniform(1.0, 12.0)
        started = time.monotonic()
        if kill % 2:  # every other kill lands after the run's first submit, however slow the machine is today
            while fake_fal.count("submit") == sent_before and run.poll() is None and time.monotonic() - started < 120:
                time.sleep(0.05)
            moment = time.monotonic() - started + rng.uniform(0.0, 3.0)
        try:
            run.wait(timeout=max(0.0, moment - (time.monotonic() - started)))
            outcome = f"exited {run.returncode} before its kill"
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(timeout=30)
            outcome = "killed"
            if fake_fal.count("submit") > sent_before:
                mid_generation += 1
                outcome += " after sending"
        out, err = run.communicate(timeout=30)
        assert fakefal.KEY not in out + err
        history.append(f"kill {kill} at {moment:.2f} s, faults {faults}: {outcome}")
        fake_fal.faults.clear()

    # the kills must hit runs that were talking to fal, not only runs still starting
    assert mid_generation >= KILLS // 4, f"only {mid_generation} kills landed after a submit:\n" + "\n".join(history)

    # converge: the whole pool, to the end; a shot announced as uncertain is forced on purpose, once per announcement
    storyboard(every)
    forced: Counter[str] = Counter()
    announced: list[str] = []  # forced only once a run has announced them as uncertain
    for attempt in range(8):
        extra = [arg for shot_id in announced for arg in ("--force", shot_id)]
        for arg in extra[1::2]:
            forced[arg] += 1
        run = start(*extra)
        out, err = run.communicate(timeout=300)
        history.append(f"final run {attempt} {extra}: exit {run.returncode}")
        if run.returncode == 0:
            break
        uncertain = forced_next(cache)
        assert uncertain, f"a final run failed without an uncertain shot:\n{err}\n" + "\n".join(history)
        for shot_id in uncertain:
            # announced: the run's message names the shot and calls it uncertain
            assert re.search(rf"shot '{shot_id}'.*uncertain", err, re.S), err
        announced = uncertain
    else:
        pytest.fail("no final run finished:\n" + "\n".join(history))

    billed = fake_fal.billed
    for shot in plan.shots:
        assert billed[shot.body_hash] <= 1 + forced[shot.id], (
            f"shot {shot.id} billed {billed[shot.body_hash]} times, forced {forced[shot.id]}:\n" + "\n".join(history)
        )
        if not forced[shot.id]:
            assert billed[shot.body_hash] == 1, "\n".join(history)
    # no clip lost: every shot's clip is in the store and in the video, and the ledger has no loss
    records = {r.shot: r for r in Journal(cache / "jobs").records()}
    assert {s.id for s in plan.shots} <= set(records)
    assert all(records[s.id].state == "downloaded" for s in plan.shots), {s: r.state for s, r in records.items()}
    manifest = json.loads((tmp_path / "out" / "chaos.manifest.json").read_text())
    assert len(manifest["shots"]) == len(plan.shots)
    print("\n".join(history))


def forced_next(cache: Path) -> list[str]:
    """Shots whose journal record says the submit is uncertain: the ones to force on purpose."""
    root = cache / "jobs"
    if not root.is_dir():
        return []
    return sorted(r.shot for r in Journal(root).records() if r.state in ("uncertain", "intended"))
