"""Wan (Alibaba): Wan Pro (Wan 2.1), its input as the seed states it, and what it renders."""

from __future__ import annotations

from shotflow.catalog.inputs import fal_input, prompt, seed, value
from shotflow.catalog.spec import ModelSpec

MODELS = (
    ModelSpec(
        alias="wan-pro",
        aliases=("wan",),
        endpoint="fal-ai/wan-pro/text-to-video",
        title="Wan Pro (Wan 2.1)",
        input=fal_input(
            "WanProInput",
            prompt=prompt("The prompt to generate the video"),
            seed=seed("Random seed for reproducibility. If None, a random seed is chosen."),
            enable_safety_checker=value(True, "Whether to enable the safety checker"),
        ),
        native_duration=6,
        native_resolution="1080p",
        fps=30,
        notes="6 s, 1080p, 30 fps (seed's description); no aspect ratio field",
    ),
)
