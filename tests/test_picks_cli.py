"""`shotflow pick` (which take the video is cut from, with consent when the shots continuing it are
paid for again) and `shotflow reroll` (one more take of one shot, paid for exactly once, against
the fake fal server)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import fakefal
import pytest
import yaml
from terminal import answer_once

from shotflow.cli import main
from shotflow.media.ffmpeg import ffmpeg_exe
from shotflow.model import body_hash
from shotflow.money import usd
from shotflow.plan import load_plan
from shotflow.store.clips import ClipStore

CHAIN = """\
version: 1
output: {resolution: 720p}
shots:
  - {id: approach, prompt: a red car on a coastal road, model: kling, duration: 5, takes: 3}
  - {id: arrival, from: approach, prompt: the car stops at a lighthouse, model: seedance, resolution: 480p, duration: 5}
"""


def clip(path: Path, colour: str) -> Path:
    subprocess.run(
        [ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", f"color=c={colour}:s=64x36:r=25:d=0.2", "-pix_fmt", "yuv420p",
         str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    return path


def store(cache: Path, key: str, source: Path) -> None:
    part = cache / f"incoming-{key[:8]}"
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(source.read_bytes())
    ClipStore(cache).put(key, part)


@pytest.fixture
def chain(tmp_path, clip_store, monkeypatch):
    """film.yaml: approach (3 takes; takes 1 and 2 in the store as fal made them) and arrival, which
    continues it (its clip from take 1 stored too): a fal user's store after a run, take 3 not made."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAL_KEY", fakefal.KEY)
    (tmp_path / "film.yaml").write_text(CHAIN)
    plan = load_plan(tmp_path / "film.yaml")
    take1, take2, _ = plan.takes_of("approach")
    store(clip_store, ClipStore.key("fal", take1), clip(tmp_path / "t1.mp4", "red"))
    store(clip_store, ClipStore.key("fal", take2), clip(tmp_path / "t2.mp4", "blue"))
    from shotflow.generation.known import known_requests

    arrival = known_requests(plan, "fal", clip_store)["arrival"][0]  # from take 1's last frame
    store(clip_store, ClipStore.key("fal", arrival), clip(tmp_path / "a1.mp4", "green"))
    return tmp_path / "film.yaml"


def picks(board: Path) -> dict:
    """The picks file as data, each pick's take (the request it was made for left out)."""
    path = board.with_name("film.picks.yaml")
    data = yaml.safe_load(path.read_text()) if path.exists() else {}
    for shot, pick in (data.get("picks") or {}).items():
        data["picks"][shot] = pick["take"] if isinstance(pick, dict) else pick
    return data


def test_a_pick_whose_descendants_are_paid_again_is_refused_without_consent(chain, capsys):
    arrival = load_plan(chain).shot("arrival")
    assert main(["pick", "film.yaml", "approach", "2"]) == 1  # no terminal, no --yes
    err = capsys.readouterr().err
    assert "film.picks.yaml: not changed: take 2 of 'approach' changes the frame" in err
    assert f"pays for, arrival ({usd(arrival.cost)}): estimated {usd(arrival.cost)} on fal" in err and "--yes" in err
    assert picks(chain) == {}

    assert main(["pick", "film.yaml", "approach", "2", "--yes"]) == 0
    out = capsys.readouterr().out
    assert picks(chain) == {"picks": {"approach": 2}}
    assert "shot 'approach' now uses take 2 (it used take 1)" in out
    assert (
        "the next `shotflow run film.yaml` cuts take 2 of 'approach'; nothing is paid for it: the take is in the clip store; "
        "it also generates again arrival (consented above)" in out
    )
    assert load_plan(chain).shot("approach").take == 2

    # back to take 1: arrival's clip from take 1 is in the store, so nothing is paid and nobody is asked
    assert main(["pick", "film.yaml", "approach", "1"]) == 0
    assert picks(chain) == {"picks": {"approach": 1}}
    assert "also generates again" not in capsys.readouterr().out


def test_a_take_not_generated_yet_is_said_and_a_missing_take_lists_the_takes(chain, capsys):
    assert main(["pick", "film.yaml", "arrival", "2"]) == 1
    assert "film.yaml: shot 'arrival' has no take 2 (takes: 1)" in capsys.readouterr().err
    assert main(["pick", "film.yaml", "nope", "1"]) == 1
    assert "no shot 'nope' (shots: approach, arrival)" in capsys.readouterr().err
    assert main(["pick", "film.yaml", "approach", "3", "--yes"]) == 0
    out = capsys.readouterr().out
    cost = usd(load_plan(chain).shot("approach").cost)
    assert "take 3 of 'approach' has not been generated yet: the next `shotflow run film.yaml` generates it" in out
    assert f"(estimated {cost} on fal)" in out
    assert main(["pick", "film.yaml", "approach", "3"]) == 0
    assert "already uses take 3" in capsys.readouterr().out


def on_a_terminal(args: list[str], answer: bytes, cwd: Path, env: dict) -> tuple[int, str]:
    """`shotflow ARGS` with a terminal as stdin and stderr, answering its question with `answer`."""
    return answer_once([*args], answer, cwd, env)


def test_on_a_terminal_the_pick_asks_and_a_no_changes_nothing(chain, clip_store):
    env = fakefal.product_env(clip_store)
    code, seen = on_a_terminal(["pick", "film.yaml", "approach", "2"], b"n\n", chain.parent, env)
    assert code == 1 and "pays for, arrival" in seen and "Pick it and pay for them on the next run? [y/N]" in seen
    assert picks(chain) == {}
    code, seen = on_a_terminal(["pick", "film.yaml", "approach", "2"], b"y\n", chain.parent, env)
    assert code == 0 and "now uses take 2" in seen
    assert picks(chain) == {"picks": {"approach": 2}}


BOARD = """\
version: 1
output: {resolution: 720p}
shots:
  - {id: lake, prompt: a quiet lake, model: kling, duration: 5, takes: 2}
  - {id: street, prompt: a busy street, model: kling, duration: 5}
"""


def test_reroll_refuses_when_the_run_would_pay_for_other_shots_too(tmp_path, fal_env, clip_store, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "film.yaml").write_text(BOARD)
    assert main(["reroll", "film.yaml", "lake"]) == 1  # nothing of it is in the store yet
    err = capsys.readouterr().err
    assert "reroll pays for one take, but the next run of this storyboard would also pay for lake take 1" in err
    assert "street ($" in err and "Nothing was recorded or sent: run `shotflow run film.yaml` first" in err
    assert picks(tmp_path / "film.yaml") == {} and fal_env.count("submit") == 0


def test_reroll_buys_exactly_one_take_and_keeps_its_prompt(tmp_path, fal_env, clip_store, monkeypatch):
    from shotflow.flows.render import render_storyboard

    monkeypatch.chdir(tmp_path)
    board = tmp_path / "film.yaml"
    board.write_text(BOARD)
    result = render_storyboard(storyboard=str(board), backend="fal")
    assert result["takes_sheet"] == str(tmp_path / "out" / "film.takes.png")  # a row per shot, a frame per take
    assert Path(result["takes_sheet"]).is_file()
    paid = sum(fal_env.billed.values())
    assert paid == 3
    env = fakefal.product_env(clip_store) | {"SHOTFLOW_FAL_POLL_INTERVAL": "0.1", "SHOTFLOW_FAL_RETRY_BACKOFF": "0.05"}
    r = subprocess.run(
        [sys.executable, "-m", "shotflow.cli", "reroll", "film.yaml", "lake", "--prompt", "a quiet lake at dawn"],
        cwd=tmp_path, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    plan = load_plan(board)
    new = plan.takes_of("lake")[2]
    assert new.take == 3 and new.body["prompt"] == "a quiet lake at dawn"
    assert sum(fal_env.billed.values()) == paid + 1 and fal_env.billed[body_hash(new.endpoint, new.body)] == 1
    request = plan.shot("lake").request[:12]  # the version of the shot it was bought for
    assert picks(board) == {"extra_takes": {"lake": [{"take": 3, "prompt": "a quiet lake at dawn", "request": request}]}}
    # the pick is unchanged
    assert "shot 'lake': take 3 with the prompt 'a quiet lake at dawn' is recorded in film.picks.yaml" in r.stdout
    assert "To cut the new one in: shotflow pick film.yaml lake 3" in r.stdout
    assert f"takes:         {tmp_path / 'out' / 'film.takes.png'}" in r.stdout  # drawn again, with take 3
    assert ClipStore(clip_store).find(ClipStore.key("fal", new)) is not None

    # --max-cost holds what the reroll pays: one take
    r = subprocess.run(
        [sys.executable, "-m", "shotflow.cli", "reroll", "film.yaml", "lake", "--max-cost", "0.10"],
        cwd=tmp_path, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip
    assert r.returncode == 1 and f"the reroll's estimated {usd(new.cost)} is over the budget of $0.10" in r.stderr
    assert len(load_plan(board).takes_of("lake")) == 3 and sum(fal_env.billed.values()) == paid + 1


def test_reroll_pick_asks_before_paying_again_for_what_continues_the_shot(chain, fake_fal, capsys):
    chain.write_text(CHAIN.replace("takes: 3", "takes: 2"))  # every take, and arrival, in the store
    arrival = load_plan(chain).shot("arrival")
    assert main(["reroll", "film.yaml", "approach", "--pick"]) == 1  # no terminal, no --yes
    err = capsys.readouterr().err
    assert "film.picks.yaml: not changed, nothing sent: the new take of 'approach' changes the frame" in err
    assert f"arrival ({usd(arrival.cost)})" in err and "Consent with --yes" in err
    assert picks(chain) == {} and fake_fal.count("submit") == 0
