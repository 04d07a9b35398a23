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
