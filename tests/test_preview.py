"""The offline preview backend: an animatic of the exact shape the model would deliver, stored apart."""

from __future__ import annotations

from dataclasses import replace

import av
import numpy as np
import pytest

from shotflow.generation.backend import Backend
from shotflow.generation.preview import PreviewBackend, draw_card
from shotflow.media.probe import probe
from shotflow.model import ShotPlan
from shotflow.store.clips import ClipStore

VEO = ShotPlan(
    id="harbour",
    index=0,
    line=3,
    model="veo3",
    endpoint="fal-ai/veo3",
    body={"prompt": "misty harbour at dawn, boats leaving", "generate_audio": True},
    seconds=1,
    aspect_ratio="16:9",
    resolution="720p",
    width=128,
    height=72,
    fps=24,
    audio=True,
    cost=None,
)
KLING = replace(
    VEO,
    id="portrait",
    model="kling-v2",
    endpoint="fal-ai/kling",
    body={"prompt": "a face"},
    width=72,
    height=128,
    fps=30,
    audio=False,
)


@pytest.fixture
def backend(tmp_path) -> PreviewBackend:
    return PreviewBackend(ClipStore(tmp_path / "store"))


def test_it_is_a_backend(backend):
    source: Backend = backend  # the flow holds it as a Backend and never asks which one it is
    assert source.name == "preview" and callable(source.generate)


@pytest.mark.parametrize("shot", [VEO, KLING], ids=["veo3-with-audio", "portrait-silent"])
def test_preview_clip_has_the_models_size_rate_length_and_audio(backend, shot):
    clip = backend.generate(shot)
    info = probe(clip.path)
    assert (info.width, info.height, info.fps) == (shot.width, shot.height, shot.fps)
    assert info.duration == pytest.approx(shot.seconds, abs=1 / shot.fps)
    assert info.has_audio is shot.audio
    with av.open(str(clip.path)) as c:
        assert sum(1 for _ in c.decode(video=0)) == shot.seconds * shot.fps
        if shot.audio:
            a = c.streams.audio[0]
            assert (a.sample_rate, a.channels) == (48000, 2)
    assert (clip.backend, clip.cache_hit, clip.shot) == ("preview", False, shot.id)


def test_preview_moves_and_shows_text(backend):
    path = backend.generate(VEO).path
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]
    assert np.abs(frames[0] - frames[-1]).mean() > 1  # a moving background and a filling progress bar
    card = np.asarray(draw_card(VEO))
    text = card[..., 3] > 200  # the panel is translucent (alpha 90); the letters are nearly opaque
    assert text.sum() > 20 and card[text][:, :3].mean() > 180  # and light


def test_a_stored_preview_is_reused_and_says_so(backend):
    first = backend.generate(VEO)
    made = first.path.stat().st_mtime_ns
    events = []
    again = backend.generate(VEO, on_event=events.append)
    assert again.cache_hit and again.path == first.path and again.path.stat().st_mtime_ns == made
    assert [e.kind for e in events] == ["cached"]
    forced = backend.generate(VEO, force=True, on_event=events.append)
    assert not forced.cache_hit and events[-1].kind == "running"


def test_preview_clips_never_pass_for_paid_ones(backend):
    clip = backend.generate(VEO)
    assert clip.key == ClipStore.key("preview", VEO) != ClipStore.key("fal", VEO)
    assert backend.store.find(ClipStore.key("fal", VEO)) is None


# --- continuity: a dependent shot opens on its first frame ------------------------------------


def first_and_last(path) -> tuple[np.ndarray, np.ndarray]:
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]
    return frames[0], frames[-1]


def test_a_dependent_shots_animatic_opens_on_its_sources_last_frame(backend, tmp_path):
    from shotflow.generation.continuity import resolve

    source = replace(KLING, id="approach", seconds=1)
    follow = replace(source, id="arrival", body={"prompt": "the car stops"}, source="approach", image_field="image_url")
    upstream = backend.generate(source)
    shot = resolve(follow, upstream, tmp_path / "store")
    clip = backend.generate(shot)
    assert clip.frames == shot.frames and clip.key == ClipStore.key("preview", shot)
    _, source_last = first_and_last(upstream.path)
    first, last = first_and_last(clip.path)
    assert np.abs(first - source_last).mean() < 4  # the cut shows the continuity (within x264's loss)
    assert np.abs(last - source_last).mean() > 20  # ... and the shot goes on to its own animatic
    alone = backend.generate(replace(follow, source=None, image_field=None))  # the same shot on no frame
    assert np.abs(first_and_last(alone.path)[0] - source_last).mean() > 20


def test_a_still_shot_opens_on_its_image_and_ends_on_its_end_image(backend, tmp_path):
    from PIL import Image

    from shotflow.generation.continuity import resolve

    Image.new("RGB", (64, 64), (230, 40, 40)).save(tmp_path / "red.png")  # square, in a portrait shot
    Image.new("RGB", (72, 128), (40, 40, 230)).save(tmp_path / "blue.png")
    shot = replace(
        KLING, id="bottle", seconds=1, image=str(tmp_path / "red.png"), image_field="image_url",
        end_image=str(tmp_path / "blue.png"), end_field="tail_image_url",
    )  # fmt: skip
    first, last = first_and_last(backend.generate(resolve(shot, None, tmp_path / "store")).path)
    assert np.abs(first[40:88, 8:64] - [230, 40, 40]).mean() < 12  # the red still, fitted: 72x72 in the middle
    assert first[:20].max() < 40 and first[-20:].max() < 40  # black bars above and below
    assert np.abs(last - [40, 40, 230]).mean() < 12
    Image.new("RGB", (64, 64), (40, 230, 40)).save(tmp_path / "red.png")  # another image: another clip
    again = backend.generate(resolve(shot, None, tmp_path / "store"))
    assert not again.cache_hit and np.abs(first_and_last(again.path)[0][40:88, 8:64] - [40, 230, 40]).mean() < 12


def test_an_unresolved_dependent_shot_is_refused(backend):
    from shotflow.errors import GenerationError

    with pytest.raises(GenerationError, match="resolve the shot first"):
        backend.generate(replace(KLING, source="approach", image_field="image_url"))
