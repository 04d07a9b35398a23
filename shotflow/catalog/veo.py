"""Veo (Google): Veo 3 and Veo 2, their inputs as the seed states them, what they render and cost.

Veo 3 takes Veo 2's fields (with its own aspect ratios and durations) plus resolution and audio:
`veo_input` declares what they share."""

from __future__ import annotations

from decimal import Decimal as D

from shotflow.catalog.inputs import FieldDecl, choice, fal_input, optional, prompt, seed, value
from shotflow.catalog.spec import ModelSpec, Price


def veo_input(name: str, aspect_ratio: FieldDecl, duration: FieldDecl, **more: FieldDecl):
    return fal_input(
        name,
        prompt=prompt("The text prompt describing the video you want to generate"),
        aspect_ratio=aspect_ratio,
        duration=duration,
        negative_prompt=optional(str, "A negative prompt to guide the video generation"),
        enhance_prompt=value(True, "Whether to enhance the video generation"),
        seed=seed("A seed to use for the video generation"),
        **more,
    )


DURATION = "The duration of the generated video in seconds"

MODELS = (
    ModelSpec(
        alias="veo3",
        aliases=("veo-3",),
        endpoint="fal-ai/veo3",
        title="Veo 3",
        input=veo_input(
            "Veo3Input",
            aspect_ratio=choice(
                ("16:9", "9:16", "1:1"),
                "16:9",
                "The aspect ratio of the generated video. If it is not set to 16:9, the video will be outpainted.",
            ),
            duration=choice(("8s",), "8s", DURATION),
            resolution=choice(("720p", "1080p"), "720p", "The resolution of the generated video"),
            generate_audio=value(
                True, "Whether to generate audio for the video. If false, %33 less credits will be used."
            ),
        ),
        audio="param",
        price=Price(D("0.20"), "second", by_audio={True: D(2)}, note="$0.40/s with audio, $0.20/s without"),
        notes="24 fps (seed's description); makes audio unless generate_audio is false",
    ),
    ModelSpec(
        alias="veo2",
        aliases=("veo-2",),
        endpoint="fal-ai/veo2",
        title="Veo 2",
        input=veo_input(
            "Veo2Input",
            aspect_ratio=choice(("16:9", "9:16"), "16:9", "The aspect ratio of the generated video"),
            duration=choice(("5s", "6s", "7s", "8s"), "5s", DURATION),
        ),
        notes="720p, 24 fps (seed's description)",
    ),
)
