"""The effects an overlapping cut may have (`EFFECTS`), and the ffmpeg filters that draw one: the
overlap's video (`render_overlap`: xfade) and its sound (`overlap_audio`: a crossfade, or a dip
through silence).

A new transition is a line in `EFFECTS` when ffmpeg's xfade draws it (its sound crossfades, or
dips with `dips=True`); one xfade cannot draw gets a field in `Effect` and a branch in
`render_overlap`. The storyboard names the transitions it accepts (storyboard.schema's
TransitionType, mapped to these names by storyboard.transitions.effect_name): add the new name
there too; test_assemble checks that every one of them has an effect here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ffmpeg as ff

from shotflow.assembly.encoding import AUDIO_RATE, WAV_ARGS, encode, video_args
from shotflow.assembly.recipe import us_up
from shotflow.model import OutputSpec


@dataclass(frozen=True)
class Effect:
    """How one overlapping cut is drawn: ffmpeg xfade's transition, and whether the sound dips."""

    xfade: str
    dips: bool = False  # through silence (a fade through a colour), else a crossfade of the sound


# the effects a cut may have (plan.CutSpec.effect; "cut" is no overlap), by the storyboard's names
# (a fade is named by its colour): the wipes and slides chosen for reading well on any picture
EFFECTS: dict[str, Effect] = {
    "crossfade": Effect("fade"),
    "fadeblack": Effect("fadeblack", dips=True),
    "fadewhite": Effect("fadewhite", dips=True),
    **{
        name: Effect(name)
        for name in ("wipeleft", "wiperight", "wipeup", "wipedown", "slideleft", "slideright", "slideup", "slidedown")
    },
}


def render_overlap(a: Path, b: Path, dst: Path, n: int, t: int, out: OutputSpec, effect: str, timeout: float) -> None:
    """The last t frames of `a` giving way to the first t frames of `b` by `effect`, by the recipe."""
    fps = out.fps
    # seek to the keyframe at the tail and keep everything from it: an accurate seek would
    # compare against a timestamp rounded to microseconds and could drop that very frame
    tail_in = ff.input(str(a), ss=f"{us_up(n - t, fps)}us", noaccurate_seek=None)
    head_in = ff.input(str(b), t=f"{(t + 0.5) / fps:.6f}")
    tail = tail_in.video.filter("trim", end_frame=t).filter("setpts", "PTS-STARTPTS")
    head = head_in.video.filter("trim", end_frame=t).filter("setpts", "PTS-STARTPTS")
    video = ff.filter([tail, head], "xfade", transition=EFFECTS[effect].xfade, duration=f"{t / fps:.6f}", offset=0)
    video = video.filter("trim", end_frame=t).filter("setpts", "PTS-STARTPTS")
    # one thread: overlaps are rendered `jobs` at a time, and for half a second of video
    # x264's thread pools cost more (in allocation) than they save
    encode(dst, video, what=f"{effect} from {a.name} into {b.name}", timeout=timeout, f="mp4", threads=1, **video_args(out))


def overlap_audio(a: Path, b: Path, dst: Path, n: int, t: int, fps: int, effect: str, timeout: float) -> None:
    """The audio under the overlap of `a` (n frames) into `b`: exact to the sample, as a WAV.

    A fade through a colour dips through silence (out over the first half, in over the second);
    every other overlap crossfades the sound."""
    samples = round(t * AUDIO_RATE / fps)
    total = round(n * AUDIO_RATE / fps)
    # the tail cut by sample count rather than by a seek
    tail = (
        ff.input(str(a)).audio.filter("atrim", start_sample=total - samples, end_sample=total).filter("asetpts", "PTS-STARTPTS")
    )
    head = (
        ff.input(str(b), t=f"{(t + 0.5) / fps:.6f}").audio.filter("atrim", end_sample=samples).filter("asetpts", "PTS-STARTPTS")
    )
    if EFFECTS[effect].dips:
        half = samples // 2
        tail = tail.filter("afade", type="out", start_sample=0, nb_samples=half, curve="tri")
        head = head.filter("afade", type="in", start_sample=half, nb_samples=samples - half, curve="tri")
        faded = ff.filter([tail, head], "amix", inputs=2, duration="first", normalize=0)
        faded = faded.filter("atrim", end_sample=samples)
    else:
        faded = ff.filter([tail, head], "acrossfade", ns=samples, c1="tri", c2="tri")
    encode(dst, faded, what=f"the audio of the {effect} from {a.name} into {b.name}", timeout=timeout, **WAV_ARGS)
