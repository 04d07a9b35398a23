"""The cut as a timeline an editor opens: OpenTimelineIO (.otio), FCPXML (.fcpxml) and CMX3600 EDL (.edl).

A timeline is made from a run's manifest (report/manifest.py), so `shotflow export` and
`shotflow run --export` write the same thing and need nothing but the manifest. It has one frame
rate (the output's) and two tracks, picture and sound, each with one clip per shot, named by its
id and pointing at the shot's NORMALISED clip (the picked take as the assembly brought it to the
output's size, frame rate and sound, kept in the clip store). Each picture clip has a marker with
the shot id, its take when it has several, its prompt and its fal request id (all in the
marker's one-line text, and as `shotflow` metadata).

An overlapping cut (crossfade, fade through a colour, wipe, slide) is an OTIO Transition that
starts where the next clip starts in the video: in_offset 0, out_offset the overlap in frames
(the clip before it keeps those frames as its handle). So every clip's source range starts at
its first frame, the clips add up to the video's length, and a clip's visible range (with the
handles its transitions use) is the whole normalised clip. A cut is no transition.

What each format keeps, as OpenTimelineIO 0.18 and its adapters write it and read it back
(tests/test_export.py):
- OTIO: all of the above: the picture's transitions named by their effect, the sound's
  `crossfade` or `dip` (through silence, under a fade through a colour), marker metadata.
- FCPXML (otio-fcpx-xml-adapter): the clips with their in and out points and files, the sound as
  clips connected below the picture, the markers' text (not their metadata). No transitions:
  the adapter leaves them out, so each overlap is written as a cut where the next clip starts,
  and a warning says so. Only 24, 25, 30, 50 and 60 fps (the adapter's table). The adapter's
  reader turns rational times into frames by truncating a float, so read back at 25, 30, 50 or
  60 fps some lengths come out a frame short; the file itself is exact.
- EDL (otio-cmx3600-adapter): the picture only (video events; a warning says so), with source
  and record timecode; every overlap is a dissolve of its length, whatever its effect (a warning
  names the wipes, slides and fades); markers are LOC comments in capitals. SMPTE rates only
  (24, 25, 30, 48, 50, 60). Read back by the adapter, a clip a dissolve leads into gets the file
  and the marker of the clip before it as well (the reader takes the event's FROM lines; the
  file names both clips, FROM and TO).

No dissolve was refused by either adapter at these rates. The soundtrack a storyboard mixes in
(output.audio) is in no timeline (a warning says so).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

import opentimelineio as otio
from opentimelineio.opentime import RationalTime, TimeRange

from shotflow.assembly.transitions import EFFECTS
from shotflow.errors import ShotflowError
from shotflow.report.manifest import read_manifest, sidecar
from shotflow.store.atomic import write_text_atomic

ExportFormat = Literal["otio", "fcpxml", "edl"]
FORMATS: tuple[str, ...] = ("otio", "fcpxml", "edl")
ADAPTERS = {"otio": "otio_json", "fcpxml": "fcpx_xml", "edl": "cmx_3600"}
NAMES = {"otio": "OTIO", "fcpxml": "FCPXML", "edl": "EDL"}
# the frame rates each adapter can write (None: any)
RATES: dict[str, tuple[int, ...] | None] = {"otio": None, "fcpxml": (24, 25, 30, 50, 60), "edl": (24, 25, 30, 48, 50, 60)}
DISSOLVE = "crossfade"  # the one effect every format calls a dissolve
PICTURE, SOUND = "picture", "sound"  # the timeline's two tracks


@dataclass(frozen=True)
class Exported:
    """A timeline written for an editor: where, what it holds, and what this format could not keep."""

    format: str
    path: Path
    clips: int
    transitions: int  # kept in this file
    sound: bool  # whether it has the sound track
    warnings: tuple[str, ...] = ()


def timeline_path(video: str | Path, fmt: str) -> Path:
    """out/film.mp4 -> out/film.otio (.fcpxml, .edl): next to the video."""
    return sidecar(video, fmt)


def check_formats(formats, fps: int) -> None:
    """ShotflowError naming the format and what it takes, for a format that cannot be written at
    `fps` (checked before a run pays for anything)."""
    for fmt in formats:
        if fmt not in FORMATS:
            raise ShotflowError(f"export format '{fmt}': not one of {', '.join(FORMATS)}")
        rates = RATES[fmt]
        if rates is not None and fps not in rates:
            raise ShotflowError(
                f"export format '{fmt}': {NAMES[fmt]} timelines run at {', '.join(map(str, rates))} fps, "
                f"not {fps} fps (output.fps): export otio, or set output.fps to one of those"
            )


# --- the timeline --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shot:
    id: str
    file: Path
    frames: int  # the normalised clip's length
    cut_in: tuple[str, int]  # the cut into this shot: effect, overlap frames (0 for a cut or the first shot)
    info: dict[str, Any]  # the marker's metadata


def build_timeline(manifest: Mapping[str, Any], manifest_path: str | Path) -> otio.schema.Timeline:
    """The run's cut as an OTIO timeline (see the module doc); ShotflowError naming the shot whose
    normalised clip is not there (and how to get it back) or a manifest that records none."""
    fps = int((manifest.get("output") or {}).get("fps") or 0)
    if fps < 1:
        raise ShotflowError(f"{manifest_path}: the manifest gives no frame rate for the video")
    shots = [_shot(s, i, manifest, manifest_path) for i, s in enumerate(manifest.get("shots") or [])]
    if not shots:
        raise ShotflowError(f"{manifest_path}: the manifest lists no shots")

    timeline = otio.schema.Timeline(
        name=manifest.get("title") or Path(manifest_path).name.removesuffix(".manifest.json"),
        global_start_time=RationalTime(0, fps),
        metadata={"shotflow": {"storyboard": manifest.get("storyboard"), "video": (manifest.get("output") or {}).get("path")}},
    )
    for i, shot in enumerate(shots):
        tail = shots[i + 1].cut_in[1] if i + 1 < len(shots) else 0
        if shot.cut_in[1] + tail >= shot.frames:
            raise ShotflowError(f"{manifest_path}: shot '{shot.id}': {shot.frames} frames cannot hold its overlaps")
    timeline.tracks.append(_track(PICTURE, otio.schema.TrackKind.Video, shots, fps))
    timeline.tracks.append(_track(SOUND, otio.schema.TrackKind.Audio, shots, fps))
    return timeline


def _track(name: str, kind: str, shots: list[_Shot], fps: int) -> otio.schema.Track:
    """One clip per shot, and a transition for each overlapping cut: in the picture, named by its
    effect; in the sound, `crossfade` or `dip` (through silence: a fade through a colour), as the
    assembly mixes it (shotflow/assembly/transitions.py). Markers are on the picture's clips."""

    def t(frames: int) -> RationalTime:
        return RationalTime(frames, fps)

    track = otio.schema.Track(name=name, kind=kind)
    for i, shot in enumerate(shots):
        effect, overlap = shot.cut_in
        tail = shots[i + 1].cut_in[1] if i + 1 < len(shots) else 0
        if overlap:
            said = effect if kind == otio.schema.TrackKind.Video else ("dip" if EFFECTS[effect].dips else DISSOLVE)
            track.append(
                otio.schema.Transition(
                    name=said,
                    transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve
                    if said == DISSOLVE
                    else otio.schema.TransitionTypes.Custom,
                    in_offset=t(0),
                    out_offset=t(overlap),
                    metadata={"shotflow": {"effect": effect, "from": shots[i - 1].id, "into": shot.id}},
                )
            )
        clip = otio.schema.Clip(
            name=shot.id,
            media_reference=otio.schema.ExternalReference(
                target_url=shot.file.as_uri(), available_range=TimeRange(t(0), t(shot.frames))
            ),
            source_range=TimeRange(t(0), t(shot.frames - tail)),
            metadata={"shotflow": shot.info},
        )
        if kind == otio.schema.TrackKind.Video:
            clip.markers.append(
                otio.schema.Marker(
                    name=marker_text(shot.info),
                    marked_range=TimeRange(t(0), t(1)),
                    color=otio.schema.MarkerColor.BLUE,
                    metadata={"shotflow": shot.info},
                )
            )
        track.append(clip)
    return track


def marker_text(info: Mapping[str, Any]) -> str:
    """A clip's marker as one line: `opening (take 2): a red door at dawn [fal request 1a2b...]`."""
    who = info["shot"] + (f" (take {info['take']})" if info.get("take") else "")
    prompt = " ".join(str(info.get("prompt") or "").split())  # one line: an EDL comment ends at a newline
    request = f"fal request {info['request_id']}" if info.get("request_id") else "no fal request"
    return f"{who}: {prompt} [{request}]" if prompt else f"{who} [{request}]"


def _shot(record: Mapping[str, Any], index: int, manifest: Mapping[str, Any], manifest_path) -> _Shot:
    shot_id = str(record.get("id"))
    storyboard = manifest.get("storyboard") or "the storyboard"
    normalised = record.get("normalised")
    if not isinstance(normalised, dict) or not normalised.get("path"):
        raise ShotflowError(
            f"{manifest_path}: shot '{shot_id}': the manifest records no normalised clip (written before shotflow "
            f"could export): `shotflow run {storyboard}` renders again from the clip store, without paying again, and records it"
        )
    file = Path(normalised["path"])
    if not file.is_file():
        raise ShotflowError(
            f"shot '{shot_id}': its normalised clip {file} is gone (the clip store was cleaned?): "
            f"`shotflow run {storyboard}` makes it again from the stored clip without paying again "
            "(a clip gone from the store too is generated again, which fal charges for), then export again"
        )
    cut = record.get("cut_into") or {}
    cut_in = (str(cut.get("effect") or "cut"), int(cut.get("frames") or 0)) if index else ("cut", 0)
    info = {
        "shot": shot_id,
        **({"take": record["take"]} if record.get("take") else {}),
        "prompt": (record.get("body") or {}).get("prompt"),
        "request_id": record.get("request_id"),
        "model": record.get("model"),
    }
    return _Shot(shot_id, file, int(normalised.get("frames") or 0), cut_in, info)


# --- the files -----------------------------------------------------------------------------


def export_timeline(manifest_path: str | Path, fmt: str, out: str | Path | None = None) -> Exported:
    """Write the run's cut (from its manifest) as `fmt` at `out` (default: next to the video);
    the warnings say what this format could not keep."""
    manifest_path = Path(manifest_path)
    manifest = read_manifest(manifest_path)
    fps = int((manifest.get("output") or {}).get("fps") or 0)
    check_formats([fmt], fps)
    timeline = build_timeline(manifest, manifest_path)
    video = (manifest.get("output") or {}).get("path") or manifest_path.name.removesuffix(".manifest.json")
    path = Path(out) if out is not None else timeline_path(video, fmt)
    cuts = [t for t in timeline.tracks[0] if isinstance(t, otio.schema.Transition)]  # the picture's
    kept, sound, warnings = len(cuts), True, []
    if fmt == "fcpxml" and cuts:
        for track in timeline.tracks:  # as the adapter would, but said: each overlap is a cut where the next clip starts
            for transition in [t for t in track if isinstance(t, otio.schema.Transition)]:
                track.remove(transition)
        kept = 0
        warnings.append(
            f"{path}: FCPXML keeps no transitions (OpenTimelineIO's FCPXML adapter leaves them out), so "
            + _listed(cuts)
            + (" is a cut" if len(cuts) == 1 else " are cuts")
            + " where the next clip starts; the .otio export keeps them"
        )
    elif fmt == "edl":
        sound = False
        other = [t for t in cuts if t.name != DISSOLVE]
        if other:
            warnings.append(
                f"{path}: an EDL written by OpenTimelineIO makes every transition a dissolve, so "
                + _listed(other)
                + (" is a dissolve" if len(other) == 1 else " are dissolves")
                + " of the same length; the .otio export keeps their effects"
            )
        warnings.append(
            f"{path}: the EDL has the picture only (OpenTimelineIO's EDL adapter writes the video track's events): "
            "each clip's sound is in its file; the .otio and .fcpxml exports have a sound track"
        )
    soundtrack = ((manifest.get("fingerprint") or {}).get("inputs") or {}).get("soundtrack")
    if soundtrack:
        warnings.append(
            f"{path}: the soundtrack {soundtrack.get('path')} is mixed into the video only, not in the timeline: "
            "each clip brings its own sound; add it in the editor"
        )
    # the EDL adapter moves cut points on the timeline it is given: it gets a copy
    text = otio.adapters.write_to_string(copy.deepcopy(timeline), adapter_name=ADAPTERS[fmt])
    try:
        write_text_atomic(path, text, mode=0o644)
    except OSError as exc:
        raise ShotflowError(f"{path}: cannot write the {NAMES[fmt]} timeline ({exc.strerror or exc})") from None
    return Exported(fmt, path, len(list(timeline.tracks[0].find_clips())), kept, sound, tuple(warnings))


def _listed(transitions) -> str:
    """`the crossfade from 'a' into 'b' and the wipeleft from 'b' into 'c'`"""
    said = [f"the {t.name} from '{t.metadata['shotflow']['from']}' into '{t.metadata['shotflow']['into']}'" for t in transitions]
    return said[0] if len(said) == 1 else ", ".join(said[:-1]) + " and " + said[-1]


def described(exported: Exported) -> str:
    """One line for the terminal: `out/film.otio (OTIO: 3 clips, 2 transitions; picture and sound)`."""
    kept = f", {exported.transitions} transition{'s' if exported.transitions != 1 else ''}" if exported.transitions else ""
    tracks = "picture and sound" if exported.sound else "picture only"
    return (
        f"{exported.path} ({NAMES[exported.format]}: {exported.clips} clip{'s' if exported.clips != 1 else ''}{kept}; {tracks})"
    )


def export_each(manifest_path: str | Path, formats) -> list[dict[str, Any]]:
    """Every format in `formats` written next to the video (`shotflow run --export`): one record
    each, JSON-ready: format, path, description (`described`) and warnings, or format and error
    (a timeline that could not be written does not undo the video)."""
    records = []
    for fmt in dict.fromkeys(formats):
        try:
            exported = export_timeline(manifest_path, fmt)
        except ShotflowError as exc:
            records.append({"format": fmt, "error": str(exc)})
            continue
        records.append(
            {"format": fmt, "path": str(exported.path), "description": described(exported), "warnings": list(exported.warnings)}
        )
    return records
