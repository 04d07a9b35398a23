"""The early start of `shotflow run` (flows/earlystart.py, shotflow/generation/early.py): with the fal
backend and a private Prefect server, shots are submitted before that server is ready, the flow
re-attaches, nothing is paid twice, and a Ctrl-C during the Prefect start stops the early threads.
Real CLI processes against the fake fal server (billed counts from it)."""

from __future__ import annotations

import json  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import fakefal  # noqa: F401  (first: points fal_client and httpx at the fake server)
import httpx  # noqa: E402
import pytest  # noqa: E402
from test_interrupt import N, Run, journaled_requests, run_env, wait_for  # noqa: E402


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory) -> Path:
    """One PREFECT_HOME for the module's runs: the first private server start migrates its database."""
    return tmp_path_factory.mktemp("early-prefect-home")


def records(cache: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((cache / "jobs").glob("*.json"))]


def finished(run: Run, timeout: float = 300) -> tuple[int, str, dict]:
    """Exit status, everything printed (with --json: on stderr, in order), the JSON report."""
    try:
        code = run.wait(timeout=timeout)
    finally:
        run.kill()
    out = run.out.read_text()
    return code, run.output(), json.loads(out) if out.strip() else {}


def test_shots_are_submitted_before_prefect_is_ready_and_paid_once_and_force_pays_once_more(fake_fal, tmp_path, prefect_home):
    cache = tmp_path / "cache"
    env = run_env(tmp_path, PREFECT_HOME=str(prefect_home))
    code, text, report = finished(Run(tmp_path, env, "--concurrency", "4", "--json"))
    assert code == 0, text
    assert "Traceback" not in text
    ready = text.index("Prefect ready at")
    first_submit = re.search(r"^\[ *[\d.]+s\] s\d +\S+ +submitted", text, re.M)
    assert first_submit, text
    assert first_submit.start() < ready, f"no shot was submitted before Prefect was ready\n{text}"
    assert fake_fal.count("submit") == N
    assert len(fake_fal.billed) == N and set(fake_fal.billed.values()) == {1}, fake_fal.billed
    # the flow re-attached to (or found in the store) what the early start generated: this run's
    # clips, reported as generated, not as reused
    assert "reused:        0 of 4 clips from the clip store" in text, text
    assert [s["from_clip_store"] for s in report["shots"]] == [False] * N, report
    manifest = json.loads(Path(report["manifest"]).read_text())
    assert [s["cache_hit"] for s in manifest["shots"]] == [False] * N, manifest["shots"]
    assert {s["request_id"] for s in manifest["shots"]} == {j.id for j in fake_fal.jobs.values()}
    tokens = {r["run_token"] for r in records(cache)}
    assert len(tokens) == 1 and None not in tokens, tokens

    # --force s1: exactly one more paid request, for s1 only, across the early thread and the flow's task
    billed_before = dict(fake_fal.billed)
    code, text, report = finished(Run(tmp_path, env, "--concurrency", "4", "--force", "s1", "--json"))
    assert code == 0, text
    assert fake_fal.count("submit") == N + 1
    changed = {h: n for h, n in fake_fal.billed.items() if n != billed_before.get(h)}
    assert list(changed.values()) == [2], fake_fal.billed
    s1 = next(r for r in records(cache) if r["shot"] == "s1")
    assert s1["state"] == "downloaded" and s1["force_token"] == s1["run_token"] and s1["run_token"] not in tokens
    assert "reused:        3 of 4 clips from the clip store" in text, text
    assert [s["from_clip_store"] for s in report["shots"]] == [True, False, True, True], report


def test_ctrl_c_while_prefect_starts_stops_the_early_submits(fake_fal, tmp_path):
    cache = tmp_path / "cache"
    env = run_env(tmp_path, PREFECT_HOME=str(tmp_path / "fresh-prefect-home"))  # a fresh home: a long start
    fake_fal.hold()  # the early jobs stay in progress
    run = Run(tmp_path, env, "--concurrency", "2")
    try:
        wait_for("two journaled early submits", lambda: len(journaled_requests(cache)) == 2, diagnostics=run.output)
        starting = wait_for(
            "the private server's address", lambda: re.search(r"a private server at (http://127\.0\.0\.1:\d+)", run.output())
        )
        assert "Prefect ready" not in run.output(), "Prefect was ready before the Ctrl-C: nothing early to stop"
        assert fake_fal.count("submit") == 2  # --concurrency bounds the early start too
        accepted = journaled_requests(cache)
        run.signal(signal.SIGINT)
        signalled = time.monotonic()
        code = run.wait(timeout=60)
        time.sleep(1.0)  # an early thread that outlived the signal would submit now
    finally:
        run.kill()
        fake_fal.release()
    text = run.output()
    assert code == 130, text
    assert "Traceback" not in text and "Prefect ready" not in text
    assert fake_fal.count("submit") == 2, "a shot was submitted after Ctrl-C"
    assert all(j.submitted_at < signalled for j in fake_fal.jobs.values())
    assert journaled_requests(cache) == accepted  # paid, journaled, re-attachable
    for shot, request in accepted.items():
        assert f"'{shot}' (fal request {request}" in text, text
    assert "a re-run collects them without paying again" in text
    with pytest.raises(httpx.HTTPError):  # the private server is gone with the run
        httpx.get(f"{starting.group(1)}/api/health", timeout=2)


def test_only_a_run_that_starts_a_private_server_starts_early(tmp_path, monkeypatch):
    """Where Prefect's configuration names a server (which may hold the global fal-requests limit),
    the run waits for Prefect as before; the template profile's `local` entry names one only when active."""
    from shotflow.flows.earlystart import names_a_server

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("PREFECT_PROFILE", raising=False)
    monkeypatch.delenv("PREFECT_PROFILES_PATH", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "home"))
    assert names_a_server() is None
    (tmp_path / "home").mkdir()
    profiles = tmp_path / "home" / "profiles.toml"
    profiles.write_text(
        'active = "ephemeral"\n[profiles.ephemeral]\nX = "1"\n[profiles.local]\nPREFECT_API_URL = "http://127.0.0.1:4200/api"\n'
    )
    assert names_a_server() is None
    monkeypatch.setenv("PREFECT_PROFILE", "local")
    assert names_a_server() == f"{profiles} (profile local)"
    monkeypatch.delenv("PREFECT_PROFILE")
    profiles.write_text("not [ toml")
    assert names_a_server() == str(profiles)  # unreadable: on the safe side
    profiles.unlink()
    (tmp_path / "pyproject.toml").write_text('[tool.prefect.api]\nurl = "http://127.0.0.1:4200/api"\n')
    assert names_a_server() == "pyproject.toml"
    (tmp_path / "pyproject.toml").write_text("[tool.other]\n")
    (tmp_path / "prefect.toml").write_text('[api]\nurl = "http://127.0.0.1:4200/api"\n')
    assert names_a_server() == "prefect.toml"
    (tmp_path / "prefect.toml").unlink()
    (tmp_path / ".env").write_text("export PREFECT_API_URL=http://127.0.0.1:4200/api\n")
    assert names_a_server() == ".env"
    (tmp_path / ".env").unlink()
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert names_a_server() == "PREFECT_API_URL"


def test_a_shot_whose_early_turn_has_not_come_is_left_to_the_flow_and_one_under_way_is_waited_for(fake_fal, tmp_path):
    """With one slot, the early start generates one shot; the flow's task takes the other over
    (the early thread never sends it) and waits for the one under way until its clip is stored,
    not for the work after it (the normalisation); each body is billed once."""
    import threading

    from shotflow.generation import early
    from shotflow.generation.choose import open_backend
    from shotflow.generation.limits import RunLimits
    from shotflow.plan import plan_from_data

    plan = plan_from_data(
        {
            "version": 1,
            "title": "Early",
            "shots": [{"id": f"e{i}", "prompt": f"early {i}", "model": "pika", "duration": 5} for i in range(2)],
        }
    )
    settings = fakefal.settings_for(tmp_path / "cache")
    fake_fal.hold()
    limits = RunLimits(1)
    after = []  # the work after each stored clip (the CLI normalises it): only for the shot generated early
    proceed = threading.Event()

    def after_work(shot, clip):
        proceed.wait(60)
        after.append((shot.id, clip.path.is_file()))

    run = early.EarlyGeneration(
        plan.shots, lambda: open_backend("fal", settings, key=fakefal.KEY, run_token="t1"), token="t1", limits=limits,
        after=after_work,
    )  # fmt: skip
    run.start()
    try:
        wait_for("one early submit", lambda: fake_fal.count("submit") == 1)
        (begun,) = run.running()
        other = next(s.id for s in plan.shots if s.id != begun)
        early.wait_turn("t1", other)  # not begun: the flow's task takes it, at once
        assert run.state[other] == early.LEFT
        fake_fal.release()
        early.wait_turn("t1", begun)  # under way: returns once its clip is in the store
        assert run.state[begun] == early.STORED and run.clips[begun].cache_hit is False
        assert after == []  # the work after the clip goes on without holding the flow's task up
        proceed.set()
        assert run.finish(10)
        assert run.state[begun] == early.DONE and after == [(begun, True)]
        time.sleep(0.5)
        assert fake_fal.count("submit") == 1 and set(fake_fal.billed.values()) == {1}  # the early thread left `other` alone
        with open_backend("fal", settings, key=fakefal.KEY, run_token="t1") as backend:
            again = backend.generate(plan.shot(begun))
        assert again.cache_hit is False  # this run's clip: generated, not reused
        with open_backend("fal", settings, key=fakefal.KEY, run_token="t2") as backend:
            assert backend.generate(plan.shot(begun)).cache_hit is True  # another run reuses it
    finally:
        proceed.set()
        fake_fal.release()
        run.close()
    assert fake_fal.count("submit") == 1


def test_the_cli_waits_for_the_early_requests_to_go_out_and_not_for_a_shot_waiting_its_turn(fake_fal, tmp_path):
    """EarlyGeneration.wait_sent (the CLI imports Prefect after it): with two slots and three
    shots, it returns once two requests are out, the third shot waiting for a slot."""
    from shotflow.generation import early
    from shotflow.generation.choose import open_backend
    from shotflow.generation.limits import RunLimits
    from shotflow.plan import plan_from_data

    plan = plan_from_data(
        {
            "version": 1,
            "title": "Early",
            "shots": [{"id": f"w{i}", "prompt": f"wait {i}", "model": "pika", "duration": 5} for i in range(3)],
        }
    )
    settings = fakefal.settings_for(tmp_path / "cache")
    fake_fal.hold()
    run = early.EarlyGeneration(
        plan.shots, lambda: open_backend("fal", settings, key=fakefal.KEY, run_token="t3"), token="t3", limits=RunLimits(2)
    )
    run.start()
    try:
        assert run.wait_sent(60), run.state
        assert fake_fal.count("submit") == 2 and len(run.running()) == 2
    finally:
        fake_fal.release()
        run.finish(60)
        run.close()
    assert fake_fal.count("submit") == 2  # the third never began: the flow's task would take it


def test_an_early_submit_that_ends_uncertain_fails_its_shot_through_the_flow_and_is_not_sent_again(
    fake_fal, tmp_path, prefect_home
):
    """The early thread's error is not the CLI's: the flow's task reports the shot as it would have
    (uncertain, with --force), the others finish, and nothing is submitted twice."""
    cache = tmp_path / "cache"
    fake_fal.fault("submit", 502, accept=True)  # the first submit is accepted (billed) but answered 502
    code, text, report = finished(
        Run(tmp_path, run_env(tmp_path, PREFECT_HOME=str(prefect_home)), "--concurrency", "1", "--json")
    )
    assert code == 1, text
    # (Prefect prints the failed flow's traceback itself, early start or not; none comes from shotflow's CLI side)
    assert "earlystart.py" not in text and "generation/early.py" not in text and "shotflow/cli.py" not in text, text
    (uncertain,) = [r for r in records(cache) if r["state"] == "uncertain"]
    assert re.search(rf"shot '{uncertain['shot']}': uncertain", text), text
    assert f"--force {uncertain['shot']}" in text
    assert "1 of 4 shots failed" in text
    assert fake_fal.count("submit") == N  # the uncertain one was not sent again, by the flow or anyone
    assert set(fake_fal.billed.values()) == {1}, fake_fal.billed
    assert sorted(r["state"] for r in records(cache)) == ["downloaded"] * (N - 1) + ["uncertain"]


def test_early_start_and_the_key_are_read_from_the_settings_so_a_dotenv_line_counts(fake_fal, tmp_path, monkeypatch):
    """SHOTFLOW_EARLY_START=0 in .env turns the early start off (it was read from os.environ only);
    `Settings.names_a_key` is the one answer to "is a fal key available" (FAL_KEY or a Secret block)."""
    from shotflow.flows.earlystart import EarlyStart

    from shotflow.plan import plan_from_data
    from shotflow.settings import Settings, get_settings

    monkeypatch.chdir(tmp_path)
    for name in ("PREFECT_API_URL", "SHOTFLOW_EARLY_START", "FAL_KEY", "SHOTFLOW_FAL_KEY_BLOCK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "home"))
    assert Settings().names_a_key is False
    assert Settings(FAL_KEY="  \n").names_a_key is False  # blank: no key
    assert Settings(SHOTFLOW_FAL_KEY_BLOCK="fal-key").names_a_key is True
    (tmp_path / ".env").write_text(f"FAL_KEY={fakefal.KEY}\nSHOTFLOW_EARLY_START=0\n")
    settings = get_settings()
    assert settings.names_a_key and settings.early_start is False
    plan = plan_from_data({"version": 1, "title": "Env", "shots": [{"id": "a", "prompt": "p", "model": "pika", "duration": 5}]})
    stops = []
    with EarlyStart(plan, "fal", settings, concurrency=1, model_limits=None, force=None, on_stop=stops.append) as early:
        assert early.generation is None  # nothing started: the .env line was read
    assert stops == []
    # the same settings with the early start on do start (and a stop on leaving names nothing paid)
    settings = fakefal.settings_for(tmp_path / "cache", SHOTFLOW_EARLY_START="1")
    with EarlyStart(plan, "fal", settings, concurrency=1, model_limits=None, force=None, on_stop=stops.append) as early:
        assert early.generation is not None
        assert early.generation.finish(60) and early.generation.clips["a"].cache_hit is False
    assert fake_fal.count("submit") == 1
