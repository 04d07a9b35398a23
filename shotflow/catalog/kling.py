"""Kling (Kuaishou): Kling 2.0 Master, its input as the seed states it, what it renders and costs."""

from __future__ import annotations

from decimal import Decimal as D

from shotflow.catalog.inputs import choice, fal_input, prompt, value
from shotflow.catalog.spec import ASSUMED_FPS, ModelSpec, Price

MODELS = (
    ModelSpec(
        alias="kling-2.0-master",
        aliases=("kling",),
        endpoint="fal-ai/kling-video/v2/master/text-to-video",
        title="Kling 2.0 Master",
        input=fal_input(
            "KlingV2MasterInput",
            prompt=prompt(),
            duration=choice(("5", "10"), "5", "The duration of the generated video in seconds"),
            aspect_ratio=choice(("16:9", "9:16", "1:1"), "16:9", "The aspect ratio of the generated video frame"),
            negative_prompt=value("blur, distort, and low quality"),
            cfg_scale=value(
                0.5,
                "The CFG (Classifier Free Guidance) scale is a measure of how close you want the model to stick to your prompt.",
            ),
        ),
        price=Price(D("0.28"), "second", block=5, note="$1.40 per 5 s + $0.28 per extra second"),
        notes="native 720p and " + ASSUMED_FPS,
    ),
)
