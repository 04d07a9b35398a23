"""PixVerse: v4 fast and v4.5. Input classes mirror the seed field for field; the rows say what each renders and costs."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Literal

from pydantic import Field

from shotflow.catalog.inputs import FalInput
from shotflow.catalog.spec import ASSUMED_FPS, ModelSpec, Price


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


MODELS: tuple[ModelSpec, ...] = (
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
)
