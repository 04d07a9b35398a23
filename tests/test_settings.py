"""Every knob is a field of the one Settings class (environment or .env), listed in the README."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from shotflow.settings import Settings, SettingsError, get_settings

README = Path(__file__).resolve().parents[1] / "README.md"
KEY = "4f1c2d3e-aaaa-bbbb:9b8a7c6d5e4f3a2b1c0d"

# the generation's knobs and the values they had as FalBackend's arguments before they moved here
GENERATION_DEFAULTS = {
    "fal_poll_interval": 1.0,
    "fal_retries": 4,
    "fal_retry_backoff": 1.0,
    "fal_wait_timeout": 600.0,
    "fal_start_timeout": 3600.0,
    "download_attempts": 4,
    "download_timeout": 60.0,
    "duration_tolerance": 1.0,
    "lock_timeout": 300.0,
}


def variables() -> list[str]:
    return [field.validation_alias for field in Settings.model_fields.values()]


def test_the_generation_knobs_keep_their_defaults():
    settings = Settings(_env_file=None)
    assert {name: getattr(settings, name) for name in GENERATION_DEFAULTS} == GENERATION_DEFAULTS
    assert settings.early_start is True


def test_every_setting_is_in_the_readme_table_and_the_table_names_no_other():
    rows = re.findall(r"^\| `([A-Z_]+)` \|", README.read_text(), flags=re.M)
    assert sorted(rows) == sorted(variables())


def test_every_variable_but_the_key_has_the_shotflow_prefix():
    assert [v for v in variables() if not v.startswith("SHOTFLOW_")] == ["FAL_KEY"]


def test_knobs_come_from_the_environment_and_a_dot_env_file(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("SHOTFLOW_FAL_RETRIES=7\nSHOTFLOW_LOCK_TIMEOUT=12.5\n")
    monkeypatch.setenv("SHOTFLOW_DOWNLOAD_ATTEMPTS", "2")
    monkeypatch.setenv("SHOTFLOW_FAL_WAIT_TIMEOUT", "none")
    monkeypatch.setenv("SHOTFLOW_FAL_START_TIMEOUT", "")
    monkeypatch.setenv("SHOTFLOW_EARLY_START", "0")
    settings = get_settings()
    assert (settings.fal_retries, settings.lock_timeout, settings.download_attempts) == (7, 12.5, 2)
    assert settings.fal_wait_timeout is None and settings.fal_start_timeout is None and settings.early_start is False


@pytest.mark.parametrize(
    "name, value, said",
    [
        ("SHOTFLOW_FAL_POLL_INTERVAL", "inf", "Input should be a finite number"),
        ("SHOTFLOW_FAL_RETRY_BACKOFF", "nan", "Input should be a finite number"),
        ("SHOTFLOW_MAX_DOWNLOAD_BYTES", "0", "greater than 0"),
        ("SHOTFLOW_DAILY_BUDGET", "-3", "greater than or equal to 0"),
        ("SHOTFLOW_FAL_START_TIMEOUT", "1", "greater than 1"),  # fal's minimum
        ("SHOTFLOW_FAL_WAIT_TIMEOUT", "0", "greater than 0"),
        ("SHOTFLOW_FAL_RETRIES", "-1", "greater than or equal to 0"),
        ("SHOTFLOW_DOWNLOAD_ATTEMPTS", "0", "greater than or equal to 1"),
        ("SHOTFLOW_DURATION_TOLERANCE", "inf", "finite number"),
        ("SHOTFLOW_MEDIA_RETENTION_DAYS", "nan", "finite number"),
        ("SHOTFLOW_DAILY_BUDGET", "Infinity", "finite number"),
        ("SHOTFLOW_EARLY_START", "maybe", "valid boolean"),
    ],
)
def test_a_bad_setting_is_one_line_naming_its_variable_and_never_the_key(monkeypatch, name, value, said):
    monkeypatch.setenv(name, value)
    monkeypatch.setenv("FAL_KEY", KEY)
    with pytest.raises(SettingsError) as info:
        get_settings()
    message = str(info.value)
    assert message.startswith(f"{name}: ") and said in message and "\n" not in message
    assert not any(part in message for part in KEY.split(":"))


def test_the_cache_dir_is_expanded_and_absolute_for_every_reader(monkeypatch, tmp_path):
    home, run = tmp_path / "home", tmp_path / "run"
    run.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SHOTFLOW_CACHE_DIR")
    monkeypatch.chdir(run)
    (run / ".env").write_text("SHOTFLOW_CACHE_DIR=~/.cache/shotflow\n")  # no shell expands a .env line
    assert get_settings().cache_dir == home / ".cache" / "shotflow"
    # a command that opens the store, as a user runs it: the home's store, nothing under ./~
    r = subprocess.run([sys.executable, "-m", "shotflow.cli", "ledger"], cwd=run, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (home / ".cache" / "shotflow" / "jobs").is_dir() and not (run / "~").exists()
    monkeypatch.setenv("SHOTFLOW_CACHE_DIR", "store/../cache")  # relative: under the folder the process starts in
    assert get_settings().cache_dir == run / "cache"
