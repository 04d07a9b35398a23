"""MiniMax: Hailuo-02 (standard), its inputs as the seed states them, what it renders and costs.

The image endpoint mirrors the seed's ImageToVideoRequest (prompt, image_url, prompt_optimizer):
it has no duration field, so a dependent shot lasts what the endpoint renders by default (taken
as the text endpoint's default, 6 s; assembly probes the real clip).
SubjectReferenceRequest (a reference image for a consistent subject, not a first frame) is a
different endpoint and not declared."""

from __future__ import annotations

from decimal import Decimal as D

from shotflow.catalog.inputs import choice, fal_input, frame, prompt, value
from shotflow.catalog.spec import ASSUMED_FPS, FAL_JS_MAP, ImageEndpoint, ModelSpec, Price

OPTIMIZER = value(True, "Whether to use the model's prompt optimizer")

MODELS = (
    ModelSpec(
        alias="hailuo-02",
        aliases=("minimax-hailuo-02", "hailuo"),
        endpoint="fal-ai/minimax/hailuo-02/standard/text-to-video",
        title="MiniMax Hailuo-02 (standard)",
        input=fal_input(
            "Hailuo02StandardInput",
            prompt=prompt(),
            duration=choice(
                ("6", "10"),
                "6",
                "The duration of the video in seconds. 10 seconds videos are not supported for 1080p resolution.",
            ),
            prompt_optimizer=OPTIMIZER,
        ),
        native_resolution="768p",
        fps=25,
        price=Price(D("0.045"), "second", note="$0.045 per second at 768p"),
        notes="768p (1366x768), no aspect ratio field; " + ASSUMED_FPS,
        image=ImageEndpoint(
            endpoint="fal-ai/minimax/hailuo-02/standard/image-to-video",
            input=fal_input(
                "ImageToVideoRequest",
                prompt=prompt(),
                image_url=frame("URL of the image to use as the first frame"),
                prompt_optimizer=OPTIMIZER,
            ),
            image_field="image_url",
            id_source=FAL_JS_MAP,
            schema_source="seed: ImageToVideoRequest",
            notes="fal's client gives this endpoint duration (6/10), resolution (512P/768P) and end_image_url too; the seed's "
            "request (fal's video-01 one) has none of them, so shotflow sends none: the clip is the endpoint's default "
            "(6 s assumed, as the text endpoint's default)",
        ),
    ),
)
