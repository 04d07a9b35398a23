"""Veo (Google): Veo 3 and Veo 2, their inputs as the seed states them, what they render and cost.

Veo 3 takes Veo 2's fields (with its own aspect ratios and durations) plus resolution and audio:
`veo_input` declares what they share. The seed gives no image-to-video request for either: their
image endpoints are mirrored from fal's client (generated from fal's OpenAPI) and fal's model
pages, named in `schema_source`. fal's generated schema drops enum defaults; where fal's page does
not give one, the default is the text endpoint's (duration, resolution) or "auto" (the frame
decides the shape), as each endpoint's notes say."""

from __future__ import annotations

from decimal import Decimal as D

from pydantic import Field

from shotflow.catalog.inputs import FieldDecl, choice, fal_input, frame, optional, prompt, seed, value
from shotflow.catalog.spec import FAL_JS_MAP, FAL_JS_SCHEMAS, ImageEndpoint, ModelSpec, Price


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
ANIMATE = "The text prompt describing how the image should be animated"
VEO3_PAGE = "https://fal.ai/models/fal-ai/veo3/image-to-video/llms.txt (stored copy, read 2026-12-01)"
VEO2_PAGE = "https://fal.ai/models/fal-ai/veo2/image-to-video/api (stored copy, read 2026-12-01)"

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
            generate_audio=value(True, "Whether to generate audio for the video. If false, %33 less credits will be used."),
        ),
        audio="param",
        price=Price(D("0.20"), "second", by_audio={True: D(2)}, note="$0.40/s with audio, $0.20/s without"),
        notes="24 fps (seed's description); makes audio unless generate_audio is false",
        image=ImageEndpoint(
            endpoint="fal-ai/veo3/image-to-video",
            input=fal_input(
                "Veo3ImageToVideoInput",
                prompt=(str, Field(max_length=20000, description=ANIMATE)),
                aspect_ratio=choice(("auto", "16:9", "9:16"), "auto", "The aspect ratio of the generated video."),
                duration=choice(("4s", "6s", "8s"), "8s", "The duration of the generated video."),
                resolution=choice(("720p", "1080p"), "720p", "The resolution of the generated video."),
                generate_audio=value(True, "Whether to generate audio for the video."),
                auto_fix=value(
                    False,
                    "Whether to automatically attempt to fix prompts that fail content policy or other validation checks "
                    "by rewriting them.",
                ),
                image_url=frame(),
            ),
            image_field="image_url",
            price=Price(
                D("0.20"),
                "second",
                by_audio={True: D(2)},
                source=VEO3_PAGE + ": priced as the text endpoint",
                as_of="2026-12",
                note="$0.40/s with audio, $0.20/s without",
            ),
            id_source=VEO3_PAGE + " and " + FAL_JS_MAP,
            schema_source=f"{FAL_JS_SCHEMAS} (Veo3ImageToVideoInput: fields, enums, bounds) and {VEO3_PAGE} (defaults)",
            notes="resolution's default \"720p\" is the text endpoint's (the stored page cuts off before it); the page, "
            "newer than fal's client, also lists negative_prompt: not declared until its whole schema is seen",
        ),
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
        image=ImageEndpoint(
            endpoint="fal-ai/veo2/image-to-video",
            input=fal_input(
                "Veo2ImageToVideoInput",
                prompt=prompt(ANIMATE),
                duration=choice(("5s", "6s", "7s", "8s"), "5s", DURATION),
                aspect_ratio=choice(
                    ("auto", "auto_prefer_portrait", "16:9", "9:16"), "auto", "The aspect ratio of the generated video"
                ),
                image_url=frame(),
            ),
            image_field="image_url",
            id_source=VEO2_PAGE + " and " + FAL_JS_MAP,
            schema_source=f"{FAL_JS_SCHEMAS} (Veo2ImageToVideoInput: fields, enums)",
            max_image_bytes=8_000_000,  # "Input images up to 8MB in size" (the page above)
            notes='defaults are ours (no page seen gives them): duration "5s" as the text endpoint\'s, aspect_ratio "auto"',
        ),
    ),
)
