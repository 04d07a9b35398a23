"""Kling (Kuaishou): Kling 2.0 Master. Input classes mirror the seed field for field; the rows say what each renders and costs."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Literal

from pydantic import Field

from shotflow.catalog.inputs import FalInput
from shotflow.catalog.spec import ASSUMED_FPS, ModelSpec, Price


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
)
