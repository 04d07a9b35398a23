"""Veo (Google): Veo 3 and Veo 2. Input classes mirror the seed field for field; the rows say what each renders and costs."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Literal

from pydantic import Field

from shotflow.catalog.inputs import FalInput
from shotflow.catalog.spec import ModelSpec, Price


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


MODELS: tuple[ModelSpec, ...] = (
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
