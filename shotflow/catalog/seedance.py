"""Seedance (ByteDance): Seedance 1.0 Pro. Input classes mirror the seed field for field; the rows say what each renders and costs."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Literal

from pydantic import Field

from shotflow.catalog.inputs import FalInput
from shotflow.catalog.spec import ASSUMED_FPS, ModelSpec, Price


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


MODELS: tuple[ModelSpec, ...] = (
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
)
