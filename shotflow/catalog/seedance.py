"""Seedance (ByteDance): Seedance 1.0 Pro, its input as the seed states it, what it renders and costs."""

from __future__ import annotations

from decimal import Decimal as D

from shotflow.catalog.inputs import choice, fal_input, optional, prompt, seed
from shotflow.catalog.spec import ASSUMED_FPS, ModelSpec, Price

MODELS = (
    ModelSpec(
        alias="seedance-1.0-pro",
        aliases=("seedance",),
        endpoint="fal-ai/bytedance/seedance/v1/pro/text-to-video",
        title="Seedance 1.0 Pro",
        input=fal_input(
            "SeedanceV1ProInput",
            prompt=prompt("The text prompt used to generate the video"),
            aspect_ratio=choice(("21:9", "16:9", "4:3", "1:1", "3:4", "9:16"), "16:9", "The aspect ratio of the generated video"),
            resolution=choice(
                ("480p", "1080p"), "1080p", "Video resolution - 480p for faster generation, 1080p for higher quality"
            ),
            duration=choice(("5", "10"), "5", "Duration of the video in seconds"),
            camera_fixed=optional(bool, "Whether to fix the camera position"),
            seed=seed("Random seed to control video generation. Use -1 for random."),
        ),
        price=Price(D("2.5"), "1M tokens", note="tokens = width*height*fps*seconds/1024; about $0.62 per 1080p 5 s"),
        notes=ASSUMED_FPS,
    ),
)
