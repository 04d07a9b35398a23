"""Pika: Pika 2.2, its inputs as the seed states them, what it renders and costs.

The image endpoint (Pika22ImageToVideoRequest) takes the text endpoint's fields but the aspect
ratio (the first frame decides the shape), with `image_url` first."""

from __future__ import annotations

from decimal import Decimal as D

from shotflow.catalog.inputs import choice, fal_input, frame, prompt, seed, value
from shotflow.catalog.spec import ASSUMED_FPS, FAL_JS_MAP, ImageEndpoint, ModelSpec, Price

SEED = seed("The seed for the random number generator")
NEGATIVE = value("", "A negative prompt to guide the model")
RESOLUTION = choice(("720p", "1080p"), "720p", "The resolution of the generated video")
DURATION = value(5, "The duration of the generated video in seconds")

MODELS = (
    ModelSpec(
        alias="pika-2.2",
        aliases=("pika",),
        endpoint="fal-ai/pika/v2.2/text-to-video",
        title="Pika 2.2",
        input=fal_input(
            "Pika22Input",
            prompt=prompt(),
            seed=SEED,
            negative_prompt=NEGATIVE,
            aspect_ratio=choice(
                ("16:9", "9:16", "1:1", "4:5", "5:4", "3:2", "2:3"), "16:9", "The aspect ratio of the generated video"
            ),
            resolution=RESOLUTION,
            duration=DURATION,
        ),
        # the seed types duration as a plain integer: no enum says which lengths Pika renders
        durations={5: 5, 10: 10},
        price=Price(
            {"720p": D("0.20"), "1080p": D("0.45")},
            "5s",
            note="$0.20 (720p) / $0.45 (1080p) per 5 s; 10 s priced as two 5 s blocks (unverified)",
        ),
        notes="the seed types duration as an integer without an enum; 5 and 10 s offered. " + ASSUMED_FPS,
        image=ImageEndpoint(
            endpoint="fal-ai/pika/v2.2/image-to-video",
            input=fal_input(
                "Pika22ImageToVideoRequest",
                image_url=frame("URL of the image to use as the first frame"),
                prompt=prompt(),
                seed=SEED,
                negative_prompt=NEGATIVE,
                resolution=RESOLUTION,
                duration=DURATION,
            ),
            image_field="image_url",
            id_source=FAL_JS_MAP,
            schema_source="seed: Pika22ImageToVideoRequest",
        ),
    ),
)
