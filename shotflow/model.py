"""Plain data passed between the stages: a planned shot and the output it is cut into (from the
planner), what happened to a shot (the backends' events), and the clip that came back.

No behaviour beyond what the data itself answers (a shot's body hash, a plan's length and cost).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, ContextManager, Literal, Mapping

from shotflow.errors import ShotflowError

# the files written beside a final video NAME.mp4: NAME.contact.png, NAME.manifest.json, and
# NAME.takes.png when the storyboard has takes
SIDECARS = ("contact.png", "manifest.json", "takes.png")

# a frame's place in a request body until the moment it is sent: FRAME_REF + the frame's sha256.
# Cache keys, the journal and the manifest see this reference; only the submit sees the data URI.
FRAME_REF = "shotflow-frame:sha256:"


@dataclass(frozen=True)
class FrameInput:
    """A still sent as one of a shot's frames (continuity): which body field, what it is, where it is kept."""

    field: str  # the image endpoint's body field, e.g. "image_url", "tail_image_url"
    sha256: str  # of the stored file's bytes: what the cache key and the manifest record
    path: str  # the stored PNG or JPEG (under the cache's frames/)
    origin: str  # "last frame of <shot>", the still's path, or its URL

    @property
    def reference(self) -> str:
        return FRAME_REF + self.sha256


@dataclass(frozen=True)
class ShotPlan:
    """One shot, resolved: what is sent to which endpoint, and what comes back."""

    id: str
    index: int
    line: int | None
    model: str  # the catalog alias
    endpoint: str
    body: dict[str, Any]
    seconds: int
    aspect_ratio: str
    resolution: str
    width: int
    height: int
    fps: int
    audio: bool
    cost: Decimal | None
    # continuity: where the first (and last) frame come from; the endpoint is then the model's image endpoint
    source: str | None = None  # `from:`: the shot whose last frame is this shot's first frame
    image: str | None = None  # `image:`: a still as the first frame (an absolute path or an https URL)
    end_image: str | None = None  # `end_image:`: a still as the last frame
    image_field: str | None = None  # the image endpoint's body field for the first frame
    end_field: str | None = None  # ... and for the last frame (None: the endpoint takes none)
    # once resolved (the frames exist): one per frame field, and the body holds each one's reference
    frames: tuple[FrameInput, ...] = ()
    # takes: several paid generations of one shot, to pick from; take 1 is the shot's request as written
    take: int = 1  # which take this request is
    takes: int = 1  # how many the shot has
    request: str = ""  # the hash of the shot's request as written (take 1, frames left out): what picks are for

    @property
    def label(self) -> str:
        """How messages name this generation: the shot id, and the take when the shot has several."""
        return self.id if self.takes == 1 else f"{self.id} take {self.take}"

    @property
    def needs_frames(self) -> bool:
        return bool(self.source or self.image or self.end_image)

    @property
    def resolved(self) -> bool:
        """Whether the body is final: a shot that continues another knows its frames only once they exist."""
        return not self.needs_frames or bool(self.frames)

    @property
    def body_hash(self) -> str:
        if not self.resolved:
            raise ShotflowError(f"shot '{self.id}': its request depends on its first frame, which does not exist yet")
        return body_hash(self.endpoint, self.body, self.take)


@dataclass(frozen=True)
class CutSpec:
    """The cut into one shot: `effect` is "cut" (no overlap) or one of the assembly's overlaps
    ("crossfade", "fadeblack", "fadewhite", "wipeleft", ...: see `assembly.transitions.EFFECTS`)."""

    effect: str
    seconds: float = 0.0

    @property
    def overlap(self) -> float:
        """Seconds the two clips overlap (0 for a cut)."""
        return 0.0 if self.effect == "cut" else self.seconds


@dataclass(frozen=True)
class OutputSpec:
    """The final video every clip is brought to."""

    path: str
    width: int
    height: int
    fps: int
    fit: str
    transition: str  # the default cut's effect (see CutSpec)
    transition_seconds: float
    soundtrack: str | None = None
    soundtrack_volume: float = 1.0
    # the cut into shot i+1 is cuts[i]; empty: every cut is the default (`transition`)
    cuts: tuple[CutSpec, ...] = ()
    existing: str = "keep"  # an earlier, different video at `path`: "keep" (renamed) or "replace"

    @property
    def crossfade(self) -> float:
        """The default cut's overlap in seconds (0 for a cut)."""
        return CutSpec(self.transition, self.transition_seconds).overlap

    def cut_into(self, index: int) -> CutSpec:
        """The cut into clip `index` (>= 1)."""
        if self.cuts:
            return self.cuts[index - 1] if 1 <= index <= len(self.cuts) else CutSpec("cut")
        return CutSpec(self.transition, self.transition_seconds)


@dataclass(frozen=True)
class PathVar:
    """A var whose value went into a path: the preflight keeps it from climbing out of its folder."""

    name: str
    value: str
    where: str  # "output.path", "output.audio.path" or "--out"
    line: int | None = None


@dataclass(frozen=True)
class Plan:
    """Every shot of a storyboard in cut order, and the video they are cut into."""

    source: str
    title: str
    storyboard_hash: str
    shots: tuple[ShotPlan, ...]  # in cut order
    output: OutputSpec
    path_vars: tuple[PathVar, ...] = ()
    warnings: tuple[str, ...] = ()  # allowed but worth saying (e.g. `from:` a later shot), each with file and line
    # every take of every shot (cut order, then take): all are paid. `shots` holds the picked take of
    # each shot (take 1 until someone picks), which is what the video is cut from. Empty: one take each.
    generations: tuple[ShotPlan, ...] = ()
    picks_file: str | None = None  # where the picks and extra takes are kept (shotflow.picks)
    review: bool = False  # wait for approval before paying and for a pick of each shot's take
    review_timeout: int = 24 * 3600  # seconds a review gate waits before the run ends without spending

    @property
    def all_takes(self) -> tuple[ShotPlan, ...]:
        """Every generation the run pays for: each take of each shot."""
        return self.generations or self.shots

    @property
    def has_takes(self) -> bool:
        return any(s.takes > 1 for s in self.all_takes)

    def takes_of(self, shot_id: str) -> tuple[ShotPlan, ...]:
        self.shot(shot_id)  # an unknown id is an error naming the shots
        return tuple(s for s in self.all_takes if s.id == shot_id)

    def pick_of(self, shot_id: str) -> int:
        return self.shot(shot_id).take

    def with_picks(self, picks: Mapping[str, int]) -> Plan:
        """The plan with the given take of each named shot cut into the video."""
        chosen = list(self.shots)
        for shot_id, take in picks.items():
            takes = self.takes_of(shot_id)
            found = [t for t in takes if t.take == take]
            if not found:
                raise ShotflowError(
                    f"{self.source}: shot '{shot_id}' has no take {take} (takes: {', '.join(str(t.take) for t in takes)})"
                )
            chosen[found[0].index] = found[0]
        return dataclasses.replace(self, shots=tuple(chosen))

    @property
    def order(self) -> tuple[ShotPlan, ...]:
        """The shots in the order they can be generated: each source before the shots that continue
        it, otherwise in cut order."""
        by_id = {s.id: s for s in self.shots}
        placed: dict[str, ShotPlan] = {}
        for shot in self.shots:
            chain: list[ShotPlan] = []  # shot, its source, that one's source, ... not yet placed
            at: ShotPlan | None = shot
            while at is not None and at.id not in placed:
                if any(c.id == at.id for c in chain):
                    raise ShotflowError(f"{self.source}: from: makes a cycle ({' -> '.join(c.id for c in chain)} -> {at.id})")
                chain.append(at)
                at = by_id.get(at.source) if at.source else None
            placed.update((c.id, c) for c in reversed(chain))
        return tuple(placed.values())

    def descendants(self, shot_id: str) -> tuple[ShotPlan, ...]:
        """Every shot that starts, through `from:`, from `shot_id`'s clip (directly or not), in cut order."""
        found = {self.shot(shot_id).id}
        for shot in self.order:  # a source comes before its dependents, so one pass finds them all
            if shot.source in found:
                found.add(shot.id)
        return tuple(s for s in self.shots if s.id in found and s.id != shot_id)

    @property
    def generated_seconds(self) -> int:
        return sum(s.seconds for s in self.shots)

    @property
    def final_seconds(self) -> float:
        """The video's length: every clip, less each overlap (all whole frames, so exact)."""
        fps = self.output.fps
        overlap = sum(round(self.output.cut_into(i).overlap * fps) for i in range(1, len(self.shots)))
        return (self.generated_seconds * fps - overlap) / fps

    @property
    def overlapping(self) -> bool:
        """Whether any cut overlaps two clips (the join then renders those overlaps)."""
        return any(self.output.cut_into(i).overlap for i in range(1, len(self.shots)))

    @property
    def known_cost(self) -> Decimal:
        """What every generation (every take) costs, where its price is known."""
        return sum((s.cost for s in self.all_takes if s.cost is not None), Decimal(0))

    @property
    def unpriced(self) -> tuple[ShotPlan, ...]:
        """The shots whose price is not known (one entry per shot, whatever its takes)."""
        return tuple(s for s in self.shots if s.cost is None)

    def shot(self, shot_id: str) -> ShotPlan:
        for s in self.shots:
            if s.id == shot_id:
                return s
        raise ShotflowError(f"{self.source}: no shot '{shot_id}' (shots: {', '.join(s.id for s in self.shots)})")


def body_hash(endpoint: str, body: dict[str, Any], take: int = 1) -> str:
    """Content key of a generation: the endpoint and the exact body, canonically encoded; and the take
    after the first (two takes of a model without a seed send the same body, and are two clips)."""
    content: dict[str, Any] = {"endpoint": endpoint, "body": body}
    if take > 1:
        content["take"] = take
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


EventKind = Literal["cached", "waiting", "submitted", "reattached", "queued", "running", "log", "downloading", "done", "retrying"]


@dataclass(frozen=True)
class ShotEvent:
    """Something a user watching the run wants to see about one shot."""

    shot: str
    kind: EventKind
    detail: str = ""
    request_id: str | None = None
    queue_position: int | None = None


OnEvent = Callable[[ShotEvent], None]

# a slot held while a shot's request is on fal: called with the shot's label and its event sink
# (to say it waits for one); the shell's holds a slot of the Prefect server's global limit
RequestSlot = Callable[[str, OnEvent], ContextManager[None]]


def ignore_events(event: ShotEvent) -> None:
    return None


@dataclass(frozen=True)
class GeneratedClip:
    shot: str
    path: Path  # in the clip store; verified
    key: str  # the clip store key
    backend: str
    cache_hit: bool
    request_id: str | None = None
    # a paid clip that failed verification and that the user accepted (`shotflow accept`): why it failed
    accepted_despite: str | None = None
    # continuity: the frames the request was made with (their hashes and stored paths, never the data)
    frames: tuple[FrameInput, ...] = ()
    take: int = 1  # which take of the shot
