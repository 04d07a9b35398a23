"""Takes: several paid generations of a shot, each with its own seed and cache key, the picks that say
which one the video uses, and what the estimate, the budget, the ledger and the manifest count."""

from __future__ import annotations

import json
import textwrap
from collections import Counter

import pytest

from shotflow.errors import BudgetError, ShotflowError, StoryboardError
from shotflow.model import body_hash
from shotflow.picks import Picks, load_picks, picks_path, save_picks
from shotflow.plan import check_budget, load_plan, plan_from_text
from shotflow.store.clips import ClipStore

BOARD = """\
version: 1
output: {resolution: 720p}
shots:
  - {id: ball, prompt: a red ball, model: kling, duration: 5}
  - {id: cube, prompt: a blue cube, model: pika-2.2, duration: 5, seed: 7}
  - {id: cone, prompt: a green cone, model: pika-2.2, duration: 5}
"""


def with_takes(text: str, takes: dict[str, int]) -> str:
    for shot, n in takes.items():
        text = text.replace(f"{{id: {shot}, ", f"{{id: {shot}, takes: {n}, ")
    return text


def test_one_take_keeps_the_requests_keys_and_storyboard_hash_of_a_storyboard_without_takes():
    plain = plan_from_text(BOARD, picks=Picks("p"))
    one = plan_from_text(with_takes(BOARD, {"ball": 1, "cube": 1, "cone": 1}), picks=Picks("p"))
    assert [s.body for s in one.shots] == [s.body for s in plain.shots]
    assert [ClipStore.key("fal", s) for s in one.all_takes] == [ClipStore.key("fal", s) for s in plain.shots]
    assert plain.generations == plain.shots and not plain.has_takes
    # the hash before takes existed: the endpoint and body alone
    assert plain.shots[0].body_hash == body_hash(plain.shots[0].endpoint, plain.shots[0].body)
    # unset fields do not enter the storyboard's hash (so an up-to-date video stays up to date)
    assert one.storyboard_hash != plain.storyboard_hash  # takes: 1 was written
    assert plan_from_text(BOARD + "\n", picks=Picks("p")).storyboard_hash == plain.storyboard_hash


def test_each_take_gets_its_own_seed_or_its_own_key():
    plan = plan_from_text(with_takes(BOARD, {"ball": 3, "cube": 3, "cone": 2}), picks=Picks("p"))
    ball, cube, cone = (plan.takes_of(i) for i in ("ball", "cube", "cone"))
    assert [t.take for t in ball] == [1, 2, 3] and all(t.takes == 3 for t in ball)
    assert [t.label for t in ball] == ["ball take 1", "ball take 2", "ball take 3"]
    # kling has no seed: the same body each time, three keys
    assert "seed" not in ball[0].body and ball[0].body == ball[1].body == ball[2].body
    assert len({ClipStore.key("fal", t) for t in ball}) == 3
    # the shot's seed, then seed + take - 1
    assert [t.body["seed"] for t in cube] == [7, 8, 9]
    # no seed set: take 1 is the request as written, the others derived, the same on every plan
    assert "seed" not in cone[0].body and 0 <= cone[1].body["seed"] < 2**31
    again = plan_from_text(with_takes(BOARD, {"ball": 3, "cube": 3, "cone": 2}), picks=Picks("p"))
    assert again.takes_of("cone")[1].body == cone[1].body
    # take 1 of a shot with takes is the shot as it was with one: its clip is reused
    plain = plan_from_text(BOARD, picks=Picks("p"))
    assert [ClipStore.key("fal", plan.takes_of(s.id)[0]) for s in plain.shots] == [ClipStore.key("fal", s) for s in plain.shots]


def test_takes_are_counted_by_the_estimate_and_the_budget():
    plain = plan_from_text(BOARD, picks=Picks("p"))
    plan = plan_from_text(with_takes(BOARD, {"ball": 2, "cube": 3}), picks=Picks("p"))
    ball, cube, cone = plain.shots
    assert plan.known_cost == 2 * ball.cost + 3 * cube.cost + cone.cost
    check_budget(plan, float(plan.known_cost), "fal")
    with pytest.raises(BudgetError, match="over the budget"):
        check_budget(plan, float(plain.known_cost), "fal")  # enough for one take each, not for the takes


def test_defaults_takes_and_a_shot_overriding_it():
    text = BOARD.replace("output:", "defaults: {takes: 2}\noutput:")
    plan = plan_from_text(with_takes(text, {"cone": 1}), picks=Picks("p"))
    assert [len(plan.takes_of(s.id)) for s in plan.shots] == [2, 2, 1]


@pytest.mark.parametrize("bad", ["takes: 0", "takes: 11", "takes: two"])
def test_a_bad_takes_value_names_the_line(bad):
    text = BOARD.replace("{id: ball, ", "{id: ball, " + bad + ", ")
    with pytest.raises(StoryboardError) as err:
        plan_from_text(text, picks=Picks("p"))
    assert ":4:" in str(err.value) and "takes" in str(err.value)


def test_picks_choose_the_take_the_video_is_cut_from(tmp_path):
    sb = tmp_path / "film.yaml"
    sb.write_text(with_takes(BOARD, {"ball": 2, "cube": 3}))
    path = picks_path(str(sb), "unused", tmp_path / "cache")
    assert path == tmp_path / "film.picks.yaml"
    assert [s.take for s in load_plan(sb).shots] == [1, 1, 1]  # no picks yet: take 1
    save_picks(Picks(str(path)).with_pick("cube", 3).with_pick("ball", 2), "film.yaml")
    text = path.read_text()
    assert text.startswith("# The takes picked for film.yaml") and "cube: 3" in text
    plan = load_plan(sb)
    assert [s.take for s in plan.shots] == [2, 3, 1]
    assert plan.shot("cube").body["seed"] == 9
    assert plan.picks_file == str(path)
    assert [s.take for s in plan.with_picks({"cube": 2}).shots] == [2, 2, 1]
    with pytest.raises(ShotflowError, match="shot 'cone' has no take 2"):
        plan.with_picks({"cone": 2})
    # a pick of a take the storyboard no longer has: an error naming the picks file and the takes
    sb.write_text(with_takes(BOARD, {"ball": 2}))
    with pytest.raises(StoryboardError) as err:
        load_plan(sb)
    assert str(path) in str(err.value) and "take 3 of shot 'cube'" in str(err.value)


def test_an_extra_take_with_an_edited_prompt_is_kept_in_the_picks(tmp_path):
    sb = tmp_path / "film.yaml"
    sb.write_text(with_takes(BOARD, {"cube": 2}))
    plan = load_plan(sb)
    picks, take = load_picks(plan.picks_file).with_extra_take("cube", len(plan.takes_of("cube")), "a blue cube, at dusk")
    assert take == 3
    save_picks(picks.with_pick("cube", take), "film.yaml")
    plan = load_plan(sb)
    cube = plan.takes_of("cube")
    assert [t.take for t in cube] == [1, 2, 3]
    assert cube[2].body["prompt"] == "a blue cube, at dusk" and cube[2].body["seed"] == 9
    assert cube[1].body["prompt"] == "a blue cube"
    assert plan.shot("cube").take == 3
    again, take = load_picks(plan.picks_file).with_extra_take("cube", 3)
    assert take == 4 and again.extra["cube"][-1].prompt is None


@pytest.mark.parametrize(
    "text, where",
    [
        ("picks: {cube: two}\n", ":1:"),
        ("picks:\n  cube: 0\n", ":2:"),
        ("extra_takes:\n  cube:\n    - {take: 1}\n", ":3:"),
        ("nonsense: 1\n", "picks file holds"),
        ("picks: [1\n", "film.picks.yaml"),
        ("picks: [cube, 2]\n", "not a list"),
        ("extra_takes: [1]\n", "not a list"),
        ("picks: {cube: {take: 2, colour: red}}\n", ":1:"),
    ],
)
def test_a_malformed_picks_file_is_an_error_naming_it(tmp_path, text, where):
    sb = tmp_path / "film.yaml"
    sb.write_text(with_takes(BOARD, {"cube": 2}))
    (tmp_path / "film.picks.yaml").write_text(text)
    with pytest.raises(StoryboardError) as err:
        load_plan(sb)
    assert "film.picks.yaml" in str(err.value) and where in str(err.value)


def test_an_inline_storyboards_picks_live_in_the_store_by_its_hash(tmp_path):
    assert picks_path("<inline storyboard>", "abc", tmp_path) == tmp_path / "picks" / "abc.yaml"


def test_two_takes_through_fal_each_paid_once_recorded_and_found_again(tmp_path, fal_env, monkeypatch):
    from shotflow.flows.render import render_storyboard

    monkeypatch.setenv("SHOTFLOW_CACHE_DIR", str(tmp_path / "cache"))
    sb = tmp_path / "film.yaml"
    sb.write_text(
        textwrap.dedent(
            """\
            version: 1
            output: {resolution: 360p}
            shots:
              - {id: lake, prompt: a quiet lake, model: kling, takes: 2}
              - {id: street, prompt: a busy street, model: seedance, resolution: 480p, takes: 2}
            """
        )
    )
    save_picks(Picks(str(tmp_path / "film.picks.yaml")).with_pick("street", 2), "film.yaml")
    plan = load_plan(sb)
    out = tmp_path / "film.mp4"
    render_storyboard(storyboard=str(sb), backend="fal", out=str(out))
    lake, street = plan.takes_of("lake"), plan.takes_of("street")
    # seedance takes a seed: two bodies, each billed once; kling has none: one body, billed once per take
    assert fal_env.billed == Counter(
        {
            body_hash(lake[0].endpoint, lake[0].body): 2,
            body_hash(street[0].endpoint, street[0].body): 1,
            body_hash(street[1].endpoint, street[1].body): 1,
        }
    )
    manifest = json.loads(out.with_name("film.manifest.json").read_text())
    shots = {s["id"]: s for s in manifest["shots"]}
    assert shots["street"]["take"] == 2 and [t["take"] for t in shots["street"]["takes"]] == [1, 2]
    assert shots["street"]["clip_sha256"] == shots["street"]["takes"][1]["clip_sha256"]
    assert shots["street"]["body"]["seed"] == street[1].body["seed"]
    assert len({t["request_id"] for s in shots.values() for t in s["takes"]}) == 4
    assert manifest["estimated_spent_usd"] == str(plan.known_cost)
    # the ledger says which take each request was
    from shotflow.store.journal import Journal
    from shotflow.store.ledger import ledger_rows

    rows = ledger_rows(Journal.in_cache(tmp_path / "cache").records())
    assert sorted((r["shot"], r["take"]) for r in rows) == [("lake", 1), ("lake", 2), ("street", 1), ("street", 2)]
    # a re-run pays nothing: every take is found in the store
    render_storyboard(storyboard=str(sb), backend="fal", out=str(tmp_path / "again.mp4"))
    assert sum(fal_env.billed.values()) == 4


def test_a_failed_take_the_video_is_not_cut_from_does_not_hold_the_video_back(tmp_path, fal_env, monkeypatch):
    from shotflow.flows.render import render_storyboard

    monkeypatch.setenv("SHOTFLOW_CACHE_DIR", str(tmp_path / "cache"))
    fal_env.fault("job", outcome="refused", match="forbidden", times=5)
    sb = tmp_path / "film.yaml"
    sb.write_text("version: 1\noutput: {resolution: 360p}\nshots:\n  - {id: lake, prompt: a quiet lake, model: kling}\n")
    picks, take = load_picks(tmp_path / "film.picks.yaml").with_extra_take("lake", 1, "a forbidden lake")
    save_picks(picks, "film.yaml")
    result = render_storyboard(storyboard=str(sb), backend="fal", out=str(tmp_path / "film.mp4"))
    assert take == 2 and result["failed_takes"] and "shot 'lake take 2'" in result["failed_takes"][0]
    manifest = json.loads((tmp_path / "film.manifest.json").read_text())
    assert [t["take"] for t in manifest["shots"][0]["takes"]] == [1]
    assert manifest["failed_takes"] == result["failed_takes"]


def test_a_pick_holds_for_the_version_of_the_shot_it_was_made_for(tmp_path):
    """A var in the prompt makes another shot for each value: one value's pick or extra take (with
    its prompt) is never cut into another value's video."""
    sb = tmp_path / "daily.yaml"
    sb.write_text(
        "version: 1\nvars: {topic: Oslo}\noutput: {resolution: 720p}\nshots:\n"
        "  - {id: aerial, prompt: 'aerial over {{ topic }}', model: pika-2.2, duration: 5, takes: 2}\n"
        "  - {id: street, prompt: a street, model: pika-2.2, duration: 5, takes: 2}\n"
    )
    oslo = load_plan(sb)
    aerial = oslo.shot("aerial")
    picks, take = load_picks(oslo.picks_file).with_extra_take("aerial", 2, "aerial over Oslo at dusk", aerial.request)
    save_picks(picks.with_pick("aerial", take, aerial.request).with_pick("street", 2, oslo.shot("street").request), "daily.yaml")
    assert f"request: {aerial.request[:12]}" in (tmp_path / "daily.picks.yaml").read_text()
    oslo = load_plan(sb)
    assert oslo.shot("aerial").take == 3 and oslo.shot("aerial").body["prompt"] == "aerial over Oslo at dusk"
    assert not oslo.warnings
    bergen = load_plan(sb, vars={"topic": "Bergen"})
    assert [t.take for t in bergen.takes_of("aerial")] == [1, 2] and bergen.shot("aerial").take == 1
    assert bergen.shot("aerial").body["prompt"] == "aerial over Bergen"
    assert bergen.shot("street").take == 2  # the shot without the var is the same shot: its pick holds
    assert len(bergen.warnings) == 1 and "shot 'aerial' changed since" in bergen.warnings[0]
    assert "daily.picks.yaml:" in bergen.warnings[0] and "take(s) 3" in bergen.warnings[0]
    # a pick written by hand, without request:, applies to any version
    (tmp_path / "daily.picks.yaml").write_text("picks:\n  aerial: 2\n  ghost: 2\n")
    bergen = load_plan(sb, vars={"topic": "Bergen"})
    assert bergen.shot("aerial").take == 2
    assert any("daily.picks.yaml:3: no shot 'ghost'" in w for w in bergen.warnings)
