"""The ten fal text-to-video endpoints, declared as data.

Each endpoint has one typed input class that mirrors `shared/seeds/fal-text-to-video-models.txt`
field for field (names, value types, enums, defaults), and one `ModelSpec` row saying what the
model can render and what it costs. Adding a model is adding one class and one row.

Facts not in the seed (native frame rates and sizes where the model has no resolution field) are
marked `assumed` in `ModelSpec.notes`; the preview backend uses them to draw clips of the shape a
model would deliver, and assembly never relies on them (it probes every clip).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shotflow.errors import ShotflowError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class FalInput(BaseModel):
    """Base of every endpoint's input: unknown keys and wrong value types are errors.

    The seed states enums (mirrored as Literal types) but no numeric ranges; where it states
    none, numbers are still held to sane bounds: floats finite, whole numbers within int64."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    @field_validator("*")
    @classmethod
    def _int64(cls, value):
        if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(f"{value} is outside the 64-bit integer range ({INT64_MIN} to {INT64_MAX})")
        return value


# --- input classes, one per endpoint, in the seed's order -----------------------------------


class KlingV2MasterInput(FalInput):
    prompt: str
    duration: Literal["5", "10"] = Field("5", description="The duration of the generated video in seconds")
    aspect_ratio: Literal["16:9", "9:16", "1:1"] = Field(
        "16:9", description="The aspect ratio of the generated video frame"
    )
    negative_prompt: str = "blur, distort, and low quality"
    cfg_scale: float = Field(
        0.5,
        description="The CFG (Classifier Free Guidance) scale is a measure of how close you want "
        "the model to stick to your prompt.",
    )


class SeedanceV1ProInput(FalInput):
    prompt: str = Field(description="The text prompt used to generate the video")
    aspect_ratio: Literal["21:9", "16:9", "4:3", "1:1", "3:4", "9:16"] = Field(
        "16:9", description="The aspect ratio of the generated video"
    )
    resolution: Literal["480p", "1080p"] = Field(
        "1080p", description="Video resolution - 480p for faster generation, 1080p for higher quality"
    )
    duration: Literal["5", "10"] = Field("5", description="Duration of the video in seconds")
    camera_fixed: bool | None = Field(None, description="Whether to fix the camera position")
    seed: int | None = Field(None, description="Random seed to control video generation. Use -1 for random.")


PixverseStyle = Literal["anime", "3d_animation", "clay", "comic", "cyberpunk"]


class PixverseV4FastInput(FalInput):
    prompt: str
    aspect_ratio: Literal["16:9", "4:3", "1:1", "3:4", "9:16"] = Field(
        "16:9", description="The aspect ratio of the generated video"
    )
    resolution: Literal["360p", "540p", "720p"] = Field("720p", description="The resolution of the generated video")
    negative_prompt: str = Field("", description="Negative prompt to be used for the generation")
    style: PixverseStyle | None = Field(None, description="The style of the generated video")
    seed: int | None = Field(
        None,
        description="The same seed and the same prompt given to the same version of the model will "
        "output the same video every time.",
    )


class PixverseV45Input(FalInput):
    prompt: str
    aspect_ratio: Literal["16:9", "4:3", "1:1", "3:4", "9:16"] = Field(
        "16:9", description="The aspect ratio of the generated video"
    )
    resolution: Literal["360p", "540p", "720p", "1080p"] = Field(
        "720p", description="The resolution of the generated video"
    )
    duration: Literal["5", "8"] = Field(
        "5",
        description="The duration of the generated video in seconds. 8s videos cost double. 1080p "
        "videos are limited to 5 seconds",
    )
    negative_prompt: str = Field("", description="Negative prompt to be used for the generation")
    style: PixverseStyle | None = Field(None, description="The style of the generated video")
    seed: int | None = Field(
        None,
        description="The same seed and the same prompt given to the same version of the model will "
        "output the same video every time.",
    )


class WanProInput(FalInput):
    prompt: str = Field(description="The prompt to generate the video")
    seed: int | None = Field(None, description="Random seed for reproducibility. If None, a random seed is chosen.")
    enable_safety_checker: bool = Field(True, description="Whether to enable the safety checker")


class LumaRay2FlashInput(FalInput):
    prompt: str
    aspect_ratio: Literal["16:9", "9:16", "4:3", "3:4", "21:9", "9:21"] = Field(
        "16:9", description="The aspect ratio of the generated video"
    )
    loop: bool | None = Field(
        None, description="Whether the video should loop (end of video is blended with the beginning)"
    )
    resolution: Literal["540p", "720p", "1080p"] = Field(
        "540p", description="The resolution of the generated video (720p costs 2x more, 1080p costs 4x more)"
    )
    duration: Literal["5s", "9s"] = Field("5s", description="The duration of the generated video (9s costs 2x more)")


class Pika22Input(FalInput):
    prompt: str
    seed: int | None = Field(None, description="The seed for the random number generator")
    negative_prompt: str = Field("", description="A negative prompt to guide the model")
    aspect_ratio: Literal["16:9", "9:16", "1:1", "4:5", "5:4", "3:2", "2:3"] = Field(
        "16:9", description="The aspect ratio of the generated video"
    )
    resolution: Literal["720p", "1080p"] = Field("720p", description="The resolution of the generated video")
    duration: int = Field(5, description="The duration of the generated video in seconds")


class Hailuo02StandardInput(FalInput):
    prompt: str
    duration: Literal["6", "10"] = Field(
        "6",
        description="The duration of the video in seconds. 10 seconds videos are not supported for "
        "1080p resolution.",
    )
    prompt_optimizer: bool = Field(True, description="Whether to use the model's prompt optimizer")


class Veo3Input(FalInput):
    prompt: str = Field(description="The text prompt describing the video you want to generate")
    aspect_ratio: Literal["16:9", "9:16", "1:1"] = Field(
        "16:9",
        description="The aspect ratio of the generated video. If it is not set to 16:9, the video "
        "will be outpainted.",
    )
    duration: Literal["8s"] = Field("8s", description="The duration of the generated video in seconds")
    negative_prompt: str | None = Field(None, description="A negative prompt to guide the video generation")
    enhance_prompt: bool = Field(True, description="Whether to enhance the video generation")
    seed: int | None = Field(None, description="A seed to use for the video generation")
    resolution: Literal["720p", "1080p"] = Field("720p", description="The resolution of the generated video")
    generate_audio: bool = Field(
        True,
        description="Whether to generate audio for the video. If false, %33 less credits will be used.",
    )


class Veo2Input(FalInput):
    prompt: str = Field(description="The text prompt describing the video you want to generate")
    aspect_ratio: Literal["16:9", "9:16"] = Field("16:9", description="The aspect ratio of the generated video")
    duration: Literal["5s", "6s", "7s", "8s"] = Field(
        "5s", description="The duration of the generated video in seconds"
    )
    negative_prompt: str | None = Field(None, description="A negative prompt to guide the video generation")
    enhance_prompt: bool = Field(True, description="Whether to enhance the video generation")
    seed: int | None = Field(None, description="A seed to use for the video generation")


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


D = Decimal
UNKNOWN = Price(None, source="no price found on fal's pages (late 2025)", as_of="2025-11")


# --- capabilities ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """What one endpoint accepts, what it renders, and what it costs."""

    alias: str
    endpoint: str
    title: str
    input: type[FalInput]
    # seconds -> the value of the endpoint's `duration` field; empty when it has none
    durations: Mapping[int, str | int]
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

    def field_default(self, name: str):
        return self.input.model_fields[name].default


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

MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        alias="kling-2.0-master",
        aliases=("kling",),
        endpoint="fal-ai/kling-video/v2/master/text-to-video",
        title="Kling 2.0 Master",
        input=KlingV2MasterInput,
        durations={5: "5", 10: "10"},
        native_resolution="720p",
        fps=24,
        price=Price(D("0.28"), "second", block=5, note="$1.40 per 5 s + $0.28 per extra second"),
        notes="native 720p and " + ASSUMED_FPS,
    ),
    ModelSpec(
        alias="seedance-1.0-pro",
        aliases=("seedance",),
        endpoint="fal-ai/bytedance/seedance/v1/pro/text-to-video",
        title="Seedance 1.0 Pro",
        input=SeedanceV1ProInput,
        durations={5: "5", 10: "10"},
        fps=24,
        price=Price(D("2.5"), "1M tokens", note="tokens = width*height*fps*seconds/1024; about $0.62 per 1080p 5 s"),
        notes=ASSUMED_FPS,
    ),
    ModelSpec(
        alias="pixverse-v4-fast",
        endpoint="fal-ai/pixverse/v4/text-to-video/fast",
        title="PixVerse v4 fast",
        input=PixverseV4FastInput,
        durations={},
        native_duration=5,
        fps=30,
        price=Price(
            {"360p": D("0.30"), "540p": D("0.30"), "720p": D("0.40")}, "clip", note="$0.30 at 360p/540p, $0.40 at 720p"
        ),
        notes="5 s clips (no duration field; assumed from the 5 s price) and " + ASSUMED_FPS,
    ),
    ModelSpec(
        alias="pixverse-v4.5",
        endpoint="fal-ai/pixverse/v4.5/text-to-video",
        title="PixVerse v4.5",
        input=PixverseV45Input,
        durations={5: "5", 8: "8"},
        fps=30,
        forbidden=(("1080p", 8, "1080p videos are limited to 5 seconds"),),
        notes=ASSUMED_FPS,
    ),
    ModelSpec(
        alias="wan-pro",
        aliases=("wan",),
        endpoint="fal-ai/wan-pro/text-to-video",
        title="Wan Pro (Wan 2.1)",
        input=WanProInput,
        durations={},
        native_duration=6,
        native_resolution="1080p",
        fps=30,
        notes="6 s, 1080p, 30 fps (seed's description); no aspect ratio field",
    ),
    ModelSpec(
        alias="luma-ray-2-flash",
        aliases=("luma", "ray-2-flash"),
        endpoint="fal-ai/luma-dream-machine/ray-2-flash",
        title="Luma Ray-2 Flash",
        input=LumaRay2FlashInput,
        durations={5: "5s", 9: "9s"},
        fps=24,
        # the 9 s clip costs 2x the 5 s one: per clip, not per second
        price=Price(
            D("0.20"),
            "clip",
            by_resolution={"720p": D(2), "1080p": D(4)},
            by_duration={9: D(2)},
            note="$0.20 per 5 s at 540p; 720p x2, 1080p x4, 9 s x2",
        ),
        notes=ASSUMED_FPS,
    ),
    ModelSpec(
        alias="pika-2.2",
        aliases=("pika",),
        endpoint="fal-ai/pika/v2.2/text-to-video",
        title="Pika 2.2",
        input=Pika22Input,
        durations={5: 5, 10: 10},
        fps=24,
        price=Price(
            {"720p": D("0.20"), "1080p": D("0.45")},
            "5s",
            note="$0.20 (720p) / $0.45 (1080p) per 5 s; 10 s priced as two 5 s blocks (unverified)",
        ),
        notes="the seed types duration as an integer without an enum; 5 and 10 s offered. " + ASSUMED_FPS,
    ),
    ModelSpec(
        alias="hailuo-02",
        aliases=("minimax-hailuo-02", "hailuo"),
        endpoint="fal-ai/minimax/hailuo-02/standard/text-to-video",
        title="MiniMax Hailuo-02 (standard)",
        input=Hailuo02StandardInput,
        durations={6: "6", 10: "10"},
        native_resolution="768p",
        fps=25,
        price=Price(D("0.045"), "second", note="$0.045 per second at 768p"),
        notes="768p (1366x768), no aspect ratio field; " + ASSUMED_FPS,
    ),
    ModelSpec(
        alias="veo3",
        aliases=("veo-3",),
        endpoint="fal-ai/veo3",
        title="Veo 3",
        input=Veo3Input,
        durations={8: "8s"},
        fps=24,
        audio="param",
        price=Price(D("0.20"), "second", by_audio={True: D(2)}, note="$0.40/s with audio, $0.20/s without"),
        notes="24 fps (seed's description); makes audio unless generate_audio is false",
    ),
    ModelSpec(
        alias="veo2",
        aliases=("veo-2",),
        endpoint="fal-ai/veo2",
        title="Veo 2",
        input=Veo2Input,
        durations={5: "5s", 6: "6s", 7: "7s", 8: "8s"},
        fps=24,
        notes="720p, 24 fps (seed's description)",
    ),
)

_BY_NAME: dict[str, ModelSpec] = {}
for _spec in MODELS:
    for _name in (_spec.alias, _spec.endpoint, *_spec.aliases):
        _BY_NAME[_name.lower()] = _spec


def find_model(name: str) -> ModelSpec:
    """The model named by an alias or a full endpoint id (case-insensitive)."""
    spec = _BY_NAME.get(str(name).strip().lower())
    if spec is None:
        known = ", ".join(m.alias for m in MODELS)
        raise ShotflowError(f"unknown model '{name}': use one of {known}, or a full fal endpoint id")
    return spec
