"""FAL_KEY hygiene: surrounding whitespace stripped, a wrong shape refused without echoing it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError
from shotflow.tasks.secrets import fal_key

from shotflow.errors import KeyShapeError, MissingKeyError
from shotflow.generation.fal.key import clean_key, secret_parts
from shotflow.settings import Settings

KEY = "4f1c2d3e-aaaa-bbbb:9b8a7c6d5e4f3a2b1c0d"
KEY_ID, SECRET = KEY.split(":")


@pytest.mark.parametrize("raw", [KEY + "\n", KEY + "\r\n", "  " + KEY + "\t ", KEY])
def test_surrounding_whitespace_is_stripped(raw):
    assert clean_key(raw) == KEY


@pytest.mark.parametrize(
    "raw, why",
    [
        ("", "empty"),
        ("   \n", "empty"),
        (KEY_ID + SECRET, "no ':'"),
        (KEY + ":extra1234", "2 ':'"),
        (":" + SECRET, "key id before ':' is empty"),
        (KEY_ID + ":", "secret after ':' is empty"),
        (KEY_ID + ":" + SECRET[:6] + "\n" + SECRET[6:], "control character"),
        (KEY_ID + ":" + SECRET[:6] + "\x00" + SECRET[6:], "control character"),
        (KEY_ID + ": " + SECRET, "space"),
        (KEY_ID + ":" + SECRET + "é", "not printable ASCII"),
        (KEY_ID + ":" + SECRET + "\x7f", "control character"),
    ],
)
def test_wrong_shapes_are_refused_naming_fal_key_without_echo(raw, why):
    with pytest.raises(KeyShapeError) as info:
        clean_key(raw)
    message = str(info.value)
    assert isinstance(info.value, MissingKeyError)
    assert "FAL_KEY" in message and "KEY_ID:KEY_SECRET" in message and why in message
    for part in (KEY_ID, SECRET, SECRET[:6], SECRET[6:], KEY_ID[:6]):
        assert part not in message


def test_secret_parts_longest_first():
    assert secret_parts(KEY) == (KEY, SECRET, KEY_ID)
    # a part shorter than 6 characters is not scrubbed on its own (it would mangle messages)
    assert secret_parts("abc:" + SECRET) == ("abc:" + SECRET, SECRET)
    assert secret_parts(KEY + "\n") == (KEY + "\n", KEY, SECRET, KEY_ID)
    assert secret_parts("") == () and secret_parts(None) == ()


def test_settings_strip_the_key_and_read_the_new_fields(monkeypatch):
    monkeypatch.setenv("FAL_KEY", KEY + "\n")
    monkeypatch.setenv("SHOTFLOW_MEDIA_RETENTION_DAYS", "2.5")
    monkeypatch.setenv("SHOTFLOW_DAILY_BUDGET", "$12.50")
    s = Settings(_env_file=None)
    assert s.fal_key.get_secret_value() == KEY
    assert s.media_retention_days == 2.5 and s.daily_budget == Decimal("12.50")
    assert KEY not in repr(s) and SECRET not in str(s)


def test_settings_defaults(monkeypatch):
    for name in ("SHOTFLOW_MEDIA_RETENTION_DAYS", "SHOTFLOW_DAILY_BUDGET"):
        monkeypatch.delenv(name, raising=False)
    s = Settings(_env_file=None)
    assert s.media_retention_days == 7 and s.daily_budget is None and s.fal_key is None


def test_a_blank_key_is_no_key(monkeypatch):
    monkeypatch.setenv("FAL_KEY", " \n")
    s = Settings(_env_file=None)
    assert s.fal_key is None and fal_key(s) is None


@pytest.mark.parametrize(
    "name, value",
    [
        ("SHOTFLOW_MEDIA_RETENTION_DAYS", "0"),
        ("SHOTFLOW_MEDIA_RETENTION_DAYS", "-1"),
        ("SHOTFLOW_MEDIA_RETENTION_DAYS", "nan"),
        ("SHOTFLOW_MEDIA_RETENTION_DAYS", "inf"),
        ("SHOTFLOW_DAILY_BUDGET", "-1"),
        ("SHOTFLOW_DAILY_BUDGET", "nan"),
        ("SHOTFLOW_DAILY_BUDGET", "Infinity"),
        ("SHOTFLOW_DAILY_BUDGET", "lots"),
    ],
)
def test_bad_settings_are_refused(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name):
        Settings(_env_file=None)


def test_the_key_from_the_environment_is_cleaned(monkeypatch):
    monkeypatch.setenv("FAL_KEY", "  " + KEY + "\n")
    assert fal_key(Settings(_env_file=None)) == KEY
    monkeypatch.setenv("FAL_KEY", KEY_ID + SECRET)
    with pytest.raises(KeyShapeError) as info:
        fal_key(Settings(_env_file=None))
    assert "FAL_KEY" in str(info.value) and SECRET not in str(info.value)
