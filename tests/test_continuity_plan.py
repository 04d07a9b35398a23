"""Shots that continue shots (`from:`, `image:`, `end_image:`): each rule's message, the warning,
the plan of a dependent shot (its image endpoint, body, fields and price), order and descendants,
and the estimate and budget counting dependent shots."""

from __future__ import annotations

import json
import textwrap
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image

from shotflow import catalog
from shotflow.cli.parser import main
from shotflow.errors import BudgetError, ShotflowError, StoryboardError
from shotflow.plan import check_budget, load_plan, plan_from_text
from shotflow.storyboard.schema import or_list


@pytest.fixture
def without_image_endpoint(monkeypatch):
    """wan-pro as if it had no image endpoint (every model of the catalog has one)."""
    models = tuple(replace(m, image=None) if m.alias == "wan-pro" else m for m in catalog.MODELS)
    monkeypatch.setattr(catalog, "MODELS", models)
    for spec in models:
        for name in (spec.alias, spec.endpoint, *spec.aliases):
            monkeypatch.setitem(catalog._BY_NAME, name.lower(), spec)
    return [m.alias for m in models if m.image is not None]


def write(tmp_path, shots: str, head: str = "defaults: {model: kling}\n") -> str:
    Image.new("RGB", (32, 18), (200, 40, 40)).save(tmp_path / "still.png")
    path = tmp_path / "sb.yaml"
    path.write_text("version: 1\ntitle: t\n" + head + "shots:\n" + textwrap.indent(textwrap.dedent(shots).strip(), "  ") + "\n")
    return str(path)


def problems(tmp_path, shots: str, **kw) -> list[str]:
    with pytest.raises(StoryboardError) as info:
        load_plan(write(tmp_path, shots, **kw))
    return [str(p) for p in info.value.problems]


# line 5 is the first shot
CHAIN_AND_FORK = """
- {id: approach, prompt: a car on a coastal road, aspect_ratio: "9:16"}
- {id: arrival, prompt: the car stops, from: approach, duration: 10}
- {id: driver, prompt: the driver steps out, from: arrival, model: luma, resolution: 720p, end_image: still.png}
- {id: bottle, prompt: a bottle turns, model: veo3, image: still.png, duration: 4, params: {generate_audio: false}}
- {id: gull, prompt: a gull takes off, from: arrival, model: seedance}
"""
LATER = CHAIN_AND_FORK.replace(
    "- {id: approach,", "- {id: intro, prompt: the lighthouse, from: gull, model: veo3}\n- {id: approach,"
)


# --- the plan of a dependent shot ---------------------------------------------------------------


def test_a_dependent_shot_is_planned_for_its_image_endpoint(tmp_path):
    plan = load_plan(write(tmp_path, CHAIN_AND_FORK))
    approach, arrival, driver, bottle, gull = plan.shots
    assert approach.endpoint == "fal-ai/kling-video/v2/master/text-to-video" and approach.source is None
    assert approach.cost == Decimal("1.40") and not approach.needs_frames
    # the image endpoint, its own body (no aspect_ratio field: the first frame decides), no frame field yet
    assert arrival.endpoint == "fal-ai/kling-video/v2/master/image-to-video" and arrival.model == "kling-2.0-master"
    assert arrival.body == {
        "prompt": "the car stops",
        "duration": "10",
        "negative_prompt": "blur, distort, and low quality",
        "cfg_scale": 0.5,
    }
    assert (arrival.source, arrival.image, arrival.end_image) == ("approach", None, None)
    assert (arrival.image_field, arrival.end_field) == ("image_url", None)
    assert arrival.cost is None  # the image endpoint's price (unknown), not the text endpoint's $1.40 per 5 s
    assert (arrival.aspect_ratio, arrival.width, arrival.height) == ("16:9", 1280, 720)  # the native shape until the frame exists
    assert not arrival.resolved
    with pytest.raises(ShotflowError, match="'arrival': its request depends on its first frame"):
        arrival.body_hash
    still = str((tmp_path / "still.png").resolve())
    assert driver.endpoint == "fal-ai/luma-dream-machine/ray-2-flash/image-to-video"
    assert driver.body == {"prompt": "the driver steps out", "aspect_ratio": "16:9", "resolution": "720p", "duration": "5s"}
    assert (driver.source, driver.end_image, driver.image_field, driver.end_field) == (
        "arrival",
        still,
        "image_url",
        "end_image_url",
    )
    assert (bottle.source, bottle.image, bottle.end_image) == (None, still, None)
    assert bottle.endpoint == "fal-ai/veo3/image-to-video" and "image_url" not in bottle.body
    assert bottle.body["aspect_ratio"] == "auto" and bottle.cost == Decimal("0.80")  # $0.20/s without audio
    assert gull.endpoint == "fal-ai/bytedance/seedance/v1/pro/image-to-video" and gull.cost == Decimal("0.27")
    assert plan.warnings == ()


def test_inherited_values_go_only_where_the_image_endpoint_has_the_field(tmp_path):
    head = 'defaults: {model: kling, aspect_ratio: "9:16", negative_prompt: "no text"}\n'
    plan = load_plan(write(tmp_path, CHAIN_AND_FORK, head=head))
    assert plan.shot("approach").body["aspect_ratio"] == "9:16"
    assert "aspect_ratio" not in plan.shot("arrival").body and plan.shot("arrival").body["negative_prompt"] == "no text"
    assert plan.shot("driver").body["aspect_ratio"] == "9:16" and "negative_prompt" not in plan.shot("driver").body
    assert plan.shot("gull").body["aspect_ratio"] == "9:16" and plan.shot("gull").height == 1280


def test_order_puts_sources_first_and_descendants_follow_the_chain(tmp_path):
    plan = load_plan(write(tmp_path, LATER))
    assert [s.id for s in plan.shots] == ["intro", "approach", "arrival", "driver", "bottle", "gull"]
    assert [s.id for s in plan.order] == ["approach", "arrival", "gull", "intro", "driver", "bottle"]
    assert [s.id for s in plan.descendants("approach")] == ["intro", "arrival", "driver", "gull"]  # in cut order
    assert [s.id for s in plan.descendants("arrival")] == ["intro", "driver", "gull"]
    assert plan.descendants("bottle") == () and plan.descendants("intro") == ()
    with pytest.raises(ShotflowError, match="no shot 'nope'"):
        plan.descendants("nope")
    (warning,) = plan.warnings
    assert warning == (
        f"warning: {tmp_path / 'sb.yaml'}:5: shot 'intro': from: 'gull' comes later in the cut (shot 6 of 6): "
        "'intro' is generated after it but shown before it"
    )


# --- the rules, each with its message -----------------------------------------------------------


def test_unknown_ids_name_the_shots(tmp_path):
    found = problems(tmp_path, "- {id: a, prompt: p}\n- {id: b, prompt: p, from: Aa}\n- {id: c, prompt: p, from: A}")
    sb = tmp_path / "sb.yaml"
    assert found == [
        f"{sb}:6: shot 'b': from: no shot 'Aa' (shots: a, b, c)",
        f"{sb}:7: shot 'c': from: no shot 'A': did you mean 'a'? (ids are matched exactly)",
    ]


def test_a_cycle_names_every_shot_in_it_once(tmp_path):
    shots = "- {id: a, prompt: p, from: c}\n- {id: b, prompt: p, from: a}\n- {id: c, prompt: p, from: b}\n- {id: d, prompt: p, from: c}\n- {id: e, prompt: p, from: e}"
    sb = tmp_path / "sb.yaml"
    assert problems(tmp_path, shots) == [
        f"{sb}:5: shot 'a': from: makes a cycle (a -> c -> b -> a: each starts from the last frame of the next), "
        "so none of them can be generated first: remove one of their from:",
        f"{sb}:9: shot 'e': from: 'e' is this shot: a shot cannot start from its own last frame",
    ]


def test_from_and_image_together(tmp_path):
    (found,) = problems(tmp_path, "- {id: a, prompt: p}\n- {id: b, prompt: p, from: a, image: still.png}")
    assert found.endswith(":6: shot 'b': from: and image: both give the first frame: keep one of them")


@pytest.mark.parametrize(
    "value, said",
    [
        ("missing.png", "image: no such file {dir}/missing.png"),
        ("sb.yaml", "image: {dir}/sb.yaml is not a picture (Pillow cannot read it)"),
        (
            "http://example.com/a.png?sig=s3cret",
            "image: 'http://example.com/a.png?...': give a file (relative to the storyboard's folder) or an https URL (http: is not fetched)",
        ),
        (
            "data:image/png;base64,AAAA",
            "image: 'data:image/png;base64,AAAA': give a file (relative to the storyboard's folder) or an https URL (data: is not fetched)",
        ),
        ("https:///a.png", "image: 'https:///a.png' names no host"),
    ],
)
def test_a_still_is_a_picture_beside_the_storyboard_or_an_https_url(tmp_path, value, said):
    (found,) = problems(tmp_path, f"- {{id: a, prompt: p, image: '{value}'}}")
    assert found == f"{tmp_path / 'sb.yaml'}:5: shot 'a': " + said.format(dir=tmp_path.resolve())


def test_an_https_url_is_kept_as_written(tmp_path):
    plan = load_plan(write(tmp_path, "- {id: a, prompt: p, image: 'https://example.com/a.png?v=2'}"))
    assert plan.shots[0].image == "https://example.com/a.png?v=2"


def test_a_model_without_an_image_endpoint_names_the_models_that_have_one(tmp_path, without_image_endpoint):
    (found,) = problems(tmp_path, "- {id: a, prompt: p}\n- {id: b, prompt: p, model: wan-pro, from: a}")
    assert found.endswith(
        f":6: shot 'b': from: wan-pro has no image-to-video endpoint, so it cannot start from a frame: use {or_list(without_image_endpoint)}"
    )
    assert "kling-2.0-master, seedance-1.0-pro" in found
    (found,) = problems(tmp_path, "- {id: b, prompt: p, model: wan-pro, image: still.png}")
    assert found.endswith(
        f":5: shot 'b': image: wan-pro has no image-to-video endpoint, so it cannot start from a frame: use {or_list(without_image_endpoint)}"
    )


def test_end_image_needs_an_end_field_and_a_first_frame(tmp_path):
    shots = (
        "- {id: a, prompt: p, image: still.png, end_image: still.png}\n- {id: b, prompt: p, model: luma, end_image: still.png}"
    )
    assert [f.split(": ", 1)[1] for f in problems(tmp_path, shots)] == [
        "shot 'a': end_image: kling-2.0-master's image endpoint takes no last frame: use seedance-1.0-pro or luma-ray-2-flash",
        "shot 'b': end_image: luma-ray-2-flash's image endpoint needs a first frame too: add from: or image:",
    ]


def test_values_the_shot_sets_are_held_to_the_image_endpoint(tmp_path):
    shots = """
    - {id: a, prompt: p}
    - {id: b, prompt: p, from: a, aspect_ratio: "9:16", seed: 3, duration: 7, params: {image_url: x, loop: true}}
    - {id: c, prompt: p, from: a, model: luma, resolution: 360p, params: {end_image_url: x}}
    """
    found = [f.split(": ", 1)[1] for f in problems(tmp_path, shots)]
    assert found == [
        "shot 'b': kling-2.0-master's image endpoint renders 5 or 10 s clips, not 7 s",
        "shot 'b': kling-2.0-master's image endpoint has no aspect_ratio field: the first frame decides the shape (remove aspect_ratio: here)",
        "shot 'b': kling-2.0-master's image endpoint takes no seed",
        "shot 'b': params.image_url: the frame is given by from: or image: on the shot, not in params",
        "shot 'b': params.loop: kling-2.0-master's image endpoint has no such field (its own fields: cfg_scale)",
        "shot 'c': luma-ray-2-flash's image endpoint renders 540p, 720p or 1080p, not 360p: set resolution: to one of 540p, 720p or 1080p on this shot or in defaults",
        "shot 'c': params.end_image_url: the frame is given by end_image: on the shot, not in params",
    ]


def test_every_problem_of_a_storyboard_is_said_at_once(tmp_path):
    found = problems(
        tmp_path,
        "- {id: a, prompt: p, from: zz}\n- {id: b, prompt: p, model: luma, image: nope.png}\n- {id: c, prompt: p, duration: 7}",
    )
    assert len(found) == 3 and all(str(tmp_path / "sb.yaml") in f for f in found)


# --- what a user sees: validate, estimate, the budget -------------------------------------------


def test_validate_and_estimate_print_the_warning_and_count_dependent_shots(tmp_path, capsys):
    path = write(tmp_path, LATER)
    assert main(["validate", path]) == 0
    out, err = capsys.readouterr()
    unpriced = "+ 2 unpriced shots (arrival, driver)"
    assert f"{path}: ok: 't', 6 shots" in out and f"estimated $5.67 {unpriced}" in out
    said = f"warning: {path}:5: shot 'intro': from: 'gull' comes later in the cut (shot 6 of 6): 'intro' is generated after it but shown before it"
    assert err == said + "\n"
    assert main(["estimate", path]) == 0
    out, err = capsys.readouterr()
    assert err == said + "\n"
    rows = {
        line.split()[0]: line
        for line in out.splitlines()
        if line.split()[:1] and line.split()[0] in ("intro", "arrival", "driver", "bottle")
    }
    assert "from gull" in rows["intro"] and "$3.20" in rows["intro"]
    assert "from approach" in rows["arrival"] and "unknown" in rows["arrival"]
    assert "from arrival, end_image" in rows["driver"]
    assert "  image  " in rows["bottle"] and "$0.80" in rows["bottle"]
    assert "6 shots, 37 s generated" in out and f"estimated cost: $5.67 {unpriced}" in out
    assert "  kling-2.0-master: $1.40 per 5 s, +$0.28/s" in out and "  kling-2.0-master (image to video): unknown" in out
    assert main(["estimate", "--json", path]) == 0
    report = json.loads(capsys.readouterr().out)
    (entry,) = report["files"]
    assert entry["warnings"] == [said] and report["totals"]["known_cost_usd"] == 5.67
    assert report["totals"]["unpriced_shots"] == [f"{path}:arrival", f"{path}:driver"]
    arrival = next(s for s in entry["shots"] if s["id"] == "arrival")
    assert arrival["endpoint"] == "fal-ai/kling-video/v2/master/image-to-video" and arrival["from"] == "approach"
    assert arrival["cost_usd"] is None and arrival["price"] == "unknown"


def test_the_budget_counts_dependent_shots(tmp_path):
    plan = load_plan(write(tmp_path, CHAIN_AND_FORK))
    with pytest.raises(
        BudgetError, match=r"no known price for kling-2.0-master \(shot 'arrival'\), luma-ray-2-flash \(shot 'driver'\)"
    ):
        check_budget(plan, 100, "fal")
    priced = "- {id: a, prompt: p, model: veo3}\n- {id: b, prompt: p, model: veo3, from: a}\n- {id: c, prompt: p, model: seedance, from: a}"
    plan = load_plan(write(tmp_path, priced))
    assert plan.known_cost == Decimal("6.67") and plan.unpriced == ()  # $3.20 + $3.20 (8 s with audio) + $0.27
    check_budget(plan, 6.67, "fal")
    with pytest.raises(BudgetError, match=r"estimated \$6.67 is over the budget of \$6.66; nothing was started"):
        check_budget(plan, 6.66, "fal")


def test_a_storyboard_without_continuity_keeps_its_hash_and_a_from_changes_it():
    """The new fields do not make every rendered video look out of date (the hash from before them)."""
    text = "version: 1\nshots:\n  - {id: a, prompt: a cat, model: kling}\n"
    before = plan_from_text(text, "sb.yaml").storyboard_hash
    assert before == "238be58caaeb388a28a6dcd2f26356fd5825b5375646b2e96921ee4a36d4ac60"
    chained = plan_from_text(text + "  - {id: b, prompt: a dog, model: kling}\n", "sb.yaml").storyboard_hash
    assert plan_from_text(text + "  - {id: b, prompt: a dog, model: kling, from: a}\n", "sb.yaml").storyboard_hash != chained


def test_the_continuity_example_validates_with_its_chain_fork_and_still():
    plan = load_plan(Path(__file__).resolve().parents[1] / "pipelines" / "continuity.yaml")
    assert {s.id: s.source for s in plan.shots if s.source} == {"arrival": "approach", "driver": "arrival", "keeper": "arrival"}
    (bottle,) = [s for s in plan.shots if s.image]
    assert bottle.image.endswith("pipelines/assets/bottle.png") and plan.warnings == ()
    assert [s.id for s in plan.descendants("approach")] == ["arrival", "driver", "keeper"]
