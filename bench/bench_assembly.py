"""Assembly benchmark: shotflow's normalise-then-stream-copy against the obvious alternatives.

    .venv/bin/python bench/bench_assembly.py [--quick] [--workdir DIR]

Makes 10 mixed clips with testsrc2 (720p, 1080p and portrait; 24, 25 and 30 fps; some silent;
3-5 s), then measures, each in a fresh subprocess so that resource.getrusage sees only that
measurement's work (CPU of the Python process and of its ffmpeg children):

- total assembly CPU (normalise every clip + join) against MoviePy's concatenate_videoclips,
  with cuts and with crossfades;
- the time from the last clip landing to the final file (the join; and its normalisation plus
  the join) against one ffmpeg pass over all clips (concat filter; xfade chain for crossfades);
- the same when prepare_join has already rendered every piece not touching the last clip
  (as the flow does while clips land);
- re-rendering after one shot changes (one normalisation + join) against the full assembly;
- peak memory (of the largest ffmpeg child, from /proc: see ChildMemory) at 10 and at 50 shots;
- the tail of a run after its last clip lands, as the flow does it (issue 10): before (the
  contact sheet decodes every clip after the join, then the manifest hashes the files) against
  after (the sheet's frames grabbed as clips landed, the sheet drawn while the manifest is
  written), with that clip's normalisation and the join timed apart: "last clip -> final file"
  is the normalisation plus the join, and a changed shot's fixed cost is the join plus what
  comes after the final file.

Every baseline is measured in the same run on the same machine; only ratios are claimed.
`--quick` uses quarter-size clips of 2-3 s and skips the 50-shot one-pass baseline: it shows the
bench works, but at 320x180 the ~50 ms start-up of each ffmpeg process dominates, so its ratios
say nothing about the targets (which are for the full run).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ffmpeg as ff  # noqa: E402

from shotflow.assembly.join import join, prepare_join  # noqa: E402
from shotflow.assembly.normalise import clip_audio, normalise  # noqa: E402
from shotflow.assembly.soundtrack import encode_soundtrack  # noqa: E402
from shotflow.media import ffmpeg as runner  # noqa: E402
from shotflow.model import OutputSpec  # noqa: E402

# (width, height, fps, seconds, audio): what ten different models deliver
CLIPS = [
    (1280, 720, 24, 5, True),
    (1920, 1080, 30, 4, False),
    (720, 1280, 30, 5, True),
    (1280, 720, 25, 3, True),
    (1920, 1080, 24, 5, True),
    (720, 1280, 24, 4, False),
    (1280, 720, 30, 5, True),
    (1920, 1080, 25, 3, False),
    (1280, 720, 24, 4, True),
    (720, 1280, 25, 5, True),
]
FADE_SECONDS = 0.5


def settings(quick: bool):
    scale = 4 if quick else 1
    clips = [(w // scale, h // scale, fps, max(1, s // 2) + 1 if quick else s, a) for w, h, fps, s, a in CLIPS]
    cut = OutputSpec(
        path="out.mp4", width=1280 // scale, height=720 // scale, fps=30, fit="pad", transition="cut", transition_seconds=0.0
    )
    fade = replace(cut, transition="crossfade", transition_seconds=FADE_SECONDS)
    return clips, cut, fade


# --- media ----------------------------------------------------------------------------------


def make_sources(work: Path, clips) -> list[Path]:
    src = work / "src"
    src.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (w, h, fps, seconds, audio) in enumerate(clips):
        path = src / f"{i:02d}-{w}x{h}-{fps}-{seconds}s{'-audio' if audio else ''}.mp4"
        if not path.exists():
            args = [
                runner.ffmpeg_exe(),
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                f"testsrc2=s={w}x{h}:r={fps}:d={seconds}",
            ]
            if audio:
                args += ["-f", "lavfi", "-i", f"sine=f={220 * (i % 4 + 1)}:r=44100:d={seconds}", "-c:a", "aac", "-ac", "1"]
            args += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", "-shortest", str(path)]
            subprocess.run(args, check=True)
        paths.append(path)
    return paths


# --- measurements, each run in its own process -----------------------------------------------


def normalise_all(sources, durations, out, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [normalise(p, folder / f"{i:02d}.mp4", out, seconds=d) for i, (p, d) in enumerate(zip(sources, durations))]


def many(clips: list[Path], count: int, folder: Path) -> list[Path]:
    """`count` distinct files (copies of the clips), so nothing is shared by name."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        path = folder / f"{k:03d}.mp4"
        if not path.exists():
            shutil.copyfile(clips[k % len(clips)], path)
        paths.append(path)
    return paths


def one_pass(sources, durations, out: OutputSpec, dst: Path) -> None:
    """Every clip in one ffmpeg filter graph: scale/pad/fps per input, then concat or an xfade chain."""
    w, h, fps, t = out.width, out.height, out.fps, out.crossfade
    videos, audios = [], []
    for i, (path, seconds) in enumerate(zip(sources, durations)):
        source = ff.input(str(path))
        v = (
            source.video.filter("scale", w, h, force_original_aspect_ratio="decrease", force_divisible_by=2)
            .filter("pad", w, h, "(ow-iw)/2", "(oh-ih)/2")
            .filter("setsar", 1)
            .filter("fps", fps)
            .filter("format", "yuv420p")
            .filter("trim", duration=seconds)
            .filter("setpts", "PTS-STARTPTS")
        )
        if has_audio(path):
            a = source.audio
        else:
            # nb_samples differs per input only so that ffmpeg-python does not merge equal nodes
            a = ff.input(f"anullsrc=r=48000:cl=stereo:nb_samples={1024 + i}", f="lavfi", t=seconds).audio
        a = (
            a.filter("aresample", 48000)
            .filter("aformat", sample_fmts="fltp", channel_layouts="stereo")
            .filter("apad")
            .filter("atrim", duration=seconds)
            .filter("asetpts", "PTS-STARTPTS")
        )
        videos.append(v)
        audios.append(a)
    if t:
        video, audio, offset = videos[0], audios[0], 0.0
        for i in range(1, len(videos)):
            offset += durations[i - 1] - t
            video = ff.filter([video, videos[i]], "xfade", transition="fade", duration=t, offset=f"{offset:.4f}")
            audio = ff.filter([audio, audios[i]], "acrossfade", d=t)
        joined = [video, audio]
    else:
        interleaved = [s for pair in zip(videos, audios) for s in pair]
        joined = ff.concat(*interleaved, v=1, a=1).node
        joined = [joined[0], joined[1]]
    stream = ff.output(
        *joined,
        str(dst),
        **{"c:v": "libx264", "preset": "veryfast", "crf": 20, "pix_fmt": "yuv420p", "c:a": "aac", "b:a": "192k"},
    )
    runner.run(stream, what="one-pass join", timeout=3600)


def has_audio(path: Path) -> bool:
    from shotflow.media.probe import probe

    return probe(path).has_audio


def moviepy_join(sources, out: OutputSpec, dst: Path) -> None:
    from moviepy import VideoFileClip, concatenate_videoclips, vfx

    clips = []
    for i, path in enumerate(sources):
        clip = VideoFileClip(str(path))
        clip = clip.resized(min(out.width / clip.w, out.height / clip.h))
        if out.crossfade and i > 0:
            clip = clip.with_effects([vfx.CrossFadeIn(out.crossfade)])
        clips.append(clip)
    final = concatenate_videoclips(clips, method="compose", padding=-out.crossfade if out.crossfade else 0)
    final.write_videofile(
        str(dst), fps=out.fps, codec="libx264", preset="veryfast", audio_codec="aac", threads=os.cpu_count(), logger=None
    )
    for clip in clips:
        clip.close()


class ChildMemory:
    """Peak RSS of this process's ffmpeg children, read from /proc while they run.

    getrusage(RUSAGE_CHILDREN).ru_maxrss cannot be used: Linux carries the forking Python's RSS
    across exec into the child's maxrss, so every child would report at least this process's
    size. VmHWM belongs to the exec'd image alone; it only grows, so sampling it every few ms
    misses at most the last few ms of a child's life."""

    def __init__(self, interval: float = 0.005):
        import threading

        self.interval = interval
        self.peak_kb: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        me = os.getpid()
        while not self._stop.wait(self.interval):
            for listing in Path(f"/proc/{me}/task").glob("*/children"):
                try:
                    pids = listing.read_text().split()
                except OSError:
                    continue
                for pid in pids:
                    try:
                        if not Path(f"/proc/{pid}/comm").read_text().startswith("ffmpeg"):
                            continue  # not exec'd yet, or not ffmpeg
                        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                            if line.startswith("VmHWM:"):
                                kb = int(line.split()[1])
                                self.peak_kb[int(pid)] = max(kb, self.peak_kb.get(int(pid), 0))
                    except (OSError, ValueError):
                        continue

    @property
    def peak_mb(self) -> float:
        return max(self.peak_kb.values(), default=0) / 1024


def measure(name: str, work: Path, quick: bool) -> dict:
    """Run one measurement in this (fresh) process and report its cost."""
    clips, cut, fade = settings(quick)
    sources = make_sources(work, clips)
    durations = [c[3] for c in clips]
    out = fade if name.endswith("fade") else cut
    norm_dir = work / ("norm-fade" if out.crossfade else "norm-cut")
    prepared = sorted(norm_dir.glob("*.mp4")) if norm_dir.exists() else []
    dst = work / "out" / f"{name}.mp4"
    dst.parent.mkdir(parents=True, exist_ok=True)
    extra = {}
    if name.startswith("prepared_"):  # not timed: what prepare_join did as the first nine clips landed
        shutil.rmtree(work / f"pieces-{name}", ignore_errors=True)
        for landed in range(1, len(prepared)):
            prepare_join(prepared[:landed] + [None] * (len(prepared) - landed), durations, out, work / f"pieces-{name}")
    me0, kids0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    before = time.perf_counter()
    watcher = ChildMemory().__enter__()
    if name.startswith("full_"):
        result = join(normalise_all(sources, durations, out, norm_dir), durations, out, dst)
        extra["copied"] = result.video_copied
    elif name.startswith("join_"):
        result = join(prepared, durations, out, dst)
        extra["copied"] = result.video_copied
    elif name.startswith("last_"):  # the last clip lands: normalise it, then join
        last = normalise(sources[-1], work / "landed.mp4", out, seconds=durations[-1])
        join(prepared[:-1] + [last], durations, out, dst)
    elif name.startswith("warm_"):  # fill the pieces cache the way an earlier render would have
        join(prepared, durations, out, dst, pieces_dir=work / f"pieces-{name}")
    elif name.startswith("prepared_"):  # the last clip (already normalised) lands: join only
        result = join(prepared, durations, out, dst, pieces_dir=work / f"pieces-{name}")
        extra["transitions_rendered"] = result.transitions_rendered
    elif name.startswith("rerender_"):  # shot 4 changed: one normalisation, and the join reuses the rest
        changed = normalise(sources[4], work / "changed.mp4", out, seconds=durations[4])
        clips_now = prepared[:4] + [changed] + prepared[5:]
        result = join(clips_now, durations, out, dst, pieces_dir=work / f"pieces-warm_{name.split('_', 1)[1]}")
        extra["transitions_rendered"] = result.transitions_rendered
    elif name.startswith("tail_"):  # tail_before_cut / tail_after_cut: the flow's work once the last clip landed
        extra.update(tail(name.split("_")[1], sources, prepared, durations, out, work, dst))
    elif name.startswith("many"):  # many50_cut: 50 shots
        count = int(name[4:].split("_")[0])
        paths = many(prepared, count, work / f"many-{count}-{'fade' if out.crossfade else 'cut'}")
        join(paths, [durations[k % len(durations)] for k in range(count)], out, dst)
    elif name.startswith("onepass"):  # onepass10_cut
        count = int(name[7:].split("_")[0])
        srcs = many(sources, count, work / f"src-{count}") if count > len(sources) else sources[:count]
        one_pass(srcs, [durations[k % len(durations)] for k in range(count)], out, dst)
    elif name.startswith("moviepy_"):
        moviepy_join(sources, out, dst)
    else:
        raise SystemExit(f"unknown measurement {name}")
    wall = time.perf_counter() - before
    watcher.__exit__()
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)

    def cpu(a, b) -> float:
        return (b.ru_utime + b.ru_stime) - (a.ru_utime + a.ru_stime)

    return {
        "name": name,
        "wall": wall,
        # deltas: the measurement's own work, not this interpreter's imports
        "cpu_self": cpu(me0, me),
        "cpu_children": cpu(kids0, kids),
        "rss_self_mb": me.ru_maxrss / 1024,
        "rss_children_mb": watcher.peak_mb,
        "ffmpeg_runs": len(watcher.peak_kb),
        **extra,
    }


def tail(mode: str, sources, prepared, durations, out: OutputSpec, work: Path, dst: Path) -> dict:
    """The last clip lands: normalise it, join (the final file), then the contact sheet and the
    manifest's hashes. "before": the sheet decodes every clip after the join, then the hashes;
    "after": the frames and sounds of the earlier clips were taken as they landed (untimed, as
    in the flow); the last clip's sound is taken and the soundtrack encoded while its video is
    normalised, the join copies it, and the sheet is drawn beside the hashes."""
    from concurrent.futures import ThreadPoolExecutor
    from decimal import Decimal

    from shotflow.assembly import contactsheet
    from shotflow.model import ShotPlan
    from shotflow.store.digest import file_sha256

    shots = [
        ShotPlan(
            f"shot{i}",
            i,
            None,
            "bench",
            "bench/model",
            {},
            d,
            "16:9",
            "720p",
            out.width,
            out.height,
            out.fps,
            True,
            Decimal("0.5"),
        )
        for i, d in enumerate(durations)
    ]
    frames = None
    if mode == "after":
        t = time.perf_counter()
        frames = contactsheet.Frames()
        for src in sources[:-1]:
            frames.grab(src)
        frames.frame(sources[-2])  # (untimed: done while the other shots generated)
        for src in sources[:-1]:
            frames.frame(src)
        sounds = [
            clip_audio(src, work / f"sound-{i}.wav", out, seconds=d) for i, (src, d) in enumerate(zip(sources[:-1], durations))
        ]
        untimed = time.perf_counter() - t
    t0 = time.perf_counter()
    track = None
    if frames is not None:  # as the flow does: the soundtrack beside the last clip's normalisation

        def soundtrack() -> Path:
            last_sound = clip_audio(sources[-1], work / "sound-last.wav", out, seconds=durations[-1])
            return encode_soundtrack([*sounds, last_sound], durations, out, work / "soundtrack.m4a")

        with ThreadPoolExecutor(1) as pool:
            ahead = pool.submit(soundtrack)
            last = normalise(sources[-1], work / "landed.mp4", out, seconds=durations[-1])
            track = ahead.result()
    else:
        last = normalise(sources[-1], work / "landed.mp4", out, seconds=durations[-1])
    t1 = time.perf_counter()
    if frames is not None:
        frames.grab(sources[-1])
    join(prepared[:-1] + [last], durations, out, dst, audio=track)
    t2 = time.perf_counter()
    sheet = dst.with_suffix(".contact.png")

    def hashes() -> None:
        for path in [*sources, dst]:
            file_sha256(path)

    if frames is None:
        contactsheet.contact_sheet(shots, sources, sheet, title="bench")
        hashes()
    else:
        with ThreadPoolExecutor(1) as pool:
            drawn = pool.submit(contactsheet.contact_sheet, shots, sources, sheet, title="bench", frames=frames)
            hashes()
            drawn.result()
        frames.close()
    t3 = time.perf_counter()
    return {
        "normalise_s": t1 - t0,
        "join_s": t2 - t1,
        "after_final_s": t3 - t2,
        **({"grabbed_untimed_s": untimed} if frames else {}),
    }


def run(name: str, work: Path, quick: bool) -> dict:
    argv = [sys.executable, __file__, "--measure", name, "--workdir", str(work)] + (["--quick"] if quick else [])
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["cpu"] = result["cpu_self"] + result["cpu_children"]
    print(
        f"  {name:<16} wall {result['wall']:7.2f} s  cpu {result['cpu']:7.2f} s (ffmpeg {result['cpu_children']:7.2f} s)  "
        f"peak RSS: ffmpeg {result['rss_children_mb']:6.0f} MB over {result['ffmpeg_runs']:3d} runs, python {result['rss_self_mb']:5.0f} MB",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="quarter-size, shorter clips; skip the 50-shot one-pass baseline")
    parser.add_argument("--workdir", type=Path, default=None, help="where clips and outputs go (default: a temporary folder)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.workdir or Path(os.environ.get("TMPDIR", "/tmp")) / ("shotflow-bench-quick" if args.quick else "shotflow-bench")
    if args.measure:
        print(json.dumps(measure(args.measure, work, args.quick)))
        return

    if work.exists() and not args.workdir:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    clips, cut, fade = settings(args.quick)
    make_sources(work, clips)
    print(
        f"{len(clips)} clips, {sum(c[3] for c in clips)} s, into {cut.width}x{cut.height}@{cut.fps}; crossfade {FADE_SECONDS} s; "
        f"{os.cpu_count()} cores; {runner.ffmpeg_version()}",
        flush=True,
    )
    r = {}
    names = [
        "full_cut",
        "full_fade",  # normalise all + join; also leaves the normalised clips for the rest
        "join_cut",
        "join_fade",
        "last_cut",
        "last_fade",
        "warm_cut",
        "warm_fade",
        "rerender_cut",
        "rerender_fade",
        "prepared_fade",
        "many10_cut",
        "many50_cut",
        "many10_fade",
        "many50_fade",
        "onepass10_cut",
        "onepass10_fade",
        "moviepy_cut",
        "moviepy_fade",
        "tail_before_cut",
        "tail_after_cut",
        "tail_before_cut",
        "tail_after_cut",  # twice each, interleaved: the best of two
    ]
    if not args.quick:
        names.append("onepass50_cut")
    for name in names:
        result = run(name, work, args.quick)
        if name not in r or result["wall"] < r[name]["wall"]:
            r[name] = result

    def ratio(a: float, b: float) -> str:
        return f"{a / b:6.1f}x"

    rows = [
        ("assembly CPU, cuts: MoviePy / shotflow (normalise all + join)", r["moviepy_cut"]["cpu"], r["full_cut"]["cpu"], "≥4x"),
        ("assembly CPU, crossfades: MoviePy / shotflow", r["moviepy_fade"]["cpu"], r["full_fade"]["cpu"], "≥4x"),
        ("last clip → file, cuts: one-pass concat / join only (wall)", r["onepass10_cut"]["wall"], r["join_cut"]["wall"], "≥5x"),
        (
            "last clip → file, cuts: one-pass concat / normalise last + join",
            r["onepass10_cut"]["wall"],
            r["last_cut"]["wall"],
            "",
        ),
        (
            "last clip → file, crossfades: one-pass xfade chain / join only",
            r["onepass10_fade"]["wall"],
            r["join_fade"]["wall"],
            "≥5x",
        ),
        (
            "last clip → file, crossfades: one-pass xfade / normalise last + join",
            r["onepass10_fade"]["wall"],
            r["last_fade"]["wall"],
            "",
        ),
        (
            "last clip → file, crossfades, after prepare_join of the earlier clips",
            r["onepass10_fade"]["wall"],
            r["prepared_fade"]["wall"],
            "≥5x",
        ),
        ("one shot changed, cuts: full / (one normalise + join) (CPU)", r["full_cut"]["cpu"], r["rerender_cut"]["cpu"], ""),
        (
            "one shot changed, crossfades: full / (one normalise + join) (CPU)",
            r["full_fade"]["cpu"],
            r["rerender_fade"]["cpu"],
            "",
        ),
        (
            "peak ffmpeg RSS, cut join: 50 shots / 10 shots",
            r["many50_cut"]["rss_children_mb"],
            r["many10_cut"]["rss_children_mb"],
            "flat (≈1x)",
        ),
        (
            "peak ffmpeg RSS, crossfade join: 50 shots / 10 shots",
            r["many50_fade"]["rss_children_mb"],
            r["many10_fade"]["rss_children_mb"],
            "flat (≈1x)",
        ),
    ]
    rows += [
        (
            "peak ffmpeg RSS at 10 shots, cuts: one-pass concat / shotflow join",
            r["onepass10_cut"]["rss_children_mb"],
            r["join_cut"]["rss_children_mb"],
            "",
        ),
        (
            "peak ffmpeg RSS at 10 shots, crossfades: one-pass xfade / shotflow join",
            r["onepass10_fade"]["rss_children_mb"],
            r["join_fade"]["rss_children_mb"],
            "",
        ),
    ]
    if "onepass50_cut" in r:
        rows.append(
            (
                "peak ffmpeg RSS, one-pass concat (the baseline): 50 shots / 10 shots",
                r["onepass50_cut"]["rss_children_mb"],
                r["onepass10_cut"]["rss_children_mb"],
                "(grows)",
            )
        )
    print()
    print(f"| {'comparison: A / B':<72} | {'A':>9} | {'B':>9} | {'A/B':>7} | target |")
    print(f"|{'-' * 74}|{'-' * 11}|{'-' * 11}|{'-' * 9}|--------|")
    for label, base, ours, target in rows:
        print(f"| {label:<72} | {base:9.2f} | {ours:9.2f} | {ratio(base, ours)} | {target} |")
    print()
    print(
        "peak RSS (MB): "
        + ", ".join(
            f"{n} {r[n]['rss_children_mb']:.0f}"
            for n in ("full_cut", "join_cut", "join_fade", "many50_cut", "many50_fade", "onepass10_cut", "onepass10_fade")
            + (("onepass50_cut",) if "onepass50_cut" in r else ())
        )
        + f", MoviePy python {r['moviepy_cut']['rss_self_mb']:.0f} / {r['moviepy_fade']['rss_self_mb']:.0f}"
    )
    before, after = r["tail_before_cut"], r["tail_after_cut"]
    print(
        f"last clip -> final file (cuts, 10 shots): before {before['normalise_s'] + before['join_s']:.2f} s = that clip's normalisation "
        f"{before['normalise_s']:.2f} s + the join {before['join_s']:.2f} s; after {after['normalise_s'] + after['join_s']:.2f} s = "
        f"{after['normalise_s']:.2f} s (with the soundtrack encoded beside it) + the join {after['join_s']:.2f} s (target: + at most 1 s); "
        f"the join: {before['join_s'] / after['join_s']:.1f}x faster"
    )
    print(
        f"after the final file (contact sheet, manifest hashes): before {before['after_final_s']:.2f} s, after {after['after_final_s']:.2f} s "
        f"({before['after_final_s'] / after['after_final_s']:.1f}x less; the frames were grabbed as clips landed: {after['grabbed_untimed_s']:.2f} s, untimed); "
        f"one changed shot's fixed cost here (join + after the file): before {before['join_s'] + before['after_final_s']:.2f} s, "
        f"after {after['join_s'] + after['after_final_s']:.2f} s (target ≤ 2 s)"
    )
    if args.quick:
        print("(--quick: tiny frames, so ffmpeg start-up dominates; run without --quick for figures)")
    print(
        f"video stream-copied in the joins: cut {r['full_cut'].get('copied')}, crossfade {r['full_fade'].get('copied')}; "
        f"overlaps re-rendered after one change: {r['rerender_fade'].get('transitions_rendered')}, "
        f"after prepare_join of the first {len(clips) - 1} clips: {r['prepared_fade'].get('transitions_rendered')}"
    )


if __name__ == "__main__":
    main()
