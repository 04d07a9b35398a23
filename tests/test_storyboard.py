"""Broken storyboards get clear errors naming the file and line, never a traceback."""

from __future__ import annotations

import re

import pytest

from shotflow.errors import StoryboardError
from shotflow.plan import load_plan
from shotflow.storyboard.validate import validate_file
from shotflow.storyboard.yamlsource import load_yaml

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
    assert load_yaml(path).line(("shots", 0, "prompt")) == 5
    valid = validate_file(path)
    assert valid.board.shots[0].id == "a" and valid.shots[0].line == 4 and valid.shots[0].body["prompt"] == "a cat"


def test_missing_file(tmp_path):
    with pytest.raises(StoryboardError, match=r"nope\.yaml: no such file"):
        load_plan(tmp_path / "nope.yaml")


# --- YAML syntax: plain words, the line and column, and a caret under the spot -----------------

PYYAML_WORDING = (
    "while parsing",
    "while scanning",
    "expected <block end>",
    "block mapping",
    "<scalar>",
    "could not find",
    "mapping values are not allowed",
    "cannot start any token",
    "flow sequence",
    "stream end",
)


@pytest.mark.parametrize(
    "text, where, said, caret_line",
    [
        pytest.param(
            "version: 1\nshots:\n  - id: a\n    prompt: [unclosed\n    model: kling\n",
            "4:13",
            "a list item is missing its closing ']': this '[' is never closed",
            "    prompt: [unclosed",
            id="unclosed [",
        ),
        pytest.param(
            "version: 1\nshots: [\n", "2:8", "this '[' is never closed (the file ends inside it)", "shots: [", id="[ at the end"
        ),
        pytest.param(
            "version: 1\nshots:\n  - {id: a, prompt: p, model: kling\n  - {id: b, prompt: q}\n",
            "3:5",
            "a mapping item is missing its closing '}'",
            "  - {id: a, prompt: p, model: kling",
            id="unclosed {",
        ),
        pytest.param('version: 1\ntags: ["a" "b"]\n', "2:12", "a ',' is missing here", 'tags: ["a" "b"]', id="missing comma"),
        pytest.param(
            'version: 1\ntitle: "hello\nshots: []\n',
            "2:8",
            'this " opens a quoted value that is never closed',
            'title: "hello',
            id='unclosed "',
        ),
        pytest.param(
            "version: 1\ntitle: 'it's bad'\n", "2:12", "text after the closing quote", "title: 'it's bad'", id="quote in quotes"
        ),
        pytest.param("version: 1\nshots:\n\t- id: a\n", "3:1", "a tab: YAML indents with spaces only", " - id: a", id="tab"),
        pytest.param(
            "version: 1\nshots:\n  - id: a\n     prompt: x\n",
            "4:6",
            "'prompt:' is indented more than the line above",
            "     prompt: x",
            id="indented too far",
        ),
        pytest.param(
            "version: 1\nshots:\n  - id: a\n    prompt: x\n   model: kling\n",
            "5:4",
            "this line is not indented like the lines around it",
            "   model: kling",
            id="indented too little",
        ),
        pytest.param("version: 1\ntitle\nshots: []\n", "2:1", "'title' has no ':' after it", "title", id="key without colon"),
        pytest.param(
            "version: 1\nshots:\n  - id: a\n    prompt: a cat: sitting\n",
            "4:18",
            "a ': ' inside the value of 'prompt': put the whole value in quotes, e.g. prompt: \"a cat: sitting\"",
            "    prompt: a cat: sitting",
            id="colon in value",
        ),
        pytest.param(
            'version: 1\ntitle: "C:\\path"\n', "2:12", "'\\p' is not one: use single quotes", 'title: "C:\\path"', id="escape"
        ),
        pytest.param("version: 1\nshots: [a]]\n", "2:11", "a ']' with no '[' before it to close", "shots: [a]]", id="extra ]"),
        pytest.param(
            "version: 1\ntitle: @home\n", "2:8", "a value cannot start with '@' unless it is in quotes", "title: @home", id="@"
        ),
        pytest.param("version: 1\n---\nshots: []\n", "2:1", "a second document starts here", "---", id="two documents"),
        pytest.param("version: 1\ntitle: a\x07b\n", "2:9", "a control character (U+0007)", "title: a b", id="control character"),
    ],
)
def test_yaml_syntax_errors_in_plain_words_with_a_caret(tmp_path, text, where, said, caret_line):
    (msg,) = errors(tmp_path, text)
    head, shown, caret = msg.split("\n")
    assert head.startswith(f"{tmp_path / 'sb.yaml'}:{where}: ") and said in head, msg
    line, column = (int(x) for x in where.split(":"))
    gutter = f"{line:>5} | "
    assert shown == gutter + caret_line
    assert caret == " " * (len(gutter) - 2) + "| " + " " * (column - 1) + "^"
    assert not any(words in msg for words in PYYAML_WORDING), msg


def test_a_long_line_is_cut_around_the_spot(tmp_path):
    text = "version: 1\nshots:\n  - id: a\n    prompt: " + "word " * 60 + "then: a colon " + "word " * 60 + "\n"
    (msg,) = errors(tmp_path, text)
    _, shown, caret = msg.split("\n")
    assert shown.startswith("    4 | ...") and shown.endswith("...") and len(shown) <= 8 + 100
    assert shown[caret.index("^")] == ":"


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
@pytest.mark.parametrize(
    "value, said",
    [(".nan", "NaN (not a number) is not allowed"), (".inf", "infinity is not allowed"), ("-.inf", "-infinity is not allowed")],
)
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


# --- schedules: the kinds have one home, Schedule in the schema ------------------------------


@pytest.mark.parametrize(
    "given, kind, said, setting",
    [
        ({"cron": "0 9 * * 1-5"}, "cron", "0 9 * * 1-5 (Europe/Paris)", ("cron", "0 9 * * 1-5")),
        ({"interval": 3600}, "interval", "every 3600 s (Europe/Paris)", ("interval", 3600)),
        ({"rrule": "FREQ=WEEKLY;BYDAY=MO"}, "rrule", "FREQ=WEEKLY;BYDAY=MO (Europe/Paris)", ("rrule", "FREQ=WEEKLY;BYDAY=MO")),
    ],
)
def test_a_schedule_says_its_kind_when_and_prefect_settings(given, kind, said, setting):
    from shotflow.storyboard.schema import SCHEDULE_KINDS, Schedule

    schedule = Schedule(**given, timezone="Europe/Paris", active=False)
    assert schedule.kind == kind and kind in SCHEDULE_KINDS
    assert schedule.describe() == said
    assert schedule.settings() == {"timezone": "Europe/Paris", "active": False, setting[0]: setting[1]}


@pytest.mark.parametrize("kind, bad", [("cron", "61 * * * *"), ("rrule", "FREQ=SOMETIMES")])
def test_a_schedule_that_cannot_be_read_is_refused_naming_its_kind(kind, bad):
    from pydantic import ValidationError

    from shotflow.storyboard.schema import Schedule

    with pytest.raises(ValidationError, match=re.escape(f"invalid {kind} '{bad}'")):
        Schedule(**{kind: bad})


def test_a_valid_storyboard_keeps_the_file_as_written_and_fills_the_run(tmp_path):
    """The deployment reads the schedule, vars and title as written; a run's plan gets them filled."""
    path = tmp_path / "sb.yaml"
    path.write_text(
        "version: 1\ntitle: 'News: {{ topic }}'\nschedule: {interval: 3600}\nvars: {topic: harbour}\n"
        "shots:\n  - {id: a, prompt: 'the {{ topic }}', model: kling}\n"
    )
    valid = validate_file(path, vars={"topic": "dusk"})
    assert valid.written.title == "News: {{ topic }}" and valid.written.schedule.kind == "interval"
    assert valid.board.title == "News: dusk" and valid.shots[0].body["prompt"] == "the dusk"
