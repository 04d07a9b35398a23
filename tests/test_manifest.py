"""The run manifest: a preview's says what fal would charge and that nothing was spent; a fal
run's says what this run sent to fal; manifests of every version so far can be read."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from pathlib import Path

import pytest

from shotflow.errors import ShotflowError
from shotflow.model import GeneratedClip, OutputSpec, Plan, ShotPlan
from shotflow.report.manifest import VERSION, cost_line, cost_summary, read_manifest, write_manifest

OUT = OutputSpec(path="out/film.mp4", width=1280, height=720, fps=24, fit="pad", transition="cut", transition_seconds=0.0)


def shot(sid: str, cost: str | None) -> ShotPlan:
    return ShotPlan(
        sid,
        0,
        3,
        "kling-v2",
        "fal-ai/kling",
        {"prompt": sid},
        5,
        "16:9",
        "720p",
        1280,
        720,
        24,
        False,
        None if cost is None else Decimal(cost),
    )


PLAN = Plan("boards/film.yaml", "Film", "abc123", (shot("opening", "1.40"), shot("street", "0.45"), shot("close", None)), OUT)


@pytest.fixture
def video(tmp_path) -> Path:
    path = tmp_path / "out" / "film.mp4"
    path.parent.mkdir()
    path.write_bytes(b"the video")
    return path


def clips(tmp_path, backend: str, from_store: set[str]) -> list[GeneratedClip]:
    made = []
    for s in PLAN.shots:
        path = tmp_path / f"{s.id}.mp4"
        path.write_bytes(s.id.encode())
        rid = None if backend == "preview" else f"req-{s.id}"
        made.append(GeneratedClip(s.id, path, f"key-{s.id}", backend, cache_hit=s.id in from_store, request_id=rid))
    return made


def written(tmp_path, video, backend: str, from_store: set[str] = frozenset()) -> dict:
    path = write_manifest(PLAN, clips(tmp_path, backend, from_store), backend=backend, video=video, duration=15.0)
    assert path == video.with_name("film.manifest.json")
    return json.loads(path.read_text())


def test_a_preview_manifest_says_what_fal_would_charge_never_what_was_spent(tmp_path, video):
    manifest = written(tmp_path, video, "preview")
    assert manifest["shotflow_manifest"] == VERSION
    assert manifest["spent"] is False
    assert manifest["estimated_cost_usd_on_fal"] == "1.85"
    assert manifest["unpriced_shots"] == ["close"]
    assert [s["cost_usd_on_fal"] for s in manifest["shots"]] == ["1.40", "0.45", None]
    text = json.dumps(manifest)
    assert '"estimated_cost_usd"' not in text and '"cost_usd"' not in text and "spent_usd" not in text
    assert cost_line(manifest) == "would cost $1.85 + 1 unpriced shot (close) on fal; nothing was paid (an offline preview)"


def test_a_fal_manifest_says_what_this_run_sent_to_fal(tmp_path, video):
    manifest = written(tmp_path, video, "fal", from_store={"opening"})
    assert manifest["spent"] is True
    assert manifest["estimated_cost_usd"] == "1.85"  # every shot of the video
    assert manifest["estimated_spent_usd"] == "0.45"  # 'street' (and the unpriced 'close') were generated now
    assert [s["cost_usd"] for s in manifest["shots"]] == ["1.40", "0.45", None]
    assert "on_fal" not in json.dumps(manifest)
    assert cost_line(manifest) == (
        "$1.85 + 1 unpriced shot (close) on fal (estimated): $0.45 of it for the 2 shots generated in this run, "
        "the other 1 from the clip store"
    )


def test_a_fal_run_that_found_every_clip_spent_nothing(tmp_path, video):
    manifest = written(tmp_path, video, "fal", from_store={s.id for s in PLAN.shots})
    assert manifest["spent"] is False and manifest["estimated_spent_usd"] == "0"
    assert cost_line(manifest).endswith("all paid in earlier runs: every clip came from the clip store")
    everything = written(tmp_path, video, "fal")
    assert everything["spent"] is True and everything["estimated_spent_usd"] == "1.85"
    assert cost_line(everything).endswith("all of it for shots generated in this run")


def test_the_run_result_gets_the_manifest_money_and_its_sentence(tmp_path, video):
    write_manifest(PLAN, clips(tmp_path, "preview", set()), backend="preview", video=video, duration=15.0)
    summary = cost_summary(video.with_name("film.manifest.json"))
    assert summary == {
        "spent": False,
        "estimated_cost_usd_on_fal": "1.85",
        "unpriced_shots": ["close"],
        "cost": "would cost $1.85 + 1 unpriced shot (close) on fal; nothing was paid (an offline preview)",
    }


# --- reading what earlier versions wrote ----------------------------------------------------------


def version_1(backend: str) -> dict:
    """A manifest as shotflow wrote it before version 2 (a preview's would-be cost as if spent)."""
    return {
        "shotflow_manifest": 1,
        "created": "2026-11-30T10:00:00+00:00",
        "storyboard": "boards/film.yaml",
        "storyboard_sha256": "abc123",
        "title": "Film",
        "backend": backend,
        "output": {"path": "out/film.mp4", "width": 1280, "height": 720, "fps": 24, "duration": 10.0, "sha256": "00"},
        "estimated_cost_usd": "1.85",
        "unpriced_shots": [],
        "shots": [
            {
                "id": "opening",
                "model": "kling-v2",
                "seconds": 5,
                "cost_usd": "1.40",
                "request_id": None,
                "cache_hit": True,
                "clip": "a.mp4",
            },
            {
                "id": "street",
                "model": "kling-v2",
                "seconds": 5,
                "cost_usd": "0.45",
                "request_id": None,
                "cache_hit": False,
                "clip": "b.mp4",
            },
        ],
        "join": {"video_copied": True, "overlaps_rendered_after_last_clip": 0},
    }


def test_a_version_1_preview_manifest_is_read_in_the_current_shape(tmp_path):
    path = tmp_path / "old.manifest.json"
    path.write_text(json.dumps(version_1("preview")))
    manifest = read_manifest(path)
    assert manifest["shotflow_manifest"] == VERSION
    assert manifest["spent"] is False and manifest["estimated_cost_usd_on_fal"] == "1.85"
    assert "estimated_cost_usd" not in manifest
    assert [s["cost_usd_on_fal"] for s in manifest["shots"]] == ["1.40", "0.45"]
    assert manifest["join"] == {"video_copied": True, "overlaps_rendered_after_last_clip": 0}  # the rest as it was
    assert cost_line(manifest).startswith("would cost $1.85 on fal")
    assert json.loads(path.read_text()) == version_1("preview")  # upgraded in memory, the file untouched


def test_a_version_1_fal_manifest_is_read_in_the_current_shape(tmp_path):
    path = tmp_path / "old.manifest.json"
    path.write_text(json.dumps(version_1("fal")))
    manifest = read_manifest(path)
    assert manifest["spent"] is True and manifest["estimated_spent_usd"] == "0.45"
    assert manifest["estimated_cost_usd"] == "1.85" and manifest["shots"][0]["cost_usd"] == "1.40"


def test_the_current_version_reads_back_as_written(tmp_path, video):
    manifest = written(tmp_path, video, "fal")
    path = video.with_name("film.manifest.json")
    assert read_manifest(path) == manifest
    assert path.stat().st_mode & 0o777 == 0o644  # shared like the video
    assert sorted(p.name for p in video.parent.iterdir()) == ["film.manifest.json", "film.mp4"]  # no temporary file left


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("{not json", "not a shotflow manifest (not JSON"),
        ("[1, 2]", "no 'shotflow_manifest' version"),
        ('{"shotflow_manifest": true}', "no 'shotflow_manifest' version"),
        (json.dumps({"shotflow_manifest": VERSION + 1}), f"manifest version {VERSION + 1} was written by a newer shotflow"),
    ],
)
def test_what_cannot_be_read_is_named(tmp_path, content, said):
    path = tmp_path / "film.manifest.json"
    path.write_text(content)
    with pytest.raises(ShotflowError, match=r"film\.manifest\.json: ") as refused:
        read_manifest(path)
    assert said in str(refused.value)
    with pytest.raises(ShotflowError, match="cannot read the manifest"):
        read_manifest(tmp_path / "missing.manifest.json")


def test_a_clip_accepted_after_failing_verification_says_why_it_was_kept_aside(tmp_path, video):
    made = clips(tmp_path, "fal", {"opening"})
    made[0] = dataclasses.replace(made[0], accepted_despite="lasts 1.0 s, not the 5 s asked")
    manifest = json.loads(write_manifest(PLAN, made, backend="fal", video=video, duration=15.0).read_text())
    assert manifest["shots"][0]["accepted_despite"] == "lasts 1.0 s, not the 5 s asked"
    assert "accepted_despite" not in manifest["shots"][1]  # nothing to say about a clip that passed


def test_a_continuing_shot_is_recorded_as_it_was_sent_with_its_source_and_frames(tmp_path, video):
    """The plan's dependent shot has no frames yet (no key): the manifest takes them from its clip."""
    from shotflow.model import FRAME_REF, FrameInput

    frame = FrameInput("image_url", "f" * 64, str(tmp_path / "frames" / ("f" * 64 + ".png")), "last frame of opening")
    street = dataclasses.replace(PLAN.shots[1], source="opening", image_field="image_url")
    plan = dataclasses.replace(PLAN, shots=(PLAN.shots[0], street, PLAN.shots[2]))
    with pytest.raises(ShotflowError):
        street.body_hash  # unresolved: no key before its frame exists
    made = [dataclasses.replace(c, frames=(frame,)) if c.shot == "street" else c for c in clips(tmp_path, "fal", set())]
    manifest = json.loads(write_manifest(plan, made, backend="fal", video=video, duration=15.0).read_text())
    recorded = {s["id"]: s for s in manifest["shots"]}
    assert recorded["street"]["source"] == "opening"
    assert recorded["street"]["frames"] == [
        {"field": "image_url", "sha256": "f" * 64, "path": frame.path, "origin": "last frame of opening"}
    ]
    assert recorded["street"]["body"] == {"prompt": "street", "image_url": FRAME_REF + "f" * 64}
    sent = dataclasses.replace(street, body=recorded["street"]["body"], frames=(frame,))
    assert recorded["street"]["body_hash"] == sent.body_hash
    assert ["street", sent.body_hash] in manifest["fingerprint"]["shots"]
    assert "source" not in recorded["opening"] and "frames" not in recorded["opening"]
