"""What a model is (`ModelSpec`), what it costs (`Price`), and the pixel size of a frame.

Facts not in the seed (native frame rates and sizes where the model has no resolution field) are
marked `assumed` in `ModelSpec.notes`; the preview backend uses them to draw clips of the shape a
model would deliver, and assembly never relies on them (it probes every clip).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, Mapping

from shotflow.catalog.inputs import FalInput

# --- prices ---------------------------------------------------------------------------------

FAL_PAGES_LATE_2025 = "fal.ai model pages, late 2025 (shared/notes/fal-queue.md)"


@dataclass(frozen=True)
class Price:
    """A price formula kept as data.

    The cost of a clip is `usd` per `unit` ("second", "5s" block, "clip", or "1M tokens" where
    tokens = width*height*fps*seconds/1024), times the multiplier of its resolution, of its
    duration and of its audio setting (absent keys count as 1). `usd` may be a table by
    resolution. `usd=None` means nobody has found a price: estimates say "unknown", never $0.
    """

    usd: Decimal | Mapping[str, Decimal] | None
    unit: Literal["second", "5s", "clip", "1M tokens"] = "clip"
    by_resolution: Mapping[str, Decimal] = field(default_factory=dict)
    by_duration: Mapping[int, Decimal] = field(default_factory=dict)
    by_audio: Mapping[bool, Decimal] = field(default_factory=dict)
    source: str = FAL_PAGES_LATE_2025
    as_of: str = "2025-11"
    note: str = ""
    # fal quotes a per-second price as the first `block` seconds, then per extra second
    block: int | None = None

    def cost(self, *, seconds: int, resolution: str, width: int, height: int, fps: int, audio: bool) -> Decimal | None:
        if self.usd is None:
            return None
        base = self.usd.get(resolution) if isinstance(self.usd, Mapping) else self.usd
        if base is None:
            return None
        if self.unit == "second":
            amount = base * seconds
        elif self.unit == "5s":
            amount = base * Decimal(seconds) / 5
        elif self.unit == "1M tokens":
            amount = base * Decimal(width * height * fps * seconds) / 1024 / 1_000_000
        else:
            amount = base
        amount *= self.by_resolution.get(resolution, Decimal(1))
        amount *= self.by_duration.get(seconds, Decimal(1))
        amount *= self.by_audio.get(audio, Decimal(1))
        return amount.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)

    def describe(self) -> str:
        """The price in words, as every shotflow output shows it: "$1.40 per 5 s, +$0.28/s",
        "$0.20/s, $0.40/s with audio", "$0.30 per clip at 360p/540p, $0.40 at 720p", "unknown"."""
        if self.usd is None:
            return "unknown"
        unit = {"second": "/s", "5s": " per 5 s", "clip": " per clip", "1M tokens": " per 1M tokens"}[self.unit]
        again = unit if self.unit == "second" else ""  # "$0.20/s, $0.40/s with audio"; "$0.20 per clip, $0.40 at 720p"
        if isinstance(self.usd, Mapping):
            by_price: dict[Decimal, list[str]] = {}
            for resolution, usd in self.usd.items():
                by_price.setdefault(usd, []).append(resolution)
            text = ", ".join(
                f"{dollars(usd)}{unit if i == 0 else again} at {'/'.join(res)}" for i, (usd, res) in enumerate(by_price.items())
            )
            base = None
        elif self.unit == "second" and self.block:
            text, base = f"{dollars(self.usd * self.block)} per {self.block} s, +{dollars(self.usd)}/s", self.usd
        else:
            text, base = f"{dollars(self.usd)}{unit}", self.usd
        if self.unit == "1M tokens" and base is not None:
            example = self.cost(seconds=5, resolution="1080p", width=1920, height=1080, fps=24, audio=False)
            text += f" (~{dollars(example, 2)} per 5 s of 1080p at 24 fps)"
        for resolution, times in self.by_resolution.items():
            text += f", {dollars(base * times)}{again} at {resolution}" if base is not None else f", x{times:g} at {resolution}"
        for seconds, times in self.by_duration.items():
            text += f", x{times:g} for {seconds} s"
        for audio, times in self.by_audio.items():
            with_ = "with" if audio else "without"
            text += f", {dollars(base * times)}{again} {with_} audio" if base is not None else f", x{times:g} {with_} audio"
        return text

    def provenance(self) -> str:
        """Where the price comes from and when it was seen."""
        return f"as of {self.as_of}, from {self.source}"


def dollars(amount: Decimal, places: int | None = None) -> str:
    """$1.40, $0.045, $2.50: cents always shown, more digits only when the price has them."""
    if places is not None:
        return f"${amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)}"
    exponent = amount.normalize().as_tuple().exponent
    return f"${amount:.{max(2, -exponent if isinstance(exponent, int) else 2)}f}"


UNKNOWN = Price(None, source="no price found on fal's pages (late 2025)", as_of="2025-11")
# an image-to-video endpoint whose price fal's pages (as stored for the search tool) do not give
UNKNOWN_IMAGE = Price(
    None, source="no price for the image-to-video endpoint in fal's stored pages (searched 2026-12-01)", as_of="2026-12"
)


# --- capabilities ---------------------------------------------------------------------------

ASSUMED_ID = "assumed: the endpoint id was not confirmed in fal's docs"
# fal's own client lists every endpoint id with its input type (generated from fal's OpenAPI)
FAL_JS_MAP = "fal-ai/fal-js libs/client/src/types/video/endpoint-map.ts at 53241327 (read 2026-12-01)"
FAL_JS_SCHEMAS = "fal-ai/fal-js libs/client/src/types/video/zod.gen.ts at 53241327 (read 2026-12-01)"


@dataclass(frozen=True)
class ImageEndpoint:
    """A model's image-to-video endpoint (continuity: `from:`, `image:`, `end_image:`), declared
    like the text endpoint and mirrored from its schema."""

    endpoint: str  # fal's id, e.g. "fal-ai/kling-video/v2/master/image-to-video"
    input: type[FalInput]
    image_field: str  # the body field of the first frame, e.g. "image_url" (required in `input`)
    end_field: str | None = None  # the body field of the last frame, when the endpoint takes one
    price: Price = UNKNOWN_IMAGE
    id_source: str = ASSUMED_ID  # the page that confirms the id (with its date), or ASSUMED_ID
    schema_source: str = ""  # "seed: <type name>", or the docs page and date the schema was mirrored from
    max_image_bytes: int | None = None  # the endpoint's documented limit on an input image (the file, not its base64)
    notes: str = ""  # what differs from the source, and why

    @property
    def id_assumed(self) -> bool:
        return self.id_source == ASSUMED_ID


@dataclass(frozen=True)
class ModelSpec:
    """What one endpoint accepts, what it renders, and what it costs."""

    alias: str
    endpoint: str
    title: str
    input: type[FalInput]
    # seconds -> the value of the endpoint's `duration` field; empty when it has none. Read from
    # the field's enum ("5" or "5s" is 5 s) unless given: a duration typed as a plain integer
    # has no enum to read
    durations: Mapping[int, str | int] | None = None
    # what the model renders when it has no field for it
    native_duration: int | None = None
    native_aspect: str = "16:9"
    native_resolution: str = "720p"
    fps: int = 24
    audio: Literal["never", "param"] = "never"
    price: Price = UNKNOWN
    # (resolution, seconds) pairs the model refuses although each is valid alone
    forbidden: tuple[tuple[str, int, str], ...] = ()
    aliases: tuple[str, ...] = ()
    notes: str = ""
    # the image-to-video endpoint; None: the model cannot start from a frame
    image: ImageEndpoint | None = None

    def __post_init__(self):
        if self.durations is None:
            if self.has_field("duration") and not _enum(self.input, "duration"):
                raise TypeError(f"{self.alias}: its duration field has no enum: declare durations= (seconds -> value)")
            encoded = {int(v.rstrip("s")): v for v in _enum(self.input, "duration")}
            object.__setattr__(self, "durations", encoded)

    def has_field(self, name: str) -> bool:
        return name in self.input.model_fields

    @property
    def aspect_ratios(self) -> tuple[str, ...]:
        return _enum(self.input, "aspect_ratio") or (self.native_aspect,)

    @property
    def resolutions(self) -> tuple[str, ...]:
        return _enum(self.input, "resolution") or (self.native_resolution,)

    @property
    def seconds(self) -> tuple[int, ...]:
        return tuple(self.durations) if self.durations else (self.native_duration or 0,)

    @property
    def default_seconds(self) -> int:
        """What a shot that sets no duration gets: the duration field's default, else the fixed length."""
        if not self.durations:
            return self.native_duration
        default = self.field_default("duration")
        return next((seconds for seconds, encoded in self.durations.items() if encoded == default), next(iter(self.durations)))

    def field_default(self, name: str):
        return self.input.model_fields[name].default

    def for_images(self) -> ModelSpec:
        """This model as its image endpoint: the same checks (fields, enums, durations) run against
        the image endpoint's own schema and price."""
        if self.image is None:
            raise ValueError(f"{self.alias} has no image endpoint")
        fields = self.image.input.model_fields
        # read from the image endpoint's duration enum; kept where its duration is a plain integer; none without the
        # field, and then the clip lasts what the text endpoint renders by default (Hailuo-02's 6 s, Wan Pro's 6 s)
        durations = (None if _enum(self.image.input, "duration") else self.durations) if "duration" in fields else {}
        native = self.default_seconds if durations == {} else self.native_duration
        return replace(
            self,
            endpoint=self.image.endpoint,
            input=self.image.input,
            price=self.image.price,
            durations=durations,
            native_duration=native,
            image=None,
        )


def _enum(cls: type[FalInput], name: str) -> tuple[str, ...]:
    info = cls.model_fields.get(name)
    if info is None:
        return ()
    args = getattr(info.annotation, "__args__", ())
    return tuple(a for a in args if isinstance(a, str))


def resolution_lines(resolution: str) -> int:
    return int(resolution.rstrip("p"))


def frame_size(aspect: str, resolution: str) -> tuple[int, int]:
    """Pixel size of `resolution` (the short side) at `aspect`, both sides even."""
    a, b = (int(x) for x in aspect.split(":"))
    short = resolution_lines(resolution)

    def even(x: float) -> int:
        return int(2 * round(x / 2))

    if a >= b:
        return even(short * a / b), short
    return short, even(short * b / a)


ASSUMED_FPS = "frame rate assumed (not in the seed); assembly probes real clips"
