"""Kling (Kuaishou): Kling 2.0 Master, its inputs as the seed states them, what it renders and costs.

The text and image endpoints share every field but the image one's `image_url` and the text one's
`aspect_ratio` (the first frame decides the shape)."""

from __future__ import annotations

from decimal import Decimal as D

from shotflow.catalog.inputs import FieldDecl, choice, fal_input, frame, prompt, value
from shotflow.catalog.spec import ASSUMED_FPS, FAL_JS_MAP, ImageEndpoint, ModelSpec, Price

DURATION = choice(("5", "10"), "5", "The duration of the generated video in seconds")
NEGATIVE = value("blur, distort, and low quality")
CFG = value(0.5, "The CFG (Classifier Free Guidance) scale is a measure of how close you want the model to stick to your prompt.")


def kling_input(name: str, **between: FieldDecl):
    """prompt, then `between` (the image or the aspect ratio), then the fields both take."""
    return fal_input(name, prompt=prompt(), **between, negative_prompt=NEGATIVE, cfg_scale=CFG)


MODELS = (
    ModelSpec(
        alias="kling-2.0-master",
        aliases=("kling",),
        endpoint="fal-ai/kling-video/v2/master/text-to-video",
        title="Kling 2.0 Master",
        input=kling_input(
            "KlingV2MasterInput",
            duration=DURATION,
            aspect_ratio=choice(("16:9", "9:16", "1:1"), "16:9", "The aspect ratio of the generated video frame"),
        ),
        price=Price(D("0.28"), "second", block=5, note="$1.40 per 5 s + $0.28 per extra second"),
        notes="native 720p and " + ASSUMED_FPS,
        image=ImageEndpoint(
            endpoint="fal-ai/kling-video/v2/master/image-to-video",
            input=kling_input(
                "ImageToVideoV2MasterRequest", image_url=frame("URL of the image to be used for the video"), duration=DURATION
            ),
            image_field="image_url",
            id_source="https://fal.ai/models/fal-ai/kling-video/v2/master/image-to-video and " + FAL_JS_MAP,
            schema_source="seed: ImageToVideoV2MasterRequest",
            notes="no last frame: the V2 Master request has no tail_image_url (only Kling's V1/Pro requests do)",
        ),
    ),
)
