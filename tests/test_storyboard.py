"""Broken storyboards get clear errors naming the file and line, never a traceback."""

from __future__ import annotations

import pytest

from shotflow.errors import StoryboardError
from shotflow.plan import load_plan
from shotflow.storyboard import read_storyboard

GOOD = """\
version: 1
title: Good
shots:
  - id: a
    prompt: a cat
    model: kling
"""


def errors(tmp_path, text: str | bytes, name="sb.yaml") -> list[str]:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(StoryboardError) as info:
        load_plan(path)
    return [str(p) for p in info.value.problems]


def test_good_file_reads(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    board, located = read_storyboard(path)
    assert board.shots[0].id == "a" and located.line(("shots", 0, "prompt")) == 5


def test_missing_file(tmp_path):
    with pytest.raises(StoryboardError, match=r"nope\.yaml: no such file"):
        load_plan(tmp_path / "nope.yaml")


def test_malformed_yaml_names_the_line(tmp_path):
    (msg,) = errors(tmp_path, "version: 1\nshots:\n  - id: a\n    prompt: [unclosed\n    model: kling\n")
    assert msg.startswith(f"{tmp_path}/sb.yaml:") and "not valid YAML" in msg


def test_tab_indentation(tmp_path):
    (msg,) = errors(tmp_path, "version: 1\nshots:\n\t- id: a\n")
    assert "sb.yaml:3" in msg and "not valid YAML" in msg


def test_not_a_mapping(tmp_path):
    (msg,) = errors(tmp_path, "- just\n- a list\n")
    assert msg.endswith("sb.yaml:1: a storyboard is a mapping (version:, shots:, ...), not a list")


def test_empty_file(tmp_path):
    (msg,) = errors(tmp_path, "# nothing here\n")
    assert "the file is empty" in msg


def test_duplicate_keys_are_errors_not_last_wins(tmp_path):
    (msg,) = errors(tmp_path, GOOD + "    model: veo3\n")
    assert msg.endswith("sb.yaml:7: duplicate key 'model' (first at line 6)")


def test_duplicate_shot_ids_case_insensitive(tmp_path):
    (msg,) = errors(tmp_path, GOOD + "  - id: A\n    prompt: again\n    model: kling\n")
    assert "sb.yaml:7: shot 'A': duplicate shot id (also at line 4 as 'a')" in msg


@pytest.mark.parametrize("bad_id", ["../escape", "has space", "a/b", ".hidden", "x" * 65, "ünï"])
def test_unsafe_shot_ids(tmp_path, bad_id):
    (msg,) = errors(tmp_path, GOOD.replace("id: a", f"id: {bad_id!r}"))
    assert "sb.yaml:4" in msg and "not safe as a file name" in msg


def test_duplicate_ids_are_reported_with_shape_errors(tmp_path):
    msgs = errors(tmp_path, GOOD + "  - id: a\n    prompt: 42\n    model: kling\n")
    assert any("duplicate shot id" in m for m in msgs) and any("prompt: Input should be a valid string" in m for m in msgs)


def test_empty_prompt(tmp_path):
    (msg,) = errors(tmp_path, GOOD.replace("prompt: a cat", "prompt: '   '"))
    assert "sb.yaml:5: shot 'a': prompt: the prompt is empty" in msg


def test_prompt_of_the_wrong_type(tmp_path):
    (msg,) = errors(tmp_path, GOOD.replace("prompt: a cat", "prompt: 42"))
    assert "sb.yaml:5: shot 'a': prompt: Input should be a valid string" in msg


def test_unknown_top_level_field(tmp_path):
    (msg,) = errors(tmp_path, GOOD + "colour: blue\n")
    assert msg.endswith("sb.yaml:7: unknown field 'colour'")


def test_unknown_version(tmp_path):
    (msg,) = errors(tmp_path, GOOD.replace("version: 1", "version: 2"))
    assert "sb.yaml:1" in msg and "version" in msg and "not 2" in msg


def test_missing_version_and_shots(tmp_path):
    msgs = errors(tmp_path, "title: nothing\n")
    assert any("'version' is required" in m for m in msgs) and any("'shots' is required" in m for m in msgs)


def test_no_shots(tmp_path):
    (msg,) = errors(tmp_path, "version: 1\nshots: []\n")
    assert "shots" in msg and "at least 1" in msg


def test_huge_file_refused_before_parsing(tmp_path):
    (msg,) = errors(tmp_path, GOOD + "#" + "x" * (1 << 20) + "\n")
    assert "a storyboard may be at most" in msg


def test_deeply_nested_file(tmp_path):
    (msg,) = errors(tmp_path, GOOD.replace("model: kling", "params: " + "[" * 5000 + "]" * 5000))
    assert "nested" in msg


def test_alias_bomb(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    (msg,) = errors(tmp_path, "\n".join(lines) + "\n")
    assert "refusing to expand" in msg


def test_not_utf8(tmp_path):
    (msg,) = errors(tmp_path, b"version: 1\ntitle: \xff\xfe\n")
    assert "not UTF-8" in msg


def test_a_directory(tmp_path):
    with pytest.raises(StoryboardError, match="is a directory"):
        load_plan(tmp_path)


def test_shipped_pipelines_are_valid():
    from pathlib import Path

    files = sorted((Path(__file__).parents[1] / "pipelines").glob("*.yaml"))
    assert len(files) >= 3
    for f in files:
        load_plan(f)


# --- numbers: NaN, infinity and huge whole numbers are refused wherever they are ------------

NUMBERS = """\
version: 1
title: Numbers
schedule: {interval: INTERVAL}
vars: {n: VAR}
output:
  fps: FPS
  transition: {type: crossfade, seconds: SECONDS}
  audio: {path: music.mp3, volume: VOLUME}
shots:
  - id: a
    prompt: a cat
    model: kling
    duration: DURATION
    params: {cfg_scale: CFG}
  - id: b
    prompt: a dog
    model: veo3
    seed: SEED
"""
GOOD_NUMBERS = dict(INTERVAL="3600", VAR="1", FPS="24", SECONDS="0.5", VOLUME="1", DURATION="5", CFG="0.5", SEED="7")


def numbers(tmp_path, **bad) -> list[str]:
    text = NUMBERS
    for name, value in {**GOOD_NUMBERS, **bad}.items():
        text = text.replace(name, value)
    (tmp_path / "music.mp3").write_bytes(b"")
    return errors(tmp_path, text)


@pytest.mark.parametrize(
    "field, name, line, shot",
    [
        ("INTERVAL", "schedule.interval", 3, None),
        ("VAR", "vars.n", 4, None),
        ("FPS", "output.fps", 6, None),
        ("SECONDS", "output.transition.seconds", 7, None),
        ("VOLUME", "output.audio.volume", 8, None),
        ("DURATION", "duration", 13, "a"),
        ("CFG", "params.cfg_scale", 14, "a"),
        ("SEED", "seed", 18, "b"),
    ],
)
@pytest.mark.parametrize("value, said", [(".nan", "NaN (not a number) is not allowed"), (".inf", "infinity is not allowed"), ("-.inf", "-infinity is not allowed")])
def test_nan_and_infinity_are_refused_everywhere(tmp_path, field, name, line, shot, value, said):
    (msg,) = numbers(tmp_path, **{field: value})
    who = f" shot '{shot}':" if shot else ""
    assert msg == f"{tmp_path / 'sb.yaml'}:{line}:{who} {name}: {said}: give a finite number"


@pytest.mark.parametrize("field, name, shot", [("SEED", "seed", "b"), ("CFG", "params.cfg_scale", "a"), ("VAR", "vars.n", None)])
def test_whole_numbers_beyond_int64_are_refused(tmp_path, field, name, shot):
    (msg,) = numbers(tmp_path, **{field: str(2**63)})
    assert f"{name}: 9223372036854775808 is outside the 64-bit integer range (-9223372036854775808 to 9223372036854775807)" in msg
    assert (f"shot '{shot}'" in msg) is bool(shot)


def test_int64_bounds_themselves_are_accepted(tmp_path):
    path = tmp_path / "sb.yaml"
    path.write_text(GOOD.replace("model: kling", f"model: veo3\n    seed: {2**63 - 1}"))
    assert load_plan(path).shots[0].body["seed"] == 2**63 - 1
    path.write_text(GOOD.replace("model: kling", f"model: veo3\n    seed: {-(2**63)}"))
    assert load_plan(path).shots[0].body["seed"] == -(2**63)


def test_nan_in_a_nested_param_list_names_its_position(tmp_path):
    (msg,) = errors(tmp_path, GOOD + "    params: {cfg_scale: [1, .nan]}\n")
    assert "shot 'a': params.cfg_scale[1]: NaN (not a number) is not allowed" in msg


def test_numbers_out_of_their_range_name_the_bound(tmp_path):
    msgs = numbers(tmp_path, INTERVAL=str(10**12), FPS="61", SECONDS="9", VOLUME="5", DURATION="61")
    text = "\n".join(msgs)
    assert "schedule.interval: Input should be less than or equal to 315360000" in text
    assert "output.fps: Input should be less than or equal to 60" in text
    assert "output.transition.seconds: Input should be less than or equal to 5" in text
    assert "output.audio.volume: Input should be less than or equal to 4" in text
    assert "shot 'a': duration: Input should be less than or equal to 60" in text


def test_every_number_problem_of_the_file_is_reported(tmp_path):
    msgs = numbers(tmp_path, FPS=".nan", SEED=str(2**64), CFG=".inf")
    assert len(msgs) == 3 and [m.split(":")[1] for m in msgs] == ["6", "14", "18"]


def test_nan_written_as_a_string_is_refused_too(tmp_path):
    (msg,) = numbers(tmp_path, VOLUME="'nan'")
    assert "output.audio.volume: Input should be a finite number" in msg
