"""Luma: Ray-2 Flash, its inputs as the seed states them, what it renders and costs.

The image endpoint (Ray2ImageToVideoRequest) takes the text endpoint's fields with a first and a
last frame after the prompt."""

from __future__ import annotations

from decimal import Decimal as D

from shotflow.catalog.inputs import FieldDecl, choice, end_frame, fal_input, frame, optional, prompt
from shotflow.catalog.spec import ASSUMED_FPS, FAL_JS_MAP, ImageEndpoint, ModelSpec, Price


def luma_input(name: str, **frames: FieldDecl):
    return fal_input(
        name,
        prompt=prompt(),
        **frames,
        aspect_ratio=choice(("16:9", "9:16", "4:3", "3:4", "21:9", "9:21"), "16:9", "The aspect ratio of the generated video"),
        loop=optional(bool, "Whether the video should loop (end of video is blended with the beginning)"),
        resolution=choice(
            ("540p", "720p", "1080p"),
            "540p",
            "The resolution of the generated video (720p costs 2x more, 1080p costs 4x more)",
        ),
        duration=choice(("5s", "9s"), "5s", "The duration of the generated video (9s costs 2x more)"),
    )


MODELS = (
    ModelSpec(
        alias="luma-ray-2-flash",
        aliases=("luma", "ray-2-flash"),
        endpoint="fal-ai/luma-dream-machine/ray-2-flash",
        title="Luma Ray-2 Flash",
        input=luma_input("LumaRay2FlashInput"),
        # the 9 s clip costs 2x the 5 s one: per clip, not per second
        price=Price(
            D("0.20"),
            "clip",
            by_resolution={"720p": D(2), "1080p": D(4)},
            by_duration={9: D(2)},
            note="$0.20 per 5 s at 540p; 720p x2, 1080p x4, 9 s x2",
        ),
        notes=ASSUMED_FPS,
        image=ImageEndpoint(
            endpoint="fal-ai/luma-dream-machine/ray-2-flash/image-to-video",
            input=luma_input(
                "Ray2ImageToVideoRequest",
                image_url=frame("Initial image to start the video from. Can be used together with end_image_url."),
                end_image_url=end_frame("Final image to end the video with. Can be used together with image_url."),
            ),
            image_field="image_url",
            end_field="end_image_url",
            id_source=FAL_JS_MAP,
            schema_source="seed: Ray2ImageToVideoRequest",
            notes="image_url is required here (fal's schema makes it optional): shotflow always sends a first frame",
        ),
    ),
)
