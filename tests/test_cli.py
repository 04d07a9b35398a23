"""The `shotflow` command as a user types it: a real process, real exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shotflow(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "shotflow.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


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
    assert f"{broken}:" in r.stderr and "not valid YAML" in r.stderr
    assert "2 of 3 storyboards invalid" in r.stderr
    assert "pipelines/demo.yaml: ok" in r.stdout
    assert "Traceback" not in r.stderr


def test_validate_missing_file():
    r = shotflow("validate", "nowhere.yaml")
    assert r.returncode == 1 and "nowhere.yaml: no such file" in r.stderr and "Traceback" not in r.stderr


def test_models_lists_the_ten():
    r = shotflow("models")
    assert r.returncode == 0
    for alias in ("kling-2.0-master", "seedance-1.0-pro", "pixverse-v4-fast", "pixverse-v4.5", "wan-pro",
                  "luma-ray-2-flash", "pika-2.2", "hailuo-02", "veo3", "veo2"):
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
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"shotflow: reading {sb}"
    assert "no FAL_KEY, so this is an offline preview" in r.stdout
    assert "starting Prefect" in r.stdout
    assert any(" one " in line and "done" in line for line in lines)
    assert f"video:         {out} (10.50 s)" in r.stdout
    from shotflow.probe import probe

    assert probe(out).duration == 10.5
    assert out.with_name("small.contact.png").is_file() and out.with_name("small.manifest.json").is_file()


def test_run_refuses_over_budget_before_starting_anything(tmp_path, monkeypatch):
    sb = tmp_path / "small.yaml"
    sb.write_text(SMALL)
    env = {**__import__("os").environ, "FAL_KEY": "k"}
    r = subprocess.run(
        [sys.executable, "-m", "shotflow.cli", "run", str(sb), "--backend", "fal", "--max-cost", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=env,
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
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 of 2 shots failed" in r.stderr and "shot 'two'" in r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert not (tmp_path / "f.mp4").exists()
