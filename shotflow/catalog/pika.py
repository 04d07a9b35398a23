"""Pika: Pika 2.2. Input classes mirror the seed field for field; the rows say what each renders and costs."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Literal

from pydantic import Field

from shotflow.catalog.inputs import FalInput
from shotflow.catalog.spec import ASSUMED_FPS, ModelSpec, Price


class Pika22Input(FalInput):
    prompt: str
    seed: int | None = Field(None, description="The seed for the random number generator")
    negative_prompt: str = Field("", description="A negative prompt to guide the model")
    aspect_ratio: Literal["16:9", "9:16", "1:1", "4:5", "5:4", "3:2", "2:3"] = Field(
        "16:9", description="The aspect ratio of the generated video"
    )
    resolution: Literal["720p", "1080p"] = Field("720p", description="The resolution of the generated video")
    duration: int = Field(5, description="The duration of the generated video in seconds")


MODELS: tuple[ModelSpec, ...] = (
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
)
