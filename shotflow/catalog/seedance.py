"""Seedance (ByteDance): Seedance 1.0 Pro, its input as the seed states it, what it renders and costs.

The seed gives no image-to-video request for Seedance: its image endpoint is mirrored from fal's
client (generated from fal's OpenAPI) and fal's model page, both named in `schema_source`."""

from __future__ import annotations

from decimal import Decimal as D

from shotflow.catalog.inputs import choice, end_frame, fal_input, frame, optional, prompt, seed, value
from shotflow.catalog.spec import ASSUMED_FPS, FAL_JS_MAP, FAL_JS_SCHEMAS, ImageEndpoint, ModelSpec, Price

PROMPT = "The text prompt used to generate the video"
ASPECT = "The aspect ratio of the generated video"
CAMERA_FIXED = "Whether to fix the camera position"
SEED = "Random seed to control video generation. Use -1 for random."
IMAGE_PAGE = "https://fal.ai/models/fal-ai/bytedance/seedance/v1/pro/image-to-video/llms.txt (stored copy, read 2026-12-01)"

MODELS = (
    ModelSpec(
        alias="seedance-1.0-pro",
        aliases=("seedance",),
        endpoint="fal-ai/bytedance/seedance/v1/pro/text-to-video",
        title="Seedance 1.0 Pro",
        input=fal_input(
            "SeedanceV1ProInput",
            prompt=prompt(PROMPT),
            aspect_ratio=choice(("21:9", "16:9", "4:3", "1:1", "3:4", "9:16"), "16:9", ASPECT),
            resolution=choice(
                ("480p", "1080p"), "1080p", "Video resolution - 480p for faster generation, 1080p for higher quality"
            ),
            duration=choice(("5", "10"), "5", "Duration of the video in seconds"),
            camera_fixed=optional(bool, CAMERA_FIXED),
            seed=seed(SEED),
        ),
        price=Price(D("2.5"), "1M tokens", note="tokens = width*height*fps*seconds/1024; about $0.62 per 1080p 5 s"),
        notes=ASSUMED_FPS,
        image=ImageEndpoint(
            endpoint="fal-ai/bytedance/seedance/v1/pro/image-to-video",
            input=fal_input(
                "SeedanceProImageToVideoInput",
                prompt=prompt(PROMPT),
                aspect_ratio=choice(("21:9", "16:9", "4:3", "1:1", "3:4", "9:16", "auto"), "auto", ASPECT),
                resolution=choice(
                    ("480p", "720p", "1080p"),
                    "1080p",
                    "Video resolution - 480p for faster generation, 720p for balance, 1080p for higher quality",
                ),
                duration=choice(tuple(str(s) for s in range(2, 13)), "5", "Duration of the video in seconds"),
                camera_fixed=value(False, CAMERA_FIXED),
                seed=seed(SEED),
                enable_safety_checker=value(True, "If set to true, the safety checker will be enabled."),
                image_url=frame(),
                end_image_url=end_frame(),
            ),
            image_field="image_url",
            end_field="end_image_url",
            price=Price(
                D("2.5"),
                "1M tokens",
                source=IMAGE_PAGE + ": priced as the text endpoint",
                as_of="2026-12",
                note="tokens = width*height*fps*seconds/1024; about $0.62 per 1080p 5 s",
            ),
            id_source=IMAGE_PAGE + " and " + FAL_JS_MAP,
            schema_source=f"{FAL_JS_SCHEMAS} (SeedanceProImageToVideoInput: fields, enums, bounds) and {IMAGE_PAGE} (defaults)",
            notes='the duration default "5" is the text endpoint\'s: the stored page cuts off before it and the generated '
            "schema drops enum defaults",
        ),
    ),
)
