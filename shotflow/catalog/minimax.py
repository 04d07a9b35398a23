"""MiniMax: Hailuo-02 (standard). Input classes mirror the seed field for field; the rows say what each renders and costs."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Literal

from pydantic import Field

from shotflow.catalog.inputs import FalInput
from shotflow.catalog.spec import ASSUMED_FPS, ModelSpec, Price


class Hailuo02StandardInput(FalInput):
    prompt: str
    duration: Literal["6", "10"] = Field(
        "6",
        description="The duration of the video in seconds. 10 seconds videos are not supported for "
        "1080p resolution.",
    )
    prompt_optimizer: bool = Field(True, description="Whether to use the model's prompt optimizer")


MODELS: tuple[ModelSpec, ...] = (
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
)
