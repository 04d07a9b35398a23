"""`shotflow models`: the table of the catalog's models with each one's image-to-video endpoint, and
one model in full (`models NAME`): its text endpoint and its image endpoint, fields, prices, sources."""

from __future__ import annotations

import json
import textwrap

from shotflow.catalog import MODELS, find_model
from shotflow.cli.output import table

WIDTH = 100


def _spaced(values) -> str:
    return " ".join(str(v) for v in values)


def cmd_models(args) -> int:
    if args.name:
        print(describe_model(find_model(args.name)))
        return 0
    rows = []
    for m in MODELS:
        rows.append(
            [
                m.alias,
                ("" if m.durations else "only ") + _spaced(m.seconds),
                ("" if m.has_field("aspect_ratio") else "only ") + _spaced(m.aspect_ratios),
                ("" if m.has_field("resolution") else "only ") + _spaced(m.resolutions),
                "optional" if m.audio == "param" else "no",
                "yes" if m.has_field("seed") else "no",
                m.price.describe(),
            ]
        )
    print(
        table(
            rows,
            ["model", "seconds", "aspect ratios", "resolutions", "audio", "seed", "price on fal"],
            wrap={1: 7, 2: 13, 3: 11, 6: 28},  # 100 columns
        )
    )
    print("\nFrom a frame (from:, image:, end_image:), a shot goes to its model's image-to-video endpoint:")
    for m in MODELS:
        print("\n".join(image_lines(m)))
    print("\nPrices as seen on fal's model pages (late 2025); they change often. 'unknown' never counts as $0.")
    print("`shotflow models NAME`: one model in full (input fields, defaults, price and its date, assumptions).")
    return 0


def image_lines(m) -> list[str]:
    """Two lines (indented) for the table's image-to-video section: the endpoint, then its frames and price."""
    if m.image is None:
        return [f"  {m.alias:<18}none: from: and image: are refused for this model"]
    im = m.image
    first = f"  {m.alias:<18}{im.endpoint}" + ("  (id assumed)" if im.id_assumed else "")
    frames = f"first frame {im.image_field}; " + (f"last frame {im.end_field}" if im.end_field else "no last frame")
    return [
        first,
        *textwrap.wrap(f"{frames}; price {im.price.describe()}", WIDTH, initial_indent=" " * 20, subsequent_indent=" " * 22),
    ]


def _type_words(annotation) -> str:
    import types
    import typing

    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        words = [_type_words(a) for a in args if a is not type(None)]
        return " or ".join(words) + (" or null" if type(None) in args else "")
    return {str: "text", bool: "true/false", int: "whole number (64-bit)", float: "finite number"}.get(
        annotation, str(annotation)
    )


def _bounds(info) -> str:
    names = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "min_length": "length >=", "max_length": "length <="}
    found = []
    for meta in info.metadata:
        for attr, word in names.items():
            if getattr(meta, attr, None) is not None:
                found.append(f"{word} {getattr(meta, attr)}")
    return ", ".join(found)


class _Facts:
    """Lines of `name  text`, the text wrapped to 100 columns under its own indent."""

    def __init__(self, indent: int) -> None:
        self.indent = indent
        self.lines: list[str] = []

    def __call__(self, name: str, text: str) -> None:
        lines = textwrap.wrap(text, WIDTH - 2 - self.indent, break_on_hyphens=False) or [""]
        self.lines.append(f"  {name:<{self.indent}}{lines[0]}")
        self.lines.extend(" " * (2 + self.indent) + line for line in lines[1:])

    def shape(self, m, image: bool = False) -> None:
        """Durations, aspect ratios and resolutions of `m` (a model, or the model as its image endpoint)."""
        if m.durations:
            encoded = ", ".join(f"{s} s as {json.dumps(v)}" for s, v in m.durations.items())
            *most, last = map(str, m.seconds)
            self("durations", f"{', '.join(most)}{' or ' if most else ''}{last} s (the duration field takes {encoded})")
        else:
            why = ": the endpoint's default, taken as the text endpoint's" if image else ""
            self("durations", f"{m.native_duration} s, fixed (no duration field{why})")
        if m.has_field("aspect_ratio"):
            self("aspect ratios", ", ".join(m.aspect_ratios))
        elif image:
            self("aspect ratios", "no aspect_ratio field: the first frame decides the shape")
        else:
            self("aspect ratios", f"{', '.join(m.aspect_ratios)} (fixed: no aspect_ratio field)")
        fixed = "" if m.has_field("resolution") else " (fixed: no resolution field)"
        self("resolutions", ", ".join(m.resolutions) + fixed)

    def price(self, price) -> None:
        self("price", price.describe())
        self("", price.provenance())
        if price.note:
            self("", f"note: {price.note}")

    def fields(self, cls, where) -> None:
        """Every field of an input class: its type, default, bounds and how a shot sets it (`where`)."""
        for name, info in cls.model_fields.items():
            default = "required" if info.is_required() else f"default {json.dumps(info.default)}"
            self(name, "; ".join(x for x in (_type_words(info.annotation), default, _bounds(info), where(name)) if x))
            if info.description:
                self("", info.description)


def describe_model(m) -> str:
    """Everything shotflow knows about one model: capabilities, price, input fields, assumptions, and
    the same for its image-to-video endpoint."""
    from shotflow.catalog import ASSUMED_FPS
    from shotflow.storyboard.modelrules import MAPPED_FIELDS

    fact = _Facts(max(16, *(len(name) + 2 for name in m.input.model_fields)))

    notes = m.notes.replace(ASSUMED_FPS, "").strip(" ;,").removesuffix(" and").strip()
    assumed = []
    if ASSUMED_FPS in m.notes:
        assumed.append("the frame rate (not in the seed; assembly probes every clip)")
    if not m.durations and "assumed" in notes:
        assumed.append(f"the clip length, {m.native_duration} s (no duration field)")
    if not m.has_field("resolution") and f"native {m.native_resolution}" in notes:
        assumed.append(f"the resolution, {m.native_resolution} (no resolution field)")

    fact.lines.append(f"{m.alias}: {m.title}")
    fact("endpoint", m.endpoint + (f" (also called: {', '.join(m.aliases)})" if m.aliases else ""))
    fact.shape(m)
    if m.audio == "param":
        fact("audio", f"optional: params.generate_audio (default {json.dumps(m.field_default('generate_audio'))})")
    else:
        fact("audio", "none (the clips are silent)")
    fact("frame rate", f"{m.fps} fps" + (" (assumed)" if ASSUMED_FPS in m.notes else ""))
    fact("seed", "yes: a shot's seed: is sent" if m.has_field("seed") else "no: a shot's seed: is refused")
    fact.price(m.price)
    for resolution, seconds, why in m.forbidden:
        fact("refuses", f"{resolution} at {seconds} s: {why}")
    if notes:
        fact("notes", notes)
    fact("assumed", "; ".join(assumed) if assumed else "nothing: every fact above is from the seed's schema or description")
    fact.lines.append("")
    fact.lines.append(f"input fields ({m.input.__name__}); a shot sets them as shown, anything else goes under params:")
    fact.fields(m.input, lambda name: f"shot's {name}:" if name in MAPPED_FIELDS else f"params.{name}")
    fact.lines.append("")
    if m.image is None:
        fact.lines.append("image-to-video: none; a shot with from: or image: is refused for this model")
    else:
        fact.lines.extend(_describe_image(m, MAPPED_FIELDS))
    return "\n".join(fact.lines)


def _describe_image(m, mapped: tuple[str, ...]) -> list[str]:
    im, as_image = m.image, m.for_images()
    fact = _Facts(max(16, *(len(name) + 2 for name in im.input.model_fields)))
    fact.lines.append("image-to-video (a shot with from:, image: or end_image:):")
    fact("endpoint", im.endpoint)
    fact("id", im.id_source if im.id_assumed else f"confirmed: {im.id_source}")
    fact("first frame", f"{im.image_field} (the last frame of the from: shot, or the image: still)")
    fact("last frame", f"{im.end_field} (the end_image: still)" if im.end_field else "none: end_image: is refused")
    fact.shape(as_image, image=True)
    if im.max_image_bytes:
        fact("image size", f"up to {im.max_image_bytes / 1_000_000:g} MB per image (fal's limit)")
    fact.price(im.price)
    fact("schema", im.schema_source)
    if im.notes:
        fact("notes", im.notes)
    fact.lines.append("")
    fact.lines.append(f"image-to-video input fields ({im.input.__name__}):")
    frames = {im.image_field: "the first frame", im.end_field: "the last frame"}
    fact.fields(im.input, lambda name: frames.get(name) or (f"shot's {name}:" if name in mapped else f"params.{name}"))
    return fact.lines
