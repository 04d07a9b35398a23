"""Luma: Ray-2 Flash, its input as the seed states it, what it renders and costs."""

from __future__ import annotations

from decimal import Decimal as D

from shotflow.catalog.inputs import choice, fal_input, optional, prompt
from shotflow.catalog.spec import ASSUMED_FPS, ModelSpec, Price

MODELS = (
    ModelSpec(
        alias="luma-ray-2-flash",
        aliases=("luma", "ray-2-flash"),
        endpoint="fal-ai/luma-dream-machine/ray-2-flash",
        title="Luma Ray-2 Flash",
        input=fal_input(
            "LumaRay2FlashInput",
            prompt=prompt(),
            aspect_ratio=choice(
                ("16:9", "9:16", "4:3", "3:4", "21:9", "9:21"), "16:9", "The aspect ratio of the generated video"
            ),
            loop=optional(bool, "Whether the video should loop (end of video is blended with the beginning)"),
            resolution=choice(
                ("540p", "720p", "1080p"),
                "540p",
                "The resolution of the generated video (720p costs 2x more, 1080p costs 4x more)",
            ),
            duration=choice(("5s", "9s"), "5s", "The duration of the generated video (9s costs 2x more)"),
        ),
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
)
