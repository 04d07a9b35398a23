"""The `shotflow` command as a user types it: a real process, real exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shotflow(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shotflow.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_validate_good_files_one_line_each():
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pipelines").glob("*.yaml"))
    r = shotflow("validate", *files)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == len(files)
    assert all(": ok: " in line for line in lines)


def test_validate_reports_every_problem_of_every_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nshots:\n"
        "  - {id: a, prompt: p, model: kling, duration: 7}\n"
        "  - {id: b, prompt: p, model: veo3, aspect_ratio: '4:3'}\n"
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nshots: [\n")
    r = shotflow("validate", str(bad), str(broken), "pipelines/demo.yaml")
    assert r.returncode == 1
    assert f"{bad}:3: shot 'a': kling-2.0-master renders 5 or 10 s clips, not 7 s" in r.stderr
    assert f"{bad}:4: shot 'b': veo3 takes aspect ratio 16:9, 9:16 or 1:1, not 4:3" in r.stderr
    assert f"{broken}:2:8: a list item is missing its closing ']'" in r.stderr and "shots: [\n" in r.stderr
    assert "2 of 3 storyboards invalid" in r.stderr
    assert "pipelines/demo.yaml: ok" in r.stdout
    assert "Traceback" not in r.stderr


def test_validate_missing_file():
    r = shotflow("validate", "nowhere.yaml")
    assert r.returncode == 1 and "nowhere.yaml: no such file" in r.stderr and "Traceback" not in r.stderr


def test_models_lists_the_ten():
    r = shotflow("models")
    assert r.returncode == 0
    for alias in (
        "kling-2.0-master",
        "seedance-1.0-pro",
        "pixverse-v4-fast",
        "pixverse-v4.5",
        "wan-pro",
        "luma-ray-2-flash",
        "pika-2.2",
        "hailuo-02",
        "veo3",
        "veo2",
    ):
        assert f"\n{alias} " in r.stdout
    assert "unknown" in r.stdout


def test_estimate(tmp_path):
    sb = tmp_path / "e.yaml"
    sb.write_text(
        "version: 1\noutput: {transition: {type: crossfade, seconds: 0.5}}\nshots:\n"
        "  - {id: a, prompt: p, model: kling, duration: 10}\n"
        "  - {id: b, prompt: p, model: veo2}\n"
    )
    r = shotflow("estimate", str(sb))
    assert r.returncode == 0, r.stderr
    assert "15 s generated, final video 14.5 s" in r.stdout
    assert "estimated cost: $2.80 + 1 unpriced shot (b)" in r.stdout


def test_a_command_leaves_the_collector_on_with_its_imports_frozen(capsys):
    """The cyclic collector waits while a command's code is imported (it only walked those
    long-lived objects again and again), then skips them: it is on again when the command runs."""
    import gc

    from shotflow.cli.parser import main

    seen = {}

    def probe(args):
        seen.update(enabled=gc.isenabled(), frozen=gc.get_freeze_count())
        return 0

    try:
        assert main(["models"]) == 0 and gc.isenabled()
        import shotflow.cli.models as models

        real, models.cmd_models = models.cmd_models, probe
        try:
            assert main(["models"]) == 0
        finally:
            models.cmd_models = real
        assert seen["enabled"] and seen["frozen"] > 0  # on, and not walking the imports
    finally:
        gc.unfreeze()
    capsys.readouterr()


def test_version_comes_from_the_package_metadata():
    from importlib.metadata import version

    r = shotflow("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"shotflow {version('shotflow')}"


def test_help_lists_every_command_and_imports_none_of_them():
    """`--help` and `--version` answer without importing the commands' modules (nor Prefect): each
    command's module is imported when it runs."""
    code = (
        "import json, sys\n"
        "from shotflow.cli.parser import build_parser, main\n"
        "sub = build_parser()._subparsers._group_actions[0]\n"
        "lazy = {n: p.get_default('func').__module__ == 'shotflow.cli.parser' for n, p in sub.choices.items()}\n"
        "helps = {a.dest: a.help for a in sub._choices_actions}\n"
        "for argv in (['--help'], ['--version']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(json.dumps({'lazy': lazy, 'helps': helps, 'modules': sorted(sys.modules)}))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    commands = set("new validate models estimate schema run ledger cancel accept server serve deploy".split())
    assert commands <= set(seen["helps"]) and all(seen["helps"].values()), seen["helps"]
    assert all(seen["lazy"][c] for c in commands), seen["lazy"]
    for name in ("run", "paid", "servers", "models", "storyboards"):
        assert f"shotflow.cli.{name}" not in seen["modules"]
    assert "prefect" not in seen["modules"] and "shotflow.cli.flowrun" not in seen["modules"]
    for command in commands:  # and each one's module is there when it runs
        r = shotflow(command, "--help")
        assert r.returncode == 0 and r.stdout.startswith("usage: shotflow " + command), (command, r.stderr)


VARS = """\
version: 1
vars: {who: cat}
shots:
  - {id: a, prompt: "a {{ who }} on a roof", model: kling, duration: 10}
  - {id: b, prompt: p, model: veo2}
"""


def test_validate_estimate_and_run_take_the_same_var_option(tmp_path):
    sb = tmp_path / "v.yaml"
    sb.write_text(VARS)
    for command in ("validate", "estimate"):
        assert shotflow(command, str(sb), "--var", "who=dog").returncode == 0
        r = shotflow(command, str(sb), "--var", "what=dog")
        assert r.returncode == 1 and f"{sb}:2: no var 'what' to override (declared: who)" in r.stderr
        r = shotflow(command, str(sb), "--var", "who=")
        assert r.returncode == 1 and "var 'who': the value given for this run is empty" in r.stderr
        r = shotflow(command, str(sb), "--var", "who")
        assert r.returncode == 1 and "--var 'who': write NAME=VALUE" in r.stderr
    r = shotflow("run", str(sb), "--var", "what=dog")
    assert r.returncode == 1 and "no var 'what' to override" in r.stderr and "starting Prefect" not in r.stdout


def test_estimate_takes_many_files_and_reports_the_bad_ones(tmp_path):
    sb = tmp_path / "v.yaml"
    sb.write_text(VARS)
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nshots:\n  - id: a\n    prompt: a cat: on a roof\n")
    r = shotflow("estimate", str(sb), "pipelines/demo.yaml", str(bad))
    assert r.returncode == 1
    assert f"({sb})" in r.stdout and "Neon Tokyo (pipelines/demo.yaml)" in r.stdout
    assert "all 2 storyboards: estimated $6.47 + 1 unpriced shot" in r.stdout
    assert "  kling-2.0-master: $1.40 per 5 s, +$0.28/s" in r.stdout and "  veo2: unknown" in r.stdout
    assert f"{bad}:4:18: a ': ' inside the value of 'prompt'" in r.stderr and "1 of 3 storyboards invalid" in r.stderr


def test_validate_and_estimate_json(tmp_path):
    sb = tmp_path / "v.yaml"
    sb.write_text(VARS)
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nshots:\n  - {id: a, prompt: p, model: kling, duration: 7}\n")
    r = shotflow("validate", "--json", str(sb), str(bad))
    assert r.returncode == 1 and r.stderr == ""
    report = json.loads(r.stdout)
    good, wrong = report["files"]
    assert report["ok"] is False and good["ok"] is True and good["problems"] == []
    assert good["totals"]["cost_usd"] is None  # one shot's price is unknown: the total is unknown, never a partial sum
    assert good["totals"]["known_cost_usd"] == 2.8 and good["totals"]["unpriced_shots"] == ["b"]
    (problem,) = wrong["problems"]
    assert problem == {
        "file": str(bad),
        "line": 3,
        "column": None,
        "shot": "a",
        "message": "kling-2.0-master renders 5 or 10 s clips, not 7 s",
    }
    assert "shots" not in good

    r = shotflow("estimate", "--json", str(sb), "pipelines/demo.yaml")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] is True
    shots = {s["id"]: s for s in report["files"][0]["shots"]}
    assert shots["a"]["seconds"] == 10 and shots["a"]["model"] == "kling-2.0-master" and shots["a"]["cost_usd"] == 2.8
    assert shots["b"]["cost_usd"] is None and shots["b"]["price"] == "unknown"
    assert report["files"][1]["totals"]["cost_usd"] == 3.67
    assert report["totals"] == {
        "files": 2,
        "invalid": 0,
        "generated_seconds": 39,
        "cost_usd": None,
        "known_cost_usd": 6.47,
        "unpriced_shots": [f"{sb}:b"],
    }

    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nshots: [\n")
    (problem,) = json.loads(shotflow("estimate", "--json", str(broken)).stdout)["files"][0]["problems"]
    assert (problem["line"], problem["column"]) == (2, 8) and "closing ']'" in problem["message"]


def test_models_fits_100_columns_with_readable_prices_and_a_seed_column():
    r = shotflow("models")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert max(map(len, lines)) <= 100
    assert lines[0].split() == ["model", "seconds", "aspect", "ratios", "resolutions", "audio", "seed", "price", "on", "fal"]
    row = {line.split()[0]: line for line in lines[2:] if line and not line.startswith(" ")}
    assert row["kling-2.0-master"].endswith("$1.40 per 5 s, +$0.28/s") and " no " in row["kling-2.0-master"]
    assert row["veo3"].endswith("yes   $0.20/s, $0.40/s with audio")
    assert row["hailuo-02"].endswith("$0.045/s") and "only 768p" in row["hailuo-02"]
    assert row["veo2"].endswith("unknown")
    assert "/1M tok" not in r.stdout and "sx2" not in r.stdout


def test_models_name_shows_one_model_in_full():
    r = shotflow("models", "veo3")
    assert r.returncode == 0, r.stderr
    assert r.stdout == shotflow("models", "fal-ai/veo3").stdout
    out = r.stdout
    assert out.startswith("veo3: Veo 3\n")
    assert "$0.20/s, $0.40/s with audio" in out and "as of 2025-11, from fal.ai model pages" in out
    for field in (
        "prompt",
        "aspect_ratio",
        "duration",
        "negative_prompt",
        "enhance_prompt",
        "seed",
        "resolution",
        "generate_audio",
    ):
        assert f"\n  {field} " in out
    assert 'one of "16:9", "9:16", "1:1"; default "16:9"; shot\'s aspect_ratio:' in out
    assert "true/false; default true; params.generate_audio" in out
    assert re.search(r"\n  assumed +nothing", out)
    kling = shotflow("models", "kling").stdout
    assert re.search(r"\n  frame rate +24 fps \(assumed\)", kling) and re.search(r"\n  seed +no", kling)
    assert (
        max(len(line) for name in ("veo3", "kling", "wan", "luma") for line in shotflow("models", name).stdout.splitlines())
        <= 100
    )
    r = shotflow("models", "sora")
    assert r.returncode == 1 and "unknown model 'sora'" in r.stderr


def test_new_writes_a_starter_that_validates_and_estimates(tmp_path):
    from shotflow.plan import load_plan

    r = shotflow("new", "promo", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    path = tmp_path / "promo.yaml"
    text = path.read_text()
    first = text.splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=")
    assert (tmp_path / first.split("=", 1)[1]).resolve() == ROOT / "storyboard.schema.json"
    assert text.count("\n#") >= 5  # commented
    plan = load_plan(path)
    assert plan.title == "Promo" and len(plan.shots) == 3 and not plan.unpriced
    r = shotflow("estimate", "promo.yaml", cwd=tmp_path)
    assert r.returncode == 0 and "estimated cost: $1.87" in r.stdout, r.stderr
    assert shotflow("validate", "promo.yaml", "--var", "city=Porto", cwd=tmp_path).returncode == 0

    path.write_text(text + "# my edits\n")
    r = shotflow("new", "promo.yaml", cwd=tmp_path)
    assert r.returncode == 1 and "promo.yaml already exists" in r.stderr
    assert path.read_text().endswith("# my edits\n")
    r = shotflow("new", "nowhere/promo", cwd=tmp_path)
    assert r.returncode == 1 and "there is no folder nowhere" in r.stderr
    (tmp_path / "boards").mkdir()
    assert shotflow("new", "boards/teaser", cwd=tmp_path).returncode == 0
    first = (tmp_path / "boards" / "teaser.yaml").read_text().splitlines()[0]
    assert (tmp_path / "boards" / first.split("=", 1)[1]).resolve() == ROOT / "storyboard.schema.json"


def test_schema_is_json_and_the_committed_copy_is_current():
    r = shotflow("schema")
    schema = json.loads(r.stdout)
    assert schema["title"] == "shotflow storyboard" and "shots" in schema["properties"]
    assert (ROOT / "storyboard.schema.json").read_text() == r.stdout, "run: shotflow schema -o storyboard.schema.json"


def test_schema_rejects_what_validate_rejects():
    schema = json.loads(shotflow("schema").stdout)
    shot = schema["$defs"]["Shot"]
    assert shot["additionalProperties"] is False
    assert "id" in shot["required"] and "prompt" in shot["required"]


SMALL = """\
version: 1
title: Small
output: {resolution: 360p, fps: 24, transition: {type: crossfade, seconds: 0.5}}
shots:
  - {id: one, prompt: a red door, model: kling, duration: 5}
  - {id: two, prompt: a blue door, model: hailuo-02}
"""


def test_run_renders_offline_without_a_key_and_says_what_it_does(tmp_path):
    sb = tmp_path / "small.yaml"
    sb.write_text(SMALL)
    out = tmp_path / "small.mp4"
    r = subprocess.run(
        [sys.executable, "-m", "shotflow.cli", "run", str(sb), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"shotflow: reading {sb}"
    assert "no FAL_KEY, so this is an offline preview" in r.stdout
    (opening,) = [line for line in lines if "preview backend" in line]
    assert opening.endswith("preview backend, would cost $1.67 on fal") and "estimated" not in opening
    assert "starting Prefect" in r.stdout
    assert any(" one " in line and "done" in line for line in lines)
    assert f"video:         {out} (10.50 s)" in r.stdout
    from shotflow.media.probe import probe

    assert probe(out).duration == 10.5
    assert out.with_name("small.contact.png").is_file() and out.with_name("small.manifest.json").is_file()


def test_run_refuses_over_budget_before_starting_anything(tmp_path, monkeypatch):
    sb = tmp_path / "small.yaml"
    sb.write_text(SMALL)
    env = {**__import__("os").environ, "FAL_KEY": "k"}
    r = subprocess.run(
        [sys.executable, "-m", "shotflow.cli", "run", str(sb), "--backend", "fal", "--max-cost", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert r.returncode == 1
    assert "estimated $1.67 is over the budget of $1.00; nothing was started" in r.stderr
    assert "starting Prefect" not in r.stdout


def test_run_with_fal_but_no_key_points_to_the_preview(tmp_path):
    sb = tmp_path / "small.yaml"
    sb.write_text(SMALL)
    r = shotflow("run", str(sb), "--backend", "fal")
    assert r.returncode == 1
    assert "no fal key: set FAL_KEY" in r.stderr and "--backend preview" in r.stderr
    assert "Traceback" not in r.stderr


def test_run_unknown_force_shot(tmp_path):
    sb = tmp_path / "small.yaml"
    sb.write_text(SMALL)
    r = shotflow("run", str(sb), "--force", "three")
    assert r.returncode == 1 and "no shot 'three' (shots: one, two)" in r.stderr


def test_run_argument_bounds_and_unwritable_schema(tmp_path):
    sb = tmp_path / "small.yaml"
    sb.write_text(SMALL)
    r = shotflow("run", str(sb), "--concurrency", "0")
    assert r.returncode == 2 and "0 is not between 1 and 64" in r.stderr
    r = shotflow("run", str(sb), "--max-cost", "-1")
    assert r.returncode == 2 and "not an amount of dollars" in r.stderr
    r = shotflow("schema", "-o", str(tmp_path / "no" / "such" / "dir.json"))
    assert r.returncode == 1 and "cannot write" in r.stderr and "Traceback" not in r.stderr


def test_a_failed_run_says_why_in_one_place_without_a_traceback(tmp_path, fake_fal):
    from fakefal import product_env

    sb = tmp_path / "small.yaml"
    sb.write_text(SMALL.replace("a blue door", "something forbidden"))
    fake_fal.fault("job", outcome="refused", match="forbidden")
    env = product_env(tmp_path / "cache") | {"SHOTFLOW_FAL_POLL_INTERVAL": "0.1"}
    env.pop("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", None)  # as a user has it: the CLI's own default
    r = subprocess.run(
        [sys.executable, "-m", "shotflow.cli", "run", str(sb), "--out", str(tmp_path / "f.mp4")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 of 2 shots failed" in r.stderr and "shot 'two'" in r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert not (tmp_path / "f.mp4").exists()


def write_record(cache: Path, key: str, **fields) -> None:
    record = {"key": key, "shot": "s", "endpoint": "fal-ai/pika/v2.2/text-to-video", "body_hash": key, "schema": 2, **fields}
    (cache / "jobs").mkdir(parents=True, exist_ok=True)
    (cache / "jobs" / f"{key}.json").write_text(json.dumps(record))


def test_ledger_lists_every_request_with_totals_and_as_json(clip_store, tmp_path):
    board = tmp_path / "board.yaml"
    board.write_text(SMALL)
    write_record(
        clip_store,
        "k1",
        shot="one",
        state="downloaded",
        request_id="req-1",
        storyboard=str(board),
        estimated_cost_usd="0.40",
        submitted_at="2026-11-30T10:00:00+00:00",
        finished_at="2026-11-30T10:01:00+00:00",
        previous=[
            {
                "request_id": "req-0",
                "state": "lost",
                "shot": "one",
                "storyboard": str(board),
                "estimated_cost_usd": "0.40",
                "endpoint": "fal-ai/pika/v2.2/text-to-video",
                "submitted_at": "2026-11-29T09:00:00+00:00",
                "finished_at": None,
            }
        ],
    )
    write_record(
        clip_store,
        "k2",
        shot="two",
        state="uncertain",
        intended_at="2026-12-01T08:00:00+00:00",
        storyboard=str(board),
        estimated_cost_usd="0.50",
    )
    write_record(
        clip_store, "k3", shot="old", state="downloaded", request_id="req-3", submitted_at="2026-12-01T07:00:00+00:00"
    )  # before the ledger

    r = shotflow("ledger", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [(x["shot"], x["request_id"], x["state"]) for x in rows] == [
        ("one", "req-0", "lost"),
        ("one", "req-1", "downloaded"),
        ("old", "req-3", "downloaded"),
        ("two", None, "uncertain"),
    ]
    for field in ("shot", "storyboard", "endpoint", "request_id", "state", "estimated_cost_usd", "submitted_at", "finished_at"):
        assert all(field in x for x in rows)
    old = next(x for x in rows if x["shot"] == "old")
    assert old["storyboard"] is None and old["estimated_cost_usd"] is None

    r = shotflow("ledger", "--json", "--since", "2026-12-01")
    assert [x["shot"] for x in json.loads(r.stdout)] == ["old", "two"]
    r = shotflow("ledger", "--json", "--storyboard", str(board))
    assert {x["shot"] for x in json.loads(r.stdout)} == {"one", "two"}

    r = shotflow("ledger")
    assert r.returncode == 0, r.stderr
    assert "req-1" in r.stdout and "(none: uncertain)" in r.stdout and "(before the ledger)" in r.stdout
    assert "2026-11-30" in r.stdout and "$0.40" in r.stdout
    assert "fal-ai/pika/v2.2/text-to-video  4" in r.stdout  # per model: every request fal may have billed
    r = shotflow("ledger", "--since", "yesterday")
    assert r.returncode == 2 and "write YYYY-MM-DD" in r.stderr


def test_cancel_cancels_a_running_request_and_checks_fals_answer(fake_fal, clip_store, tmp_path):
    from fakefal import product_env

    from shotflow.plan import plan_from_text

    board = tmp_path / "small.yaml"
    board.write_text(SMALL)
    plan = plan_from_text(SMALL, str(board))
    fake_fal.hold()
    import fal_client

    shot = plan.shot("one")
    handle = fal_client.SyncClient(key=__import__("fakefal").KEY).submit(shot.endpoint, arguments={"prompt": "a red door"})
    write_record(
        clip_store,
        "k1",
        shot="one",
        state="submitted",
        request_id=handle.request_id,
        storyboard=str(board),
        endpoint=shot.endpoint,
        status_url=handle.status_url,
        response_url=handle.response_url,
        cancel_url=handle.cancel_url,
        submitted_at="2026-12-01T08:00:00+00:00",
    )
    r = shotflow("cancel", "--all")  # no key: nothing can be cancelled
    assert r.returncode == 1 and "needs the fal key that paid for it: set FAL_KEY" in r.stderr
    env = product_env(clip_store) | {"SHOTFLOW_FAL_POLL_INTERVAL": "0.1"}
    r = subprocess.run(
        [sys.executable, "-m", "shotflow.cli", "cancel", "three"], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env
    )
    assert r.returncode == 0 and "shot 'three': no request of it is running on fal" in r.stdout, r.stdout + r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "shotflow.cli", "cancel", "--all", str(board)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"shot 'one' (fal request {handle.request_id}): cancelled" in r.stdout
    assert fake_fal.cancels() == [handle.request_id]
    cancelled = json.loads((clip_store / "jobs" / "k1.json").read_text())
    assert cancelled["state"] == "failed"
    from shotflow.store import ledger

    # it may have been running when cancelled: the ledger and the daily budget count it
    assert [ledger.maybe_billed(row) for row in ledger.request_rows(cancelled)] == [True]
    r = subprocess.run(
        [sys.executable, "-m", "shotflow.cli", "cancel", "--all"], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env
    )
    assert r.returncode == 0 and "no paid request is running on fal" in r.stdout
    assert "Traceback" not in r.stderr


def test_run_with_a_stale_prefect_api_url_says_what_to_do_in_two_lines(tmp_path):
    from shotflow.deployments.server import free_port

    sb = tmp_path / "small.yaml"
    sb.write_text(SMALL)
    url = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    env = {**__import__("os").environ, "PREFECT_API_URL": url}
    r = subprocess.run(
        [sys.executable, "-m", "shotflow.cli", "run", str(sb), "--out", str(tmp_path / "s.mp4")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.startswith(f"shotflow: PREFECT_API_URL is {url}, but no Prefect server answers there")
    assert "unset PREFECT_API_URL" in r.stderr and len(r.stderr.strip().splitlines()) == 2
    assert "Traceback" not in r.stderr


def keep_aside(fake_fal, store, shot, request_id: str, **record) -> Path:
    """A paid clip of `shot` (a ShotPlan as sent) that failed verification (2 s of 5), kept aside by
    the clip store and journaled as quarantined, as the fal backend leaves one: where it is kept."""
    key = store.key("fal", shot)
    staged = store.root / "staged.mp4"
    staged.write_bytes(fake_fal.clip(2).read_bytes())  # paid for 5 s, fal sent 2 s
    kept = store.quarantine(key, staged, "lasts 2.00 s, expected 5 s")
    write_record(
        store.root, key, shot=shot.id, state="quarantined", request_id=request_id, endpoint=shot.endpoint,
        body_hash=shot.body_hash, quarantine_path=str(kept), quarantine_reason="lasts 2.00 s, expected 5 s", **record,
    )  # fmt: skip
    return kept


def test_accept_takes_the_clip_kept_aside_into_the_store(fake_fal, clip_store, tmp_path):
    from shotflow.plan import load_plan
    from shotflow.store.clips import ClipStore

    board = tmp_path / "small.yaml"
    board.write_text(SMALL)
    shot = load_plan(str(board)).shot("one")
    store = ClipStore(clip_store)
    key = ClipStore.key("fal", shot)
    kept = keep_aside(fake_fal, store, shot, "req-q", submitted_at="2026-12-01T08:00:00+00:00")
    r = shotflow("accept", "one", str(board))
    assert r.returncode == 0, r.stdout + r.stderr
    assert (
        "shot 'one': the clip kept aside is now its clip (it had been kept aside because: lasts 2.00 s, expected 5 s)" in r.stdout
    )
    assert json.loads((clip_store / "jobs" / f"{key}.json").read_text())["state"] == "downloaded"
    assert store.find(key) is not None and not kept.exists()
    r = shotflow("accept", "one", str(board))
    assert r.returncode == 1 and "nothing quarantined to accept (its request is downloaded)" in r.stderr
    r = shotflow("accept", "three", str(board))
    assert r.returncode == 1 and "no shot 'three'" in r.stderr and "Traceback" not in r.stderr


def test_accept_takes_the_clip_kept_aside_of_one_take(fake_fal, clip_store, tmp_path):
    from shotflow.plan import load_plan
    from shotflow.store.clips import ClipStore

    board = tmp_path / "small.yaml"
    board.write_text(SMALL.replace("{id: one, ", "{id: one, takes: 2, "))
    take2 = load_plan(str(board)).takes_of("one")[1]
    store = ClipStore(clip_store)
    key = ClipStore.key("fal", take2)
    keep_aside(fake_fal, store, take2, "req-q2", take=2)
    r = shotflow("accept", "one", str(board))  # the picked take (1) has nothing kept aside
    assert r.returncode == 1 and "Traceback" not in r.stderr
    r = shotflow("accept", "one", str(board), "--take", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "shot 'one take 2': the clip kept aside is now its clip" in r.stdout
    assert store.find(key) is not None
    r = shotflow("accept", "one", str(board), "--take", "3")
    assert r.returncode == 1 and "shot 'one' has no take 3 (takes: 1, 2)" in r.stderr


CHAIN = """\
version: 1
title: Chain
output: {resolution: 360p, transition: {type: cut}}
shots:
  - {id: one, prompt: a red door, model: kling, duration: 5}
  - {id: two, from: one, prompt: the red door opens, model: kling, duration: 5}
"""


def test_accept_takes_the_clip_kept_aside_of_a_shot_that_continues_another(fake_fal, clip_store, tmp_path):
    from shotflow.generation.known import known_requests
    from shotflow.plan import load_plan
    from shotflow.store.clips import ClipStore

    board = tmp_path / "chain.yaml"
    board.write_text(CHAIN)
    plan = load_plan(str(board))
    store = ClipStore(clip_store)
    source = clip_store / "one.mp4"
    source.write_bytes(fake_fal.clip(5).read_bytes())
    store.put(ClipStore.key("fal", plan.shot("one")), source)
    sent, _ = known_requests(plan, "fal", clip_store)["two"]  # two as the run sent it: one's last frame in its body
    key = ClipStore.key("fal", sent)
    kept = keep_aside(fake_fal, store, sent, "req-two", storyboard=str(board.resolve()), submitted_at="2026-12-01T08:00:00+00:00")
    r = shotflow("accept", "two", str(board))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "shot 'two': the clip kept aside is now its clip" in r.stdout and "fal request req-two is downloaded" in r.stdout
    assert store.find(key) is not None and not kept.exists()

    # the source's clip is gone: two's request is no longer known from the plan; the journal still names it
    kept = keep_aside(fake_fal, store, sent, "req-two", storyboard=str(board.resolve()))
    store.path(ClipStore.key("fal", plan.shot("one"))).unlink()
    elsewhere = tmp_path / "copy" / "chain.yaml"  # the same shots in another storyboard: not its request
    elsewhere.parent.mkdir()
    elsewhere.write_text(CHAIN)
    r = shotflow("accept", "two", str(elsewhere))
    assert r.returncode == 1 and f"shot 'two': no clip of it is kept aside for {elsewhere}" in r.stderr, r.stderr
    assert "the last frame of shot 'one' cannot be had" in r.stderr
    assert kept.exists()
    r = shotflow("accept", "two", str(board))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "shot 'two': the clip kept aside is now its clip" in r.stdout and "Traceback" not in r.stderr
    assert store.find(key) is not None and not kept.exists()


def test_estimate_json_shows_a_still_url_without_its_query(tmp_path):
    signed = "https://bucket.example.com/stills/{}.png?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=f00dsecret"
    board = tmp_path / "stills.yaml"
    board.write_text(
        "version: 1\nshots:\n"
        f"  - {{id: a, prompt: p, model: luma-ray-2-flash, image: '{signed.format('first')}', end_image: '{signed.format('last')}'}}\n"
    )
    r = shotflow("estimate", "--json", str(board))
    assert r.returncode == 0, r.stderr
    (shot,) = json.loads(r.stdout)["files"][0]["shots"]
    assert shot["image"] == "https://bucket.example.com/stills/first.png?…"
    assert shot["end_image"] == "https://bucket.example.com/stills/last.png?…"
    assert "f00dsecret" not in r.stdout + r.stderr and "AKIAEXAMPLE" not in r.stdout + r.stderr
