"""MiniMax: Hailuo-02 (standard), its input as the seed states it, what it renders and costs."""

from __future__ import annotations

from decimal import Decimal as D

from shotflow.catalog.inputs import choice, fal_input, prompt, value
from shotflow.catalog.spec import ASSUMED_FPS, ModelSpec, Price

MODELS = (
    ModelSpec(
        alias="hailuo-02",
        aliases=("minimax-hailuo-02", "hailuo"),
        endpoint="fal-ai/minimax/hailuo-02/standard/text-to-video",
        title="MiniMax Hailuo-02 (standard)",
        input=fal_input(
            "Hailuo02StandardInput",
            prompt=prompt(),
            duration=choice(
                ("6", "10"),
                "6",
                "The duration of the video in seconds. 10 seconds videos are not supported for 1080p resolution.",
            ),
            prompt_optimizer=value(True, "Whether to use the model's prompt optimizer"),
        ),
        native_resolution="768p",
        fps=25,
        price=Price(D("0.045"), "second", note="$0.045 per second at 768p"),
        notes="768p (1366x768), no aspect ratio field; " + ASSUMED_FPS,
    ),
)
