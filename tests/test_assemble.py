"""Normalising clips to the output spec and joining them: what a viewer of the final video notices.

Media is made by ffmpeg here: tiny clips (≤ 1 s, a few dozen pixels), never committed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import av
import numpy as np
import pytest

from shotflow.assembly.conformance import video_keyframes
from shotflow.assembly.formats import OUTPUT_FORMATS, output_format
from shotflow.assembly.join import join, prepare_join
from shotflow.assembly.normalise import clip_audio, clip_audio_stored, normalise, normalise_stored, recipe_id
from shotflow.assembly.recipe import clip_edges, cut_points, final_seconds, transition_seconds
from shotflow.assembly.soundtrack import encode_soundtrack, soundtrack_stored
from shotflow.assembly.transitions import EFFECTS
from shotflow.errors import AssemblyError
from shotflow.media.ffmpeg import ffmpeg_exe
from shotflow.media.probe import probe
from shotflow.model import CutSpec, GeneratedClip, OutputSpec, ShotPlan
from shotflow.store.clips import ClipStore

W, H, FPS = 96, 54, 25
CUT = OutputSpec(path="out.mp4", width=W, height=H, fps=FPS, fit="pad", transition="cut", transition_seconds=0.0)
FADE = replace(CUT, transition="crossfade", transition_seconds=0.2)  # 5 frames


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True, timeout=60)


def make_clip(
    path: Path,
    *,
    size: str,
    fps: int,
    seconds: float,
    colour: str | None = None,
    tone: int | None = None,
    rate: int = 44100,
    channels: int = 1,
) -> Path:
    """A clip: testsrc2 (or a solid colour), with a sine tone or no audio at all."""
    video = f"color=c={colour}:s={size}:r={fps}:d={seconds}" if colour else f"testsrc2=s={size}:r={fps}:d={seconds}"
    args = ["-f", "lavfi", "-i", video]
    if tone:
        args += ["-f", "lavfi", "-i", f"sine=f={tone}:r={rate}:d={seconds}", "-ac", str(channels), "-c:a", "aac"]
    ffmpeg(*args, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-shortest", str(path))
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def mixed(media) -> list[Path]:
    """Mixed sizes, aspect ratios, frame rates and audio: what ten different models deliver."""
    return [
        make_clip(media / "wide-24-tone.mp4", size="160x90", fps=24, seconds=1, tone=440),
        make_clip(media / "portrait-30-silent.mp4", size="90x160", fps=30, seconds=1),
        make_clip(media / "square-25-stereo48k-short.mp4", size="100x100", fps=25, seconds=0.8, tone=660, rate=48000, channels=2),
    ]


@pytest.fixture(scope="module")
def colours(media) -> list[Path]:
    """Solid red (with a tone), green (silent), blue (with a tone): easy to see a crossfade in."""
    return [
        make_clip(media / "red.mp4", size="64x36", fps=25, seconds=1, colour="red", tone=440),
        make_clip(media / "green.mp4", size="64x36", fps=30, seconds=1, colour="lime"),
        make_clip(media / "blue.mp4", size="64x36", fps=24, seconds=1, colour="blue", tone=880),
    ]


def normalise_all(paths, out, folder: Path, seconds=1) -> list[Path]:
    folder.mkdir(exist_ok=True)
    return [normalise(p, folder / f"{i}.mp4", out, seconds=seconds) for i, p in enumerate(paths)]


def streams(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as c:
        return len(c.streams.video), len(c.streams.audio)


def stream_seconds(path: Path) -> tuple[float, float]:
    """Video and audio durations as written in the file (what a player shows and plays)."""
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        return float(v.duration * v.time_base), float(a.duration * a.time_base)


def video_packets(path: Path) -> list[bytes]:
    """The coded pictures, without the SPS/PPS that a stream-copy join repeats in-band at each file's start."""
    with av.open(str(path)) as c:
        return [_without_parameter_sets(bytes(p)) for p in c.demux(c.streams.video[0]) if p.size]


def _without_parameter_sets(packet: bytes) -> bytes:
    kept, i = [], 0
    while i < len(packet):
        size = int.from_bytes(packet[i : i + 4], "big")
        if packet[i + 4] & 0x1F not in (7, 8):
            kept.append(packet[i : i + 4 + size])
        i += 4 + size
    return b"".join(kept)


def frames_rgb(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def decoded_audio(path: Path) -> np.ndarray:
    """Mono float samples, as ffmpeg (which honours the AAC edit list) decodes them."""
    wav = path.with_suffix(".check.wav")
    ffmpeg("-i", str(path), "-vn", "-ac", "1", "-c:a", "pcm_f32le", str(wav))
    with av.open(str(wav)) as c:
        return np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])


def rms(samples: np.ndarray, at: float, span: float = 0.06) -> float:
    chunk = samples[int(at * 48000) : int((at + span) * 48000)]
    return float(np.sqrt(np.mean(chunk**2)))


def assert_plays_to_the_end(path: Path, seconds: float, out: OutputSpec = CUT) -> None:
    info = probe(path)
    assert streams(path) == (1, 1)
    assert (info.width, info.height, info.fps) == (out.width, out.height, out.fps)
    assert info.duration == pytest.approx(seconds, abs=1 / out.fps)
    video_s, audio_s = stream_seconds(path)
    assert video_s == pytest.approx(seconds, abs=1e-6)
    assert abs(audio_s - video_s) <= 1 / out.fps  # in sync to within one frame
    assert len(frames_rgb(path)) == round(seconds * out.fps)  # every frame decodes
    assert len(decoded_audio(path)) == pytest.approx(seconds * 48000, abs=48000 / out.fps)


# --- normalising -----------------------------------------------------------------------------


@pytest.mark.parametrize("fit", ["pad", "crop"])
def test_normalise_brings_any_clip_to_the_output_spec(mixed, tmp_path, fit):
    out = replace(CUT, fit=fit)
    for i, src in enumerate(mixed):
        dst = normalise(src, tmp_path / f"{i}.mp4", out, seconds=1)
        info = probe(dst)
        assert (info.width, info.height, info.fps, info.sar) == (W, H, FPS, "1:1")
        assert (info.audio_rate, info.audio_channels, info.pix_fmt) == (48000, 2, "yuv420p")
        assert_plays_to_the_end(dst, 1.0)


def test_a_short_clip_holds_its_last_frame_and_a_silent_one_gets_silence(mixed, tmp_path):
    short = normalise(mixed[2], tmp_path / "short.mp4", CUT, seconds=1)  # 0.8 s source
    assert_plays_to_the_end(short, 1.0)
    frames = frames_rgb(short)
    assert np.array_equal(frames[-1], frames[-3])  # frozen, not black
    assert frames[-1].mean() > 20
    silent = normalise(mixed[1], tmp_path / "silent.mp4", CUT, seconds=1)
    assert np.abs(decoded_audio(silent)).max() < 1e-4


def test_pad_letterboxes_and_crop_fills_the_frame(media, tmp_path):
    portrait = make_clip(media / "portrait-red.mp4", size="36x64", fps=25, seconds=0.2, colour="red")
    padded = frames_rgb(normalise(portrait, tmp_path / "pad.mp4", CUT, seconds=0.2))[0]
    cropped = frames_rgb(normalise(portrait, tmp_path / "crop.mp4", replace(CUT, fit="crop"), seconds=0.2))[0]
    assert padded[H // 2, W // 2, 0] > 200  # the picture in the middle
    assert padded[H // 2, 2].max() < 20 and padded[H // 2, W - 3].max() < 20  # black bars at the sides
    assert cropped[:, :, 0].min() > 200 and cropped[:, :, 1:].max() < 60  # red edge to edge


def test_crossfade_recipe_forces_keyframes_where_the_join_cuts(mixed, tmp_path):
    clip = normalise(mixed[0], tmp_path / "k.mp4", FADE, seconds=1)
    keys, count = video_keyframes(clip)
    assert count == 25 and {0, 5, 20} <= set(keys)
    assert cut_points(1, FADE) == (0.2, 0.8)


def test_the_recipe_id_names_everything_that_changes_the_normalised_clip():
    base = recipe_id(CUT, 5)
    assert recipe_id(CUT, 5) == base
    assert recipe_id(replace(CUT, path="elsewhere.mp4", soundtrack="x.mp3"), 5) == base
    changed = [
        recipe_id(replace(CUT, width=128), 5),
        recipe_id(replace(CUT, fps=30), 5),
        recipe_id(replace(CUT, fit="crop"), 5),
        recipe_id(FADE, 5),
        recipe_id(replace(FADE, transition_seconds=0.4), 5),
        recipe_id(CUT, 6),
    ]
    assert len({base, *changed}) == 7


def test_a_stored_clip_is_normalised_once_next_to_the_raw_one(mixed, tmp_path):
    store = ClipStore(tmp_path / "store")
    shot = ShotPlan("s1", 0, None, "kling-v2", "fal-ai/x", {"prompt": "p"}, 1, "16:9", "720p", 160, 90, 24, True, None)
    key = ClipStore.key("fal", shot)
    stored = store.put(key, Path(shutil.copy(mixed[0], store.temp_path(key))))
    raw = getattr(stored, "path", stored)  # put returns a StoredClip (or, before the store's rework, a path)
    clip = GeneratedClip("s1", raw, key, "fal", cache_hit=False)
    first = normalise_stored(store, clip, shot, CUT)
    assert first == store.derived(key, recipe_id(CUT, 1))
    made = first.stat().st_mtime_ns
    assert normalise_stored(store, clip, shot, CUT).stat().st_mtime_ns == made  # found, not redone
    assert normalise_stored(store, clip, shot, FADE) != first  # another recipe, another file


def test_a_clip_asked_for_twice_at_once_is_normalised_once(mixed, tmp_path, monkeypatch):
    """The early start's thread and the flow's normalise task may ask at the same time: the
    second waits for the first one's file."""
    import threading

    from shotflow.assembly import normalise as normalising

    store = ClipStore(tmp_path / "store")
    shot = ShotPlan("s1", 0, None, "kling-v2", "fal-ai/x", {"prompt": "p"}, 1, "16:9", "720p", 160, 90, 24, True, None)
    key = ClipStore.key("fal", shot)
    stored = store.put(key, Path(shutil.copy(mixed[0], store.temp_path(key))))
    clip = GeneratedClip("s1", getattr(stored, "path", stored), key, "fal", cache_hit=False)
    made, real = [], normalising.normalise
    monkeypatch.setattr(normalising, "normalise", lambda *a, **k: made.append(a[1]) or real(*a, **k))
    results: list[Path] = []
    callers = [threading.Thread(target=lambda: results.append(normalise_stored(store, clip, shot, CUT))) for _ in range(2)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(60)
    assert len(made) == 1 and len(results) == 2 and results[0] == results[1] == made[0]


def test_clips_checked_as_they_land_are_not_opened_again_by_the_join(mixed, tmp_path, monkeypatch):
    from shotflow.assembly import conformance
    from shotflow.assembly import join as join_module
    from shotflow.assembly.pieces import pieces_folder

    store = ClipStore(tmp_path / "store")
    normalised = []
    for i, src in enumerate(mixed[:2]):
        shot = ShotPlan(f"s{i}", i, None, "kling-v2", "fal-ai/x", {"prompt": f"p{i}"}, 1, "16:9", "720p", 160, 90, 24, True, None)
        key = ClipStore.key("fal", shot)
        stored = store.put(key, Path(shutil.copy(src, store.temp_path(key))))
        clip = GeneratedClip(shot.id, getattr(stored, "path", stored), key, "fal", cache_hit=False)
        normalised.append(conformance.normalise_checked(store, clip, shot, CUT))
    demuxed, opened = [], []
    real, real_shape = conformance.video_keyframes, conformance.stream_shape
    for module in (conformance, join_module):
        monkeypatch.setattr(module, "video_keyframes", lambda path: demuxed.append(Path(path)) or real(path))
    for module in (conformance, join_module):  # the join reads the first clip's shape as its reference too
        monkeypatch.setattr(module, "stream_shape", lambda path: opened.append(Path(path)) or real_shape(path))
    result = join(normalised, [1, 1], CUT, tmp_path / "out.mp4", pieces_dir=pieces_folder(store.root))
    assert result.video_copied and result.renormalised == ()
    assert not set(normalised) & set(demuxed), demuxed
    assert not set(normalised) & set(opened), opened  # their shapes (codec, size, SPS/PPS) were read as they landed
    # a clip made again (a new mtime) is read again, not taken for the one that was checked
    later = normalised[1].stat().st_mtime_ns + 10**9
    os.utime(normalised[1], ns=(later, later))
    assert conformance.shape_checked(normalised[1], pieces_folder(store.root)) == real_shape(normalised[1])
    assert opened == [normalised[1]]


def test_a_stored_clips_sound_is_taken_once_and_again_when_the_clip_is_generated_again(mixed, tmp_path):
    store = ClipStore(tmp_path / "store")
    shot = ShotPlan("s1", 0, None, "kling-v2", "fal-ai/x", {"prompt": "p"}, 1, "16:9", "720p", 160, 90, 24, True, None)
    key = ClipStore.key("fal", shot)
    stored = store.put(key, Path(shutil.copy(mixed[0], store.temp_path(key))))
    clip = GeneratedClip("s1", getattr(stored, "path", stored), key, "fal", cache_hit=False)
    first = clip_audio_stored(store, clip, shot, CUT)
    made = first.stat().st_mtime_ns
    assert first.parent == store.derived(key, recipe_id(CUT, 1)).parent and first.suffix == ".wav"
    assert clip_audio_stored(store, clip, shot, CUT).stat().st_mtime_ns == made  # found, not taken again
    os.utime(clip.path, ns=(made + 10**9, made + 10**9))  # the shot was generated again since
    assert clip_audio_stored(store, clip, shot, CUT).stat().st_mtime_ns > made


# --- joining -------------------------------------------------------------------------------


def test_cut_join_of_mixed_clips_is_a_stream_copy_of_the_normalised_video(mixed, tmp_path):
    normalised = normalise_all(mixed, CUT, tmp_path / "n")
    result = join(normalised, [1, 1, 1], CUT, tmp_path / "final.mp4")
    assert result.path == tmp_path / "final.mp4" and result.seconds == 3.0
    assert result.video_copied and result.renormalised == ()
    assert_plays_to_the_end(result.path, 3.0)
    # not re-encoded: the final video is the normalised clips' packets, byte for byte
    joined = video_packets(result.path)
    assert joined == [p for clip in normalised for p in video_packets(clip)]


def test_a_clip_that_does_not_match_the_recipe_is_re_encoded_not_copied(mixed, tmp_path):
    normalised = normalise_all(mixed[:2], CUT, tmp_path / "n")
    result = join([normalised[0], mixed[2], normalised[1]], [1, 1, 1], CUT, tmp_path / "final.mp4")
    assert result.renormalised == (1,)
    assert_plays_to_the_end(result.path, 3.0)


def test_crossfade_join_overlaps_clips_and_stays_in_sync(colours, tmp_path):
    normalised = normalise_all(colours, FADE, tmp_path / "n")
    pieces = tmp_path / "pieces"
    result = join(normalised, [1, 1, 1], FADE, tmp_path / "final.mp4", pieces_dir=pieces)
    assert result.seconds == pytest.approx(3 - 2 * 0.2)
    assert result.video_copied and result.transitions_rendered == 2
    assert_plays_to_the_end(result.path, 2.6)

    frames = frames_rgb(result.path)
    red, green, blue = frames[10], frames[32], frames[55]  # the middles are the clips themselves
    assert red[..., 0].mean() > 200 and green[..., 1].mean() > 200 and blue[..., 2].mean() > 200
    blend = frames[22]  # halfway through red → green (frames 20-24)
    assert 60 < blend[..., 0].mean() < 200 and 60 < blend[..., 1].mean() < 200
    # the middles were not re-encoded: their packets are in the output unchanged
    joined = set(video_packets(result.path))
    assert set(video_packets(normalised[1])[5:20]) <= joined

    audio = decoded_audio(result.path)
    assert rms(audio, 0.2) > 0.02  # red's tone
    assert rms(audio, 1.2) < 1e-3  # green is silent
    assert 1e-3 < rms(audio, 0.8 + 0.07, 0.04) < rms(audio, 0.2)  # the tone fading out under the crossfade
    assert rms(audio, 2.2) > 0.02  # blue's tone

    again = join(normalised, [1, 1, 1], FADE, tmp_path / "again.mp4", pieces_dir=pieces)
    assert again.transitions_rendered == 0  # the overlaps were kept
    assert video_packets(again.path) == video_packets(result.path)


def test_one_changed_shot_renders_only_its_own_overlaps(colours, mixed, tmp_path):
    normalised = normalise_all(colours, FADE, tmp_path / "n")
    pieces = tmp_path / "pieces"
    join(normalised, [1, 1, 1], FADE, tmp_path / "a.mp4", pieces_dir=pieces)
    changed = normalise(mixed[0], tmp_path / "changed.mp4", FADE, seconds=1)
    result = join([normalised[0], normalised[1], changed], [1, 1, 1], FADE, tmp_path / "b.mp4", pieces_dir=pieces)
    assert result.transitions_rendered == 1
    assert_plays_to_the_end(result.path, 2.6)


def test_prepare_join_renders_ahead_what_the_clips_already_landed_allow(colours, tmp_path):
    normalised = normalise_all(colours, FADE, tmp_path / "n")
    pieces = tmp_path / "pieces"
    first, second, third = normalised
    assert prepare_join([None, second, None], [1, 1, 1], FADE, pieces) == 0  # no neighbour yet
    assert prepare_join([first, second, None], [1, 1, 1], FADE, pieces) == 1  # first → second
    assert prepare_join([first, second, None], [1, 1, 1], FADE, pieces) == 0  # already there
    result = join(normalised, [1, 1, 1], FADE, tmp_path / "final.mp4", pieces_dir=pieces)
    assert result.transitions_rendered == 1  # only second → third, which touches the clip that was None
    assert result.video_copied and result.renormalised == ()
    assert_plays_to_the_end(result.path, 2.6)
    cold = join(normalised, [1, 1, 1], FADE, tmp_path / "cold.mp4")
    assert cold.transitions_rendered == 2
    assert video_packets(result.path) == video_packets(cold.path)
    assert np.allclose(decoded_audio(result.path), decoded_audio(cold.path), atol=1e-6)


def test_prepare_join_skips_a_clip_that_does_not_match_the_recipe(colours, mixed, tmp_path):
    normalised = normalise_all(colours[:2], FADE, tmp_path / "n")
    pieces = tmp_path / "pieces"
    assert prepare_join([normalised[0], mixed[0], normalised[1]], [1, 1, 1], FADE, pieces) == 0
    result = join([normalised[0], mixed[0], normalised[1]], [1, 1, 1], FADE, tmp_path / "final.mp4", pieces_dir=pieces)
    assert result.renormalised == (1,) and result.transitions_rendered == 2
    assert_plays_to_the_end(result.path, 2.6)


def test_soundtrack_is_looped_under_the_clips_for_the_whole_video(colours, tmp_path):
    track = tmp_path / "track.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=f=1000:r=44100:d=0.4", str(track))
    out = replace(CUT, soundtrack=str(track), soundtrack_volume=0.5)
    normalised = normalise_all(colours[1:2] * 2, out, tmp_path / "n")  # two silent clips
    result = join(normalised, [1, 1], out, tmp_path / "final.mp4")
    assert_plays_to_the_end(result.path, 2.0, out)
    audio = decoded_audio(result.path)
    assert rms(audio, 0.1) > 0.01 and rms(audio, 1.9) > 0.01  # heard at the start and, looped, at the end
    loud = replace(out, soundtrack_volume=1.0)
    louder = decoded_audio(join(normalised, [1, 1], loud, tmp_path / "loud.mp4").path)
    assert rms(louder, 0.1) == pytest.approx(2 * rms(audio, 0.1), rel=0.1)


def test_soundtrack_goes_under_a_crossfade_join_too(colours, tmp_path):
    track = tmp_path / "track.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=f=1000:r=44100:d=0.4", str(track))
    out = replace(FADE, soundtrack=str(track), soundtrack_volume=0.5)
    normalised = normalise_all(colours[1:2] * 3, out, tmp_path / "n")  # three silent clips
    result = join(normalised, [1, 1, 1], out, tmp_path / "final.mp4")
    assert result.transitions_rendered == 2
    assert_plays_to_the_end(result.path, 2.6, out)
    audio = decoded_audio(result.path)
    assert rms(audio, 0.1) > 0.01 and rms(audio, 2.5) > 0.01


def test_a_failed_join_leaves_no_file_at_the_output_path(colours, tmp_path):
    not_audio = tmp_path / "notes.txt"
    not_audio.write_text("not a soundtrack")
    out = replace(CUT, soundtrack=str(not_audio))
    normalised = normalise_all(colours[:2], out, tmp_path / "n")
    dst = tmp_path / "out" / "final.mp4"
    with pytest.raises(AssemblyError, match="ffmpeg exited"):
        join(normalised, [1, 1], out, dst)
    assert list(dst.parent.iterdir()) == []  # no final file, no temporary file, no scratch folder

    dst.write_bytes(b"the previous render")
    with pytest.raises(AssemblyError):
        join(normalised, [1, 1], out, dst)
    assert dst.read_bytes() == b"the previous render"
    assert [p.name for p in dst.parent.iterdir()] == ["final.mp4"]


def test_join_refuses_clips_too_short_for_the_crossfade(colours, tmp_path):
    normalised = normalise_all(colours[:3], replace(FADE, transition_seconds=0.6), tmp_path / "n")
    with pytest.raises(AssemblyError, match="too short"):
        join(normalised, [1, 1, 1], replace(FADE, transition_seconds=0.6), tmp_path / "x.mp4")


def test_lengths_are_counted_in_whole_frames():
    assert final_seconds([5, 5, 5], replace(FADE, fps=24, transition_seconds=0.5)) == pytest.approx(14.0)
    # at 25 fps half a second is 12.5 frames: the crossfade is 12 frames, and the video that much longer
    assert transition_seconds(replace(FADE, transition_seconds=0.5)) == pytest.approx(0.48)
    assert final_seconds([5, 5, 5], replace(FADE, transition_seconds=0.5)) == pytest.approx(14.04)
    assert final_seconds([1], FADE) == 1.0


# --- output formats ------------------------------------------------------------------------


def container_kind(path: Path) -> str:
    """What the file's first bytes say it is: an ISO MP4, a QuickTime movie or a WebM."""
    head = path.read_bytes()[:64]
    if head[4:12] == b"ftypisom":
        return "mp4"
    if head[4:12] == b"ftypqt  ":
        return "mov"
    if head[:4] == b"\x1a\x45\xdf\xa3" and b"webm" in head:
        return "webm"
    return repr(head[:12])


def codecs(path: Path) -> tuple[list[str], list[str]]:
    with av.open(str(path)) as c:
        return [s.codec_context.name for s in c.streams.video], [s.codec_context.name for s in c.streams.audio]


@pytest.mark.parametrize(
    ("suffix", "kind", "video", "audio", "copied"),
    [(".mp4", "mp4", "h264", "aac", True), (".mov", "mov", "h264", "aac", True), (".webm", "webm", "vp9", "opus", False)],
)
@pytest.mark.parametrize("out", [CUT, FADE], ids=["cut", "crossfade"])
def test_each_container_is_written_as_its_extension_says(colours, tmp_path, suffix, kind, video, audio, copied, out):
    normalised = normalise_all(colours, out, tmp_path / "n")
    seconds = final_seconds([1, 1, 1], out)
    result = join(normalised, [1, 1, 1], out, tmp_path / f"final{suffix}")
    assert container_kind(result.path) == kind
    assert codecs(result.path) == ([video], [audio])  # one video and one audio stream
    assert result.video_copied is copied  # H.264 clips are copied into mp4/mov, re-encoded for webm
    info = probe(result.path)
    assert (info.width, info.height, info.fps) == (W, H, FPS)
    assert info.duration == pytest.approx(seconds, abs=1.5 / FPS)
    frames = frames_rgb(result.path)
    assert len(frames) == round(seconds * FPS)
    red, blue = frames[10], frames[-10]
    assert red[..., 0].mean() > 180 and red[..., 2].mean() < 60 and blue[..., 2].mean() > 180
    samples = decoded_audio(result.path)
    assert len(samples) == pytest.approx(seconds * 48000, abs=48000 / FPS)  # in sync to within a frame
    assert rms(samples, 0.2) > 0.02 and rms(samples, seconds - 0.3) > 0.02  # red's tone, blue's tone
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


@pytest.mark.parametrize("name", ["final.txt", "final.mkv", "final", "final.mp4.part"])
def test_an_extension_the_assembly_does_not_write_is_refused_before_any_work(colours, tmp_path, name):
    normalised = normalise_all(colours[:2], CUT, tmp_path / "n")
    dst = tmp_path / "out" / name
    with pytest.raises(AssemblyError, match=r"must end in \.mp4 .*\.mov .*\.webm") as refused:
        join(normalised, [1, 1], CUT, dst)
    assert str(dst) in str(refused.value)
    assert not dst.parent.exists()  # refused before its folder was even made


def test_the_formats_are_named_once_and_matched_in_any_case():
    assert set(OUTPUT_FORMATS) == {".mp4", ".mov", ".webm"}
    assert output_format("out/Film.MP4") is OUTPUT_FORMATS[".mp4"]
    assert output_format("film.webm").video_codec == "vp9"


# --- per-cut transitions ---------------------------------------------------------------------

MIXED_CUTS = replace(
    CUT, cuts=(CutSpec("cut"), CutSpec("crossfade", 0.2), CutSpec("fadeblack", 0.4), CutSpec("wipeleft", 0.2))
)  # into green: a cut; into blue: 5 frames; into yellow: 10 frames through black; into magenta: a 5-frame wipe


@pytest.fixture(scope="module")
def five(media, colours) -> list[Path]:
    """Red (tone), green (silent), blue (tone), yellow (tone), magenta (silent)."""
    return colours + [
        make_clip(media / "yellow.mp4", size="64x36", fps=25, seconds=1, colour="yellow", tone=660),
        make_clip(media / "magenta.mp4", size="64x36", fps=25, seconds=1, colour="magenta"),
    ]


def colour_of(frame: np.ndarray) -> str:
    r, g, b = (frame[..., c].mean() for c in range(3))
    named = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0), "magenta": (255, 0, 255)}
    for name, want in named.items():
        if max(abs(r - want[0]), abs(g - want[1]), abs(b - want[2])) < 40:
            return name
    return "mixed"


def test_each_cut_has_its_own_transition_and_only_the_overlaps_are_encoded(five, tmp_path):
    out = MIXED_CUTS
    folder = tmp_path / "n"
    folder.mkdir()
    normalised = [normalise(p, folder / f"{i}.mp4", out, seconds=1, edges=clip_edges(out, i, 5)) for i, p in enumerate(five)]
    pieces = tmp_path / "pieces"
    result = join(normalised, [1] * 5, out, tmp_path / "final.mp4", pieces_dir=pieces)
    assert result.seconds == pytest.approx(4.2)  # 125 frames less 5 + 10 + 5 of overlap
    assert result.video_copied and result.renormalised == () and result.transitions_rendered == 3  # a cut has no overlap
    assert_plays_to_the_end(result.path, 4.2)  # length, every frame, audio in sync

    frames = frames_rgb(result.path)
    assert [colour_of(frames[i]) for i in (24, 25)] == ["red", "green"]  # the plain cut: no frame of both
    assert colour_of(frames[44]) == "green" and colour_of(frames[50]) == "blue"
    assert all(colour_of(f) == "mixed" for f in frames[46:49])  # the crossfade's frames blend green and blue
    assert 60 < frames[47][..., 1].mean() < 200 and 60 < frames[47][..., 2].mean() < 200
    assert colour_of(frames[59]) == "blue" and colour_of(frames[70]) == "yellow"
    assert min(f.mean() for f in frames[62:68]) < 25  # through black between blue and yellow
    assert colour_of(frames[79]) == "yellow" and colour_of(frames[85]) == "magenta"
    wipe = frames[82]  # part of the picture already magenta, part still yellow
    columns = wipe.mean(axis=0)
    assert (columns[:, 1] > 200).any() and ((columns[:, 1] < 60) & (columns[:, 2] > 200)).any()
    # the middles were copied, not encoded again: yellow's (frames 10-19 of its clip) is there byte for byte
    assert set(video_packets(normalised[3])[10:20]) <= set(video_packets(result.path))

    audio = decoded_audio(result.path)
    assert rms(audio, 0.2) > 0.02 and rms(audio, 1.2) < 1e-3  # red's tone, then silent green right at the cut
    assert rms(audio, 2.585, 0.03) < 0.3 * rms(audio, 2.1)  # the sound dips with the picture through black
    assert rms(audio, 3.0) > 0.02  # yellow's tone

    again = join(normalised, [1] * 5, out, tmp_path / "again.mp4", pieces_dir=pieces)
    assert again.transitions_rendered == 0 and video_packets(again.path) == video_packets(result.path)


def test_every_storyboard_transition_has_an_effect():
    from typing import get_args

    from shotflow.storyboard.schema import Transition, TransitionType
    from shotflow.storyboard.transitions import effect_name

    for name in get_args(TransitionType):
        for colour in ("black", "white") if name == "fade" else (None,):
            effect = effect_name(Transition(type=name, color=colour))
            assert effect == "cut" or effect in EFFECTS


def test_a_clip_too_short_for_its_two_transitions_is_refused(colours, tmp_path):
    out = replace(CUT, cuts=(CutSpec("slideleft", 0.6), CutSpec("fadewhite", 0.4)))
    normalised = normalise_all(colours, CUT, tmp_path / "n")
    with pytest.raises(AssemblyError, match=r"too short for its transitions \(0.6 s in, 0.4 s out\)"):
        join(normalised, [1, 1, 1], out, tmp_path / "x.mp4")


# --- an earlier video at the output path -----------------------------------------------------

EARLIER = datetime(2026, 12, 1, 10, 0, 0, tzinfo=timezone.utc).timestamp()


def earlier_video(colours, tmp_path, out) -> tuple[list[Path], Path]:
    normalised = normalise_all(colours, out, tmp_path / "n")
    dst = tmp_path / "v" / "film.mp4"
    join(normalised[:2], [1, 1], out, dst)
    for side in ("manifest.json", "contact.png"):
        dst.with_name(f"film.{side}").write_text(f"earlier {side}")
    os.utime(dst, (EARLIER, EARLIER))
    return normalised, dst


def test_keep_renames_the_earlier_video_and_its_sidecars_with_its_time(colours, tmp_path):
    normalised, dst = earlier_video(colours, tmp_path, CUT)  # existing: keep is the default
    before = dst.read_bytes()
    result = join(normalised[1:], [1, 1], CUT, dst)
    assert (result.earlier, result.kept) == ("kept", dst.with_name("film.2026-12-01T10-00-00.mp4"))
    assert result.kept.read_bytes() == before and dst.read_bytes() != before
    assert dst.with_name("film.2026-12-01T10-00-00.manifest.json").read_text() == "earlier manifest.json"
    assert dst.with_name("film.2026-12-01T10-00-00.contact.png").read_text() == "earlier contact.png"
    names = sorted(p.name for p in dst.parent.iterdir())
    assert names == [
        "film.2026-12-01T10-00-00.contact.png",
        "film.2026-12-01T10-00-00.manifest.json",
        "film.2026-12-01T10-00-00.mp4",
        "film.mp4",
    ]

    # the same video again (an unchanged re-run that rendered): no copy of it is kept
    same = join(normalised[1:], [1, 1], CUT, dst)
    assert (same.earlier, same.kept) == ("identical", None)
    assert sorted(p.name for p in dst.parent.iterdir()) == names

    # another change: kept under its own time, the first one untouched
    os.utime(dst, (EARLIER + 3600, EARLIER + 3600))
    third = join(normalised[::2], [1, 1], CUT, dst)
    assert third.kept == dst.with_name("film.2026-12-01T11-00-00.mp4")
    assert result.kept.read_bytes() == before


def test_replace_replaces_the_earlier_video_and_says_so(colours, tmp_path):
    out = replace(CUT, existing="replace")
    normalised, dst = earlier_video(colours, tmp_path, out)
    before = dst.read_bytes()
    result = join(normalised[1:], [1, 1], out, dst)
    assert (result.earlier, result.kept) == ("replaced", None)
    assert dst.read_bytes() != before
    assert sorted(p.name for p in dst.parent.iterdir()) == ["film.contact.png", "film.manifest.json", "film.mp4"]


# --- a cut join's soundtrack, encoded ahead (while the last clip's video is normalised) ----------


def sound(path: Path) -> np.ndarray:
    """The decoded audio, one row per channel (48 kHz)."""

    def planar(f) -> np.ndarray:
        a = f.to_ndarray()
        return a if f.format.is_planar else a.reshape(-1, len(f.layout.channels)).T

    with av.open(str(path)) as c:
        return np.concatenate([planar(f) for f in c.decode(c.streams.audio[0])], axis=1)


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def test_a_clips_sound_is_taken_exactly_as_normalise_makes_it(mixed, tmp_path):
    short = clip_audio(mixed[2], tmp_path / "short.wav", CUT, seconds=1)  # a 0.8 s clip: padded
    silent = clip_audio(mixed[1], tmp_path / "silent.wav", CUT, seconds=1)
    assert sound(short).shape == sound(silent).shape == (2, 48000)
    assert np.abs(sound(silent)).max() == 0 and np.abs(sound(short)[:, :30000]).max() > 0.05
    assert np.abs(sound(short)[:, 40000:]).max() < 1e-3  # the 0.8 s clip's sound, then silence


def test_a_cut_joins_soundtrack_encoded_ahead_is_copied_and_in_place(colours, tmp_path):
    normalised = normalise_all(colours, CUT, tmp_path / "n")
    wavs = [clip_audio(p, tmp_path / f"{i}.wav", CUT, seconds=1) for i, p in enumerate(colours)]
    track = encode_soundtrack(wavs, [1, 1, 1], CUT, tmp_path / "track.m4a")
    result = join(normalised, [1, 1, 1], CUT, tmp_path / "final.mp4", audio=track)
    assert result.audio_copied and result.video_copied
    assert_plays_to_the_end(result.path, 3.0)
    assert audio_packets(result.path) == audio_packets(track)  # copied, not encoded again
    # red has a tone, green is silent, blue has a tone: each second's sound where its picture is
    loud = [float(np.abs(sound(result.path)[:, s * 48000 + 4800 : (s + 1) * 48000 - 4800]).max()) for s in range(3)]
    assert loud[0] > 0.05 and loud[1] < 0.01 and loud[2] > 0.05
    plain = join(normalised, [1, 1, 1], CUT, tmp_path / "plain.mp4")
    assert not plain.audio_copied and sound(plain.path).shape[1] == pytest.approx(sound(result.path).shape[1], abs=1024)


def test_a_soundtrack_kept_between_runs_is_named_by_what_it_is_made_of(colours, tmp_path):
    wavs = [clip_audio(p, tmp_path / f"{i}.wav", CUT, seconds=1) for i, p in enumerate(colours)]
    pieces = tmp_path / "pieces"
    track = soundtrack_stored(wavs, [1, 1, 1], CUT, pieces)
    made = track.stat().st_mtime_ns
    again = soundtrack_stored(wavs, [1, 1, 1], CUT, pieces)
    assert again == track and again.stat().st_mtime_ns == made  # found, not encoded again
    under = make_clip(tmp_path / "under.mp4", size="16x16", fps=25, seconds=1, tone=220)
    louder = soundtrack_stored(wavs, [1, 1, 1], replace(CUT, soundtrack=str(under), soundtrack_volume=0.5), pieces)
    quieter = soundtrack_stored(wavs, [1, 1, 1], replace(CUT, soundtrack=str(under), soundtrack_volume=0.2), pieces)
    webm = soundtrack_stored(wavs, [1, 1, 1], replace(CUT, path="out.webm"), pieces)
    assert len({track, louder, quieter, webm}) == 4 and webm.suffix == ".webm"


def test_a_soundtrack_ahead_is_for_cuts_only(colours, tmp_path):
    wavs = [clip_audio(p, tmp_path / f"{i}.wav", FADE, seconds=1) for i, p in enumerate(colours)]
    with pytest.raises(AssemblyError, match="cuts only"):
        encode_soundtrack(wavs, [1, 1, 1], FADE, tmp_path / "track.m4a")
