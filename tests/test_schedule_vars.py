"""schedule: and vars: in storyboards: bad schedules and bad vars fail validation clearly."""

from __future__ import annotations

from datetime import datetime

import pytest

from shotflow.errors import StoryboardError
from shotflow.plan import plan_from_data, plan_from_text

BASE = """\
version: 1
title: "Harbour {{ topic }} {{ date }}"
schedule:
  cron: "0 9 * * 1-5"
  timezone: Europe/Paris
vars:
  topic: the harbour at dawn
output:
  path: "out/harbour-{{ date }}.mp4"
shots:
  - id: a
    prompt: "A drone shot of {{ topic }}"
    model: kling
"""


def problems(text: str, **kw) -> list[str]:
    with pytest.raises(StoryboardError) as info:
        plan_from_text(text, "sb.yaml", **kw)
    return [str(p) for p in info.value.problems]


def test_vars_fill_prompts_titles_and_paths_with_the_run_date():
    plan = plan_from_text(BASE, "sb.yaml")
    today = datetime.now().strftime("%Y-%m")
    assert plan.shots[0].body["prompt"] == "A drone shot of the harbour at dawn"
    assert plan.title.startswith("Harbour the harbour at dawn " + today)
    assert plan.output.path.startswith("out/harbour-" + today)


def test_overrides_change_the_body_and_so_the_clip():
    a = plan_from_text(BASE, "sb.yaml")
    b = plan_from_text(BASE, "sb.yaml", vars={"topic": "the harbour at dusk"})
    assert b.shots[0].body["prompt"] == "A drone shot of the harbour at dusk"
    assert a.shots[0].body_hash != b.shots[0].body_hash


def test_unknown_placeholder_is_an_error_naming_the_line():
    (msg,) = problems(BASE.replace('{{ topic }}"\n    model', '{{ subject }}"\n    model'))
    assert msg.startswith("sb.yaml:12: shot 'a': unknown placeholder {{ subject }}")


def test_malformed_placeholder():
    (msg,) = problems(BASE.replace('{{ topic }}"\n    model', '{{ topic | upper }}"\n    model'))
    assert "is not a placeholder" in msg


def test_override_of_an_undeclared_var():
    (msg,) = problems(BASE, vars={"topik": "x"})
    assert "no var 'topik' to override (declared: topic)" in msg


def test_invalid_cron():
    (msg,) = problems(BASE.replace("0 9 * * 1-5", "0 25 * * *"))
    assert msg.startswith("sb.yaml:4:") and "invalid cron '0 25 * * *'" in msg


def test_unknown_timezone():
    (msg,) = problems(BASE.replace("Europe/Paris", "Mars/Olympus"))
    assert msg.startswith("sb.yaml:5:") and "unknown timezone 'Mars/Olympus'" in msg


def test_two_kinds_of_schedule():
    (msg,) = problems(BASE.replace("  timezone", "  interval: 3600\n  timezone"))
    assert "exactly one of cron, interval or rrule (got cron, interval)" in msg


def test_interval_and_rrule():
    plan_from_text(BASE.replace('cron: "0 9 * * 1-5"', "interval: 3600"), "sb.yaml")
    plan_from_text(BASE.replace('cron: "0 9 * * 1-5"', 'rrule: "FREQ=WEEKLY;BYDAY=MO"'), "sb.yaml")
    (msg,) = problems(BASE.replace('cron: "0 9 * * 1-5"', 'rrule: "FREQ=SOMETIMES"'))
    assert "invalid rrule" in msg


def test_reserved_var_name():
    (msg,) = problems(BASE.replace("  topic: the", "  date: x\n  topic: the"))
    assert "'date' is set by each run" in msg


def test_inline_storyboard_is_validated_the_same_way():
    plan = plan_from_data({"version": 1, "shots": [{"id": "a", "prompt": "p", "model": "veo3"}]})
    assert plan.shots[0].endpoint == "fal-ai/veo3"
    with pytest.raises(StoryboardError, match=r"<inline storyboard>: shot 'a': kling-2.0-master renders 5 or 10 s"):
        plan_from_data({"version": 1, "shots": [{"id": "a", "prompt": "p", "model": "kling", "duration": 7}]})


# --- empty and odd var values: a clear error naming the var, never a pydantic traceback -----


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_override_names_the_var(value):
    (msg,) = problems(BASE, vars={"topic": value})
    assert msg == "sb.yaml:7: var 'topic': the value given for this run is empty: give it a value (e.g. --var topic=...)"


def test_an_empty_declared_var_used_in_a_prompt_names_the_var_and_the_use():
    (msg,) = problems(BASE.replace("  topic: the harbour at dawn", "  topic: ''"))
    assert msg == "sb.yaml:7: var 'topic' is empty but {{ topic }} is used in title: give it a value"


def test_an_empty_var_in_the_prompt_only_is_named_with_the_shot():
    text = BASE.replace('title: "Harbour {{ topic }} {{ date }}"', "title: Harbour")
    (msg,) = problems(text.replace("  topic: the harbour at dawn", "  topic: ''"))
    assert msg == "sb.yaml:7: shot 'a': var 'topic' is empty but {{ topic }} is used in prompt: give it a value"


def test_an_empty_var_in_the_output_path():
    text = BASE.replace("  topic: the harbour at dawn", "  topic: x\n  tag: ''").replace(
        "harbour-{{ date }}", "harbour-{{ tag }}"
    )
    (msg,) = problems(text)
    assert "var 'tag' is empty but {{ tag }} is used in output.path" in msg


def test_an_empty_var_nobody_uses_is_fine():
    plan_from_text(BASE.replace("  topic: the harbour at dawn", "  topic: x\n  unused: ''"), "sb.yaml")


@pytest.mark.parametrize(
    "value, said",
    [
        (float("nan"), "is nan: give a finite number"),
        (float("inf"), "is inf: give a finite number"),
        (True, "is a bool"),
        ([1], "is a list"),
    ],
)
def test_odd_override_values_are_refused(value, said):
    (msg,) = problems(BASE, vars={"topic": value})
    assert f"var 'topic': the value given for this run {said}" in msg


def test_every_var_problem_is_reported_with_the_others():
    msgs = problems(BASE.replace("model: kling", "model: kling\n    duration: 7"), vars={"topic": "", "topik": "x"})
    assert len(msgs) == 3 and "renders 5 or 10 s" in msgs[-1]


def test_vars_filled_into_paths_are_recorded_for_the_preflight():
    text = BASE.replace('harbour-{{ date }}.mp4"', '{{ topic }}/harbour-{{ date }}.mp4"\n  audio: {path: "{{ topic }}.mp3"}')
    with pytest.raises(StoryboardError):  # the soundtrack does not exist; the vars are still filled
        plan_from_text(text, "sb.yaml")
    plan = plan_from_text(BASE, "sb.yaml", out="videos/{{ topic }}.mp4", vars={"topic": "dusk"})
    # --out replaces output.path: only its vars go into the path
    assert [(v.name, v.value, v.where) for v in plan.path_vars] == [("topic", "dusk", "--out")]
    assert plan.output.path == "videos/dusk.mp4"
    plan = plan_from_text(BASE, "sb.yaml")
    assert [(v.name, v.where, v.line) for v in plan.path_vars] == [("date", "output.path", 9)]


def test_the_soundtrack_path_takes_vars(tmp_path):
    (tmp_path / "dawn.mp3").write_bytes(b"")
    sb = tmp_path / "sb.yaml"
    text = BASE.replace("  topic: the harbour at dawn", "  topic: dawn").replace(
        '.mp4"', '.mp4"\n  audio: {path: "{{ topic }}.mp3"}'
    )
    plan = plan_from_text(text, str(sb))
    assert plan.output.soundtrack == str(tmp_path / "dawn.mp3")
    assert ("topic", "dawn", "output.audio.path") in [(v.name, v.value, v.where) for v in plan.path_vars]
