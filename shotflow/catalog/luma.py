"""Luma: Ray-2 Flash. Input classes mirror the seed field for field; the rows say what each renders and costs."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Literal

from pydantic import Field

from shotflow.catalog.inputs import FalInput
from shotflow.catalog.spec import ASSUMED_FPS, ModelSpec, Price


class LumaRay2FlashInput(FalInput):
    prompt: str
    aspect_ratio: Literal["16:9", "9:16", "4:3", "3:4", "21:9", "9:21"] = Field(
        "16:9", description="The aspect ratio of the generated video"
    )
    loop: bool | None = Field(
        None, description="Whether the video should loop (end of video is blended with the beginning)"
    )
    resolution: Literal["540p", "720p", "1080p"] = Field(
        "540p", description="The resolution of the generated video (720p costs 2x more, 1080p costs 4x more)"
    )
    duration: Literal["5s", "9s"] = Field("5s", description="The duration of the generated video (9s costs 2x more)")


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        alias="luma-ray-2-flash",
        aliases=("luma", "ray-2-flash"),
        endpoint="fal-ai/luma-dream-machine/ray-2-flash",
        title="Luma Ray-2 Flash",
        input=LumaRay2FlashInput,
        durations={5: "5s", 9: "9s"},
        fps=24,
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
