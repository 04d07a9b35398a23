"""PixVerse: v4 fast and v4.5, their inputs as the seed states them, what they render and cost.

Both take the same fields but for their resolutions and v4.5's duration: `pixverse_input`."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Literal

from shotflow.catalog.inputs import FieldDecl, choice, fal_input, optional, prompt, seed, value
from shotflow.catalog.spec import ASSUMED_FPS, ModelSpec, Price

PixverseStyle = Literal["anime", "3d_animation", "clay", "comic", "cyberpunk"]


def pixverse_input(name: str, resolutions: tuple[str, ...], **duration: FieldDecl):
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
    ),
    ModelSpec(
        alias="pixverse-v4.5",
        endpoint="fal-ai/pixverse/v4.5/text-to-video",
        title="PixVerse v4.5",
        input=pixverse_input(
            "PixverseV45Input",
            ("360p", "540p", "720p", "1080p"),
            duration=choice(
                ("5", "8"),
                "5",
                "The duration of the generated video in seconds. 8s videos cost double. 1080p videos are limited to 5 seconds",
            ),
        ),
        fps=30,
        forbidden=(("1080p", 8, "1080p videos are limited to 5 seconds"),),
        notes=ASSUMED_FPS,
    ),
)
