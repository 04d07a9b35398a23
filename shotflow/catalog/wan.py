"""Wan (Alibaba): Wan Pro (Wan 2.1), its inputs as the seed states them, and what it renders."""

from __future__ import annotations

from shotflow.catalog.inputs import FieldDecl, fal_input, frame, prompt, seed, value
from shotflow.catalog.spec import FAL_JS_MAP, ImageEndpoint, ModelSpec


def wan_input(name: str, **image: FieldDecl):
    """The text endpoint's fields; the image endpoint's add `image_url` after them."""
    return fal_input(
        name,
        prompt=prompt("The prompt to generate the video"),
        seed=seed("Random seed for reproducibility. If None, a random seed is chosen."),
        enable_safety_checker=value(True, "Whether to enable the safety checker"),
        **image,
    )


MODELS = (
    ModelSpec(
        alias="wan-pro",
        aliases=("wan",),
        endpoint="fal-ai/wan-pro/text-to-video",
        title="Wan Pro (Wan 2.1)",
        input=wan_input("WanProInput"),
        native_duration=6,
        native_resolution="1080p",
        fps=30,
        notes="6 s, 1080p, 30 fps (seed's description); no aspect ratio field",
        image=ImageEndpoint(
            endpoint="fal-ai/wan-pro/image-to-video",
            input=wan_input("WanProI2VRequest", image_url=frame("The URL of the image to generate the video from")),
            image_field="image_url",
            id_source=FAL_JS_MAP,
            schema_source="seed: WanProI2VRequest",
        ),
    ),
)
