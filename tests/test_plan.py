"""Shot -> request body, per endpoint: exact, and never a silent snap or drop."""

from __future__ import annotations

import textwrap

import pytest

from shotflow.errors import StoryboardError
from shotflow.plan import plan_from_text


def board(shots: str, defaults: str = "", output: str = "") -> str:
    text = "version: 1\ntitle: t\n"
    if defaults:
        text += "defaults:\n" + textwrap.indent(textwrap.dedent(defaults).strip(), "  ") + "\n"
    if output:
        text += "output:\n" + textwrap.indent(textwrap.dedent(output).strip(), "  ") + "\n"
    return text + "shots:\n" + textwrap.indent(textwrap.dedent(shots).strip(), "  ") + "\n"


def one(shot: str, **kw):
    plan = plan_from_text(board(shot, **kw), "sb.yaml")
    assert len(plan.shots) == 1
    return plan.shots[0]


def problems(text: str) -> list[str]:
    with pytest.raises(StoryboardError) as info:
        plan_from_text(text, "sb.yaml")
    return [str(p) for p in info.value.problems]


# --- one exact body per endpoint ----------------------------------------------------------


def test_kling_body():
    s = one("- {id: a, prompt: p, model: kling-2.0-master, duration: 10, aspect_ratio: '9:16', params: {cfg_scale: 0.7}}")
    assert s.endpoint == "fal-ai/kling-video/v2/master/text-to-video"
    assert s.body == {
        "prompt": "p",
        "duration": "10",
        "aspect_ratio": "9:16",
        "negative_prompt": "blur, distort, and low quality",
        "cfg_scale": 0.7,
    }


def test_seedance_body():
    s = one("- {id: a, prompt: p, model: seedance, duration: 5, resolution: 480p, seed: 7, params: {camera_fixed: true}}")
    assert s.body == {
        "prompt": "p",
        "aspect_ratio": "16:9",
        "resolution": "480p",
        "duration": "5",
        "camera_fixed": True,
        "seed": 7,
    }


def test_pixverse_v4_fast_body_has_no_duration():
    s = one("- {id: a, prompt: p, model: pixverse-v4-fast, duration: 5, resolution: 540p, params: {style: anime}}")
    assert s.body == {"prompt": "p", "aspect_ratio": "16:9", "resolution": "540p", "negative_prompt": "", "style": "anime"}
    assert s.seconds == 5


def test_pixverse_v45_body():
    s = one("- {id: a, prompt: p, model: fal-ai/pixverse/v4.5/text-to-video, duration: 8, aspect_ratio: '4:3'}")
    assert s.body == {"prompt": "p", "aspect_ratio": "4:3", "resolution": "720p", "duration": "8", "negative_prompt": ""}


def test_wan_pro_body_is_prompt_seed_and_safety_only():
    s = one("- {id: a, prompt: p, model: wan-pro, seed: 3}")
    assert s.body == {"prompt": "p", "seed": 3, "enable_safety_checker": True}
    assert (s.seconds, s.resolution, s.width, s.height, s.fps) == (6, "1080p", 1920, 1080, 30)


def test_luma_body_encodes_seconds_with_s():
    s = one("- {id: a, prompt: p, model: luma, duration: 9, resolution: 1080p, aspect_ratio: '9:21', params: {loop: true}}")
    assert s.body == {"prompt": "p", "aspect_ratio": "9:21", "loop": True, "resolution": "1080p", "duration": "9s"}


def test_pika_duration_is_an_integer():
    s = one("- {id: a, prompt: p, model: pika-2.2, duration: 5}")
    assert s.body == {"prompt": "p", "negative_prompt": "", "aspect_ratio": "16:9", "resolution": "720p", "duration": 5}
    assert type(s.body["duration"]) is int


def test_hailuo_body():
    s = one("- {id: a, prompt: p, model: hailuo-02, duration: 10, params: {prompt_optimizer: false}}")
    assert s.body == {"prompt": "p", "duration": "10", "prompt_optimizer": False}
    assert (s.width, s.height, s.fps) == (1366, 768, 25)


def test_veo3_body_and_audio():
    s = one("- {id: a, prompt: p, model: fal-ai/veo3, duration: 8, resolution: 1080p}")
    assert s.body == {
        "prompt": "p",
        "aspect_ratio": "16:9",
        "duration": "8s",
        "enhance_prompt": True,
        "resolution": "1080p",
        "generate_audio": True,
    }
    assert s.audio is True
    silent = one("- {id: a, prompt: p, model: veo3, params: {generate_audio: false}}")
    assert silent.audio is False and silent.cost < s.cost


def test_veo2_body():
    s = one("- {id: a, prompt: p, model: veo2, duration: 7, negative_prompt: rain}")
    assert s.body == {"prompt": "p", "aspect_ratio": "16:9", "duration": "7s", "negative_prompt": "rain", "enhance_prompt": True}


def test_model_default_duration_when_the_storyboard_gives_none():
    assert one("- {id: a, prompt: p, model: veo3}").seconds == 8
    assert one("- {id: a, prompt: p, model: hailuo-02}").seconds == 6
    assert one("- {id: a, prompt: p, model: wan-pro}").seconds == 6


# --- what must be refused, with what the model accepts ------------------------------------


def test_seven_seconds_on_kling():
    (msg,) = problems(board("- id: a\n  prompt: p\n  model: kling-2.0-master\n  duration: 7"))
    assert msg == "sb.yaml:7: shot 'a': kling-2.0-master renders 5 or 10 s clips, not 7 s"


def test_fractional_seconds():
    (msg,) = problems(board("- {id: a, prompt: p, model: kling, duration: 5.5}"))
    assert "whole seconds (5 or 10 s), not 5.5" in msg


def test_four_three_on_veo3_from_defaults_names_the_defaults_line():
    (msg,) = problems(board("- {id: a, prompt: p, model: veo3}", defaults="aspect_ratio: '4:3'"))
    assert "shot 'a': veo3 takes aspect ratio 16:9, 9:16 or 1:1, not 4:3 (from defaults.aspect_ratio at line 4)" in msg


def test_inherited_aspect_ratio_is_not_forced_on_a_model_without_the_field():
    s = one("- {id: a, prompt: p, model: hailuo-02}", defaults="aspect_ratio: '9:16'")
    assert "aspect_ratio" not in s.body and s.aspect_ratio == "16:9"


def test_explicit_aspect_ratio_on_a_model_without_the_field_is_refused():
    (msg,) = problems(board("- {id: a, prompt: p, model: wan-pro, aspect_ratio: '9:16'}"))
    assert "wan-pro has no aspect_ratio field and always renders 16:9, not 9:16" in msg


def test_pixverse_45_1080p_for_8_seconds():
    (msg,) = problems(board("- {id: a, prompt: p, model: pixverse-v4.5, duration: 8, resolution: 1080p}"))
    assert "cannot render 1080p for 8 s" in msg


def test_seedance_at_720p_is_not_silently_upgraded():
    (msg,) = problems(board("- {id: a, prompt: p, model: seedance}", output="resolution: 720p"))
    assert "seedance-1.0-pro renders 480p or 1080p, not 720p (from output.resolution at line 4)" in msg
    assert "set resolution: to one of 480p or 1080p" in msg


def test_duration_on_a_model_without_a_duration_field():
    (msg,) = problems(board("- {id: a, prompt: p, model: wan-pro, duration: 5}"))
    assert "always renders 6 s, not 5 s" in msg


def test_unknown_param_lists_the_model_fields():
    (msg,) = problems(board("- id: a\n  prompt: p\n  model: veo3\n  params:\n    generate_sound: false"))
    assert msg.startswith("sb.yaml:8: shot 'a': params.generate_sound: veo3 has no such field")
    assert "generate_audio" in msg


def test_param_of_the_wrong_type():
    (msg,) = problems(board("- id: a\n  prompt: p\n  model: kling\n  params:\n    cfg_scale: 'high'"))
    assert "sb.yaml:8: shot 'a': params.cfg_scale:" in msg and "'high'" in msg


def test_bool_is_not_an_int_for_a_seed_param():
    (msg,) = problems(board("- {id: a, prompt: p, model: pika, params: {negative_prompt: 3}}"))
    assert "negative_prompt" in msg


def test_params_may_not_override_mapped_fields():
    (msg,) = problems(board("- {id: a, prompt: p, model: kling, params: {duration: '10'}}"))
    assert "params.duration: set duration: on the shot, not in params" in msg


def test_seed_on_a_model_without_seed():
    (msg,) = problems(board("- {id: a, prompt: p, model: kling, seed: 4}"))
    assert "kling-2.0-master takes no seed" in msg


def test_every_problem_is_reported_not_just_the_first():
    msgs = problems(
        board(
            """
            - {id: a, prompt: p, model: kling, duration: 7}
            - {id: b, prompt: p, model: veo3, aspect_ratio: '4:3'}
            - {id: c, prompt: p, model: nope}
            - {id: d, prompt: p}
            """
        )
    )
    assert [m.split(":", 3)[2].strip() for m in msgs] == ["shot 'a'", "shot 'b'", "shot 'c'", "shot 'd'"]
    assert "unknown model 'nope'" in msgs[2]
    assert "no model" in msgs[3]


def test_crossfade_longer_than_a_clip():
    msgs = problems(
        board(
            "- {id: a, prompt: p, model: kling, duration: 5}\n- {id: b, prompt: p, model: kling}",
            output="transition: {type: crossfade, seconds: 5}",
        )
    )
    assert msgs == [
        f"sb.yaml:4: shot 'b': output.transition: the 5 s crossfade from 'a' into 'b' does not fit in shot '{x}' (5 s): "
        "a transition must be shorter than both shots it joins"
        for x in "ab"
    ]


def test_a_middle_clip_must_outlast_both_of_its_crossfades():
    shots = "\n".join(f"- {{id: s{i}, prompt: p, model: kling, duration: 5}}" for i in range(3))
    (msg,) = problems(board(shots, output="transition: {type: crossfade, seconds: 3}"))
    assert "shot 's1': a 5 s clip cannot hold the 3 s crossfade into it and the 3 s crossfade out of it" in msg


def test_a_single_shot_has_no_crossfade_to_hold():
    one("- {id: a, prompt: p, model: kling, duration: 5}", output="transition: {type: crossfade, seconds: 5}")


def test_duplicate_ids_do_not_hide_other_problems():
    msgs = problems(
        board("- {id: a, prompt: p, model: kling, duration: 7}\n- {id: A, prompt: p, model: kling, params: {foo: 1}}")
    )
    assert len(msgs) == 3
    assert "renders 5 or 10 s clips, not 7 s" in msgs[0]
    assert "duplicate shot id" in msgs[1] and "params.foo" in msgs[2]


def test_missing_soundtrack_file():
    msgs = problems(board("- {id: a, prompt: p, model: kling}", output="audio: {path: nowhere.mp3}"))
    assert "output.audio.path: no such file" in msgs[0]


def test_final_duration_subtracts_crossfades():
    plan = plan_from_text(
        board(
            "- {id: a, prompt: p, model: kling}\n- {id: b, prompt: p, model: veo3}",
            output="transition: {type: crossfade, seconds: 0.5}",
        ),
        "sb.yaml",
    )
    assert plan.generated_seconds == 13 and plan.final_seconds == 12.5


def test_body_hash_changes_with_the_body_only():
    a = one("- {id: a, prompt: p, model: kling}")
    b = one("- {id: other-id, prompt: p, model: kling}")
    c = one("- {id: a, prompt: q, model: kling}")
    assert a.body_hash == b.body_hash != c.body_hash


def test_a_crossfade_must_be_a_whole_number_of_frames():
    (msg,) = problems(board("- {id: a, prompt: p, model: kling}", output="fps: 25\ntransition: {type: crossfade, seconds: 0.5}"))
    assert "a 0.5 s crossfade is 12.5 frames at 25 fps; use a whole number of frames, e.g. 0.48 or 0.52 s" in msg


# --- numbers and enums: what the seed states is enforced, elsewhere sane bounds ------------


@pytest.mark.parametrize(
    "params, said",
    [
        (
            "{style: watercolor}",
            "params.style: Input should be 'anime', '3d_animation', 'clay', 'comic' or 'cyberpunk' (got 'watercolor')",
        ),
        ("{style: 3}", "params.style: Input should be 'anime'"),
    ],
)
def test_an_enum_param_outside_the_seed_enum_is_refused(params, said):
    (msg,) = problems(board(f"- {{id: a, prompt: p, model: pixverse-v4.5, params: {params}}}"))
    assert msg.startswith("sb.yaml:4: shot 'a': ") and said in msg


def test_inline_storyboards_refuse_nan_infinity_and_huge_numbers_too():
    from shotflow.plan import plan_from_data

    data = {
        "version": 1,
        "shots": [
            {"id": "a", "prompt": "p", "model": "kling", "params": {"cfg_scale": float("nan")}},
            {"id": "b", "prompt": "p", "model": "veo3", "seed": -(2**63) - 1},
            {"id": "c", "prompt": "p", "model": "kling", "duration": float("inf")},
        ],
    }
    with pytest.raises(StoryboardError) as info:
        plan_from_data(data)
    msgs = [str(p) for p in info.value.problems]
    assert "<inline storyboard>: shot 'a': params.cfg_scale: NaN (not a number) is not allowed: give a finite number" in msgs
    assert any("shot 'b': seed: -9223372036854775809 is outside the 64-bit integer range" in m for m in msgs)
    assert "<inline storyboard>: shot 'c': duration: infinity is not allowed: give a finite number" in msgs


def test_the_model_input_classes_refuse_what_slips_past_the_storyboard():
    from pydantic import ValidationError

    from shotflow.catalog import find_model

    kling, veo3 = find_model("kling").input, find_model("veo3").input
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ValidationError, match="finite number"):
            kling.model_validate({"prompt": "p", "cfg_scale": bad})
    with pytest.raises(ValidationError, match="64-bit integer range"):
        veo3.model_validate({"prompt": "p", "seed": 2**63})
    assert veo3.model_validate({"prompt": "p", "seed": -1}).seed == -1


@pytest.mark.parametrize("max_cost", [float("nan"), float("inf"), -1, "lots"])
def test_a_budget_that_is_not_an_amount_is_refused(max_cost):
    from shotflow.errors import BudgetError
    from shotflow.plan import check_budget

    plan = plan_from_text(board("- {id: a, prompt: p, model: kling}"), "sb.yaml")
    for backend in ("fal", "preview"):
        with pytest.raises(BudgetError, match=r"sb.yaml: max_cost .* is not an amount of dollars: give a finite number >= 0"):
            check_budget(plan, max_cost, backend)


# --- per-cut transitions --------------------------------------------------------------------

MIXED = """\
version: 1
output: {fps: 24, transition: {type: crossfade, seconds: 0.5}}
shots:
  - {id: a, prompt: p, model: kling}
  - {id: b, prompt: p, model: kling, transition: {type: cut}}
  - {id: c, prompt: p, model: kling}
  - id: d
    prompt: p
    model: kling
    transition: {type: fade, color: white, seconds: 1}
  - {id: e, prompt: p, model: kling, transition: {type: wipeleft, seconds: 0.25}}
"""


def test_each_shot_sets_the_cut_into_it_and_the_rest_take_output_transition():
    plan = plan_from_text(MIXED, "sb.yaml")
    assert [(c.effect, c.seconds) for c in plan.output.cuts] == [
        ("cut", 0.0),
        ("crossfade", 0.5),
        ("fadewhite", 1.0),
        ("wipeleft", 0.25),
    ]
    assert plan.final_seconds == 25 - 0.5 - 1 - 0.25  # exact: every overlap is whole frames


def test_a_fade_is_through_black_unless_it_says_white():
    plan = plan_from_text(MIXED.replace("{type: fade, color: white, seconds: 1}", "{type: fade, seconds: 1}"), "sb.yaml")
    assert plan.output.cuts[2].effect == "fadeblack"


def test_a_transition_too_long_for_its_shot_names_its_line():
    text = MIXED.replace(
        "- {id: c, prompt: p, model: kling}",
        "- {id: c, prompt: p, model: kling, duration: 10, transition: {type: slideup, seconds: 5}}",
    )
    (msg,) = problems(text)
    assert msg.startswith("sb.yaml:6: shot 'c': transition: the 5 s slideup from 'b' into 'c' does not fit in shot 'b' (5 s)")


def test_a_clip_that_cannot_hold_its_two_overlaps_names_the_line_a_shot_set():
    text = MIXED.replace("model: kling}\n  - id: d", "model: kling, duration: 5}\n  - id: d").replace(
        "seconds: 1}", "seconds: 4.5}"
    )
    (msg,) = problems(text)
    assert msg.startswith(
        "sb.yaml:10: shot 'c': a 5 s clip cannot hold the 0.5 s crossfade into it and the 4.5 s fade through white out of it"
    )


def test_a_shot_transition_must_be_whole_frames_too():
    (msg,) = problems(MIXED.replace("seconds: 0.25}", "seconds: 0.3}"))
    assert msg.startswith(
        "sb.yaml:11: shot 'e': transition: a 0.3 s wipeleft is 7.2 frames at 24 fps; use a whole number of frames"
    )


def test_the_first_shot_has_no_cut_into_it():
    (msg,) = problems(
        MIXED.replace("- {id: a, prompt: p, model: kling}", "- {id: a, prompt: p, model: kling, transition: {type: fade}}")
    )
    assert msg == "sb.yaml:4: shot 'a': transition: the first shot has no cut into it: remove its transition:"


@pytest.mark.parametrize(
    "transition, said",
    [
        ("{type: crossfade, color: white}", "color: only a fade goes through a colour, not a crossfade"),
        ("{type: fade, color: red}", "Input should be 'black' or 'white'"),
        ("{type: spiral}", "Input should be 'cut', 'crossfade', 'fade', 'wipeleft'"),
    ],
)
def test_what_a_transition_may_say(transition, said):
    (msg,) = problems(MIXED.replace("{type: wipeleft, seconds: 0.25}", transition))
    assert msg.startswith("sb.yaml:11: shot 'e': transition") and said in msg


def test_an_earlier_video_is_kept_unless_the_storyboard_says_replace():
    shot = "- {id: a, prompt: p, model: kling}"
    assert plan_from_text(board(shot), "sb.yaml").output.existing == "keep"
    assert plan_from_text(board(shot, output="existing: replace"), "sb.yaml").output.existing == "replace"
    (msg,) = problems(board(shot, output="existing: overwrite"))
    assert "output.existing: Input should be 'keep' or 'replace', not 'overwrite'" in msg
