"""PixVerse: v4 fast and v4.5, their inputs as the seed states them, what they render and cost.

All four endpoints (text and image, of each model) take the same fields but for their resolutions
and v4.5's duration, and the image endpoints' trailing `image_url`: `pixverse_input`.

Image-to-video is PixVerse's ImageToVideoRequest (v4.5) and FastImageToVideoRequestV4 (v4 fast):
the first frame only. PixVerse's TransitionRequest (first_image_url + last_image_url) is another
endpoint (fal-ai/pixverse/v4.5/transition) with no fast variant and no price found, meant for a
transition between two given images; one shot uses one image endpoint, so `end_image:` is refused
on PixVerse rather than switching endpoints by whether a shot gives a last frame."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Literal

from shotflow.catalog.inputs import FieldDecl, choice, fal_input, frame, optional, prompt, seed, value
from shotflow.catalog.spec import ASSUMED_FPS, FAL_JS_MAP, ImageEndpoint, ModelSpec, Price

PixverseStyle = Literal["anime", "3d_animation", "clay", "comic", "cyberpunk"]


def pixverse_input(name: str, resolutions: tuple[str, ...], *, image: bool = False, **duration: FieldDecl):
    frame_field = {"image_url": frame("URL of the image to use as the first frame")} if image else {}
    return fal_input(
        name,
        prompt=prompt(),
        aspect_ratio=choice(("16:9", "4:3", "1:1", "3:4", "9:16"), "16:9", "The aspect ratio of the generated video"),
        resolution=choice(resolutions, "720p", "The resolution of the generated video"),
        **duration,
        negative_prompt=value("", "Negative prompt to be used for the generation"),
        style=optional(PixverseStyle, "The style of the generated video"),
        seed=seed(
            "The same seed and the same prompt given to the same version of the model will output the same video every time."
        ),
        **frame_field,
    )


V45_RESOLUTIONS = ("360p", "540p", "720p", "1080p")
V45_DURATION = choice(
    ("5", "8"),
    "5",
    "The duration of the generated video in seconds. 8s videos cost double. 1080p videos are limited to 5 seconds",
)

MODELS = (
    ModelSpec(
        alias="pixverse-v4-fast",
        endpoint="fal-ai/pixverse/v4/text-to-video/fast",
        title="PixVerse v4 fast",
        input=pixverse_input("PixverseV4FastInput", ("360p", "540p", "720p")),
        native_duration=5,
        fps=30,
        price=Price({"360p": D("0.30"), "540p": D("0.30"), "720p": D("0.40")}, "clip", note="$0.30 at 360p/540p, $0.40 at 720p"),
        notes="5 s clips (no duration field; assumed from the 5 s price) and " + ASSUMED_FPS,
        image=ImageEndpoint(
            endpoint="fal-ai/pixverse/v4/image-to-video/fast",
            input=pixverse_input("FastImageToVideoRequestV4", ("360p", "540p", "720p"), image=True),
            image_field="image_url",
            id_source=FAL_JS_MAP,
            schema_source="seed: FastImageToVideoRequestV4",
        ),
    ),
    ModelSpec(
        alias="pixverse-v4.5",
        endpoint="fal-ai/pixverse/v4.5/text-to-video",
        title="PixVerse v4.5",
        input=pixverse_input("PixverseV45Input", V45_RESOLUTIONS, duration=V45_DURATION),
        fps=30,
        forbidden=(("1080p", 8, "1080p videos are limited to 5 seconds"),),
        notes=ASSUMED_FPS,
        image=ImageEndpoint(
            endpoint="fal-ai/pixverse/v4.5/image-to-video",
            input=pixverse_input("ImageToVideoRequest", V45_RESOLUTIONS, image=True, duration=V45_DURATION),
            image_field="image_url",
            id_source=FAL_JS_MAP,
            schema_source="seed: ImageToVideoRequest",
            notes="the seed's model 4 section (v4.5); fal's client also lists camera_movement, which the seed does not",
        ),
    ),
)
