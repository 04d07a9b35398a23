"""Wan (Alibaba): Wan Pro (Wan 2.1). Input classes mirror the seed field for field; the rows say what each renders and costs."""

from __future__ import annotations

from pydantic import Field

from shotflow.catalog.inputs import FalInput
from shotflow.catalog.spec import ModelSpec


class WanProInput(FalInput):
    prompt: str = Field(description="The prompt to generate the video")
    seed: int | None = Field(None, description="Random seed for reproducibility. If None, a random seed is chosen.")
    enable_safety_checker: bool = Field(True, description="Whether to enable the safety checker")


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        alias="wan-pro",
        aliases=("wan",),
        endpoint="fal-ai/wan-pro/text-to-video",
        title="Wan Pro (Wan 2.1)",
        input=WanProInput,
        durations={},
        native_duration=6,
        native_resolution="1080p",
        fps=30,
        notes="6 s, 1080p, 30 fps (seed's description); no aspect ratio field",
    ),
)
