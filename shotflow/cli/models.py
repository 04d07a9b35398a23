"""`shotflow models`: the table of the catalog's models, and one model in full (`models NAME`)."""

from __future__ import annotations

import json

from shotflow.catalog import MODELS, find_model
from shotflow.cli.output import table


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
    print("\nPrices as seen on fal's model pages (late 2025); they change often. 'unknown' never counts as $0.")
    print("`shotflow models NAME`: one model in full (input fields, defaults, price and its date, assumptions).")
    return 0


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
    return {str: "text", bool: "true/false", int: "whole number (64-bit)", float: "finite number"}.get(annotation, str(annotation))


def _bounds(info) -> str:
    names = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "min_length": "length >=", "max_length": "length <="}
    found = []
    for meta in info.metadata:
        for attr, word in names.items():
            if getattr(meta, attr, None) is not None:
                found.append(f"{word} {getattr(meta, attr)}")
    return ", ".join(found)


def describe_model(m) -> str:
    """Everything shotflow knows about one model: capabilities, price, input fields, assumptions."""
    import textwrap

    from shotflow.catalog import ASSUMED_FPS
    from shotflow.storyboard.modelrules import MAPPED_FIELDS

    out: list[str] = []
    indent = max(16, *(len(name) + 2 for name in m.input.model_fields))

    def fact(name: str, text: str) -> None:
        lines = textwrap.wrap(text, 100 - 2 - indent, break_on_hyphens=False) or [""]
        out.append(f"  {name:<{indent}}{lines[0]}")
        out.extend(" " * (2 + indent) + line for line in lines[1:])

    notes = m.notes.replace(ASSUMED_FPS, "").strip(" ;,").removesuffix(" and").strip()
    assumed = []
    if ASSUMED_FPS in m.notes:
        assumed.append("the frame rate (not in the seed; assembly probes every clip)")
    if not m.durations and "assumed" in notes:
        assumed.append(f"the clip length, {m.native_duration} s (no duration field)")
    if not m.has_field("resolution") and f"native {m.native_resolution}" in notes:
        assumed.append(f"the resolution, {m.native_resolution} (no resolution field)")

    out.append(f"{m.alias}: {m.title}")
    fact("endpoint", m.endpoint + (f" (also called: {', '.join(m.aliases)})" if m.aliases else ""))
    if m.durations:
        encoded = ", ".join(f"{s} s as {json.dumps(v)}" for s, v in m.durations.items())
        *most, last = map(str, m.seconds)
        fact("durations", f"{', '.join(most)}{' or ' if most else ''}{last} s (the duration field takes {encoded})")
    else:
        fact("durations", f"{m.native_duration} s, fixed (no duration field)")
    fixed = "" if m.has_field("aspect_ratio") else " (fixed: no aspect_ratio field)"
    fact("aspect ratios", ", ".join(m.aspect_ratios) + fixed)
    fixed = "" if m.has_field("resolution") else " (fixed: no resolution field)"
    fact("resolutions", ", ".join(m.resolutions) + fixed)
    if m.audio == "param":
        fact("audio", f"optional: params.generate_audio (default {json.dumps(m.field_default('generate_audio'))})")
    else:
        fact("audio", "none (the clips are silent)")
    fact("frame rate", f"{m.fps} fps" + (" (assumed)" if ASSUMED_FPS in m.notes else ""))
    fact("seed", "yes: a shot's seed: is sent" if m.has_field("seed") else "no: a shot's seed: is refused")
    fact("price", m.price.describe())
    fact("", m.price.provenance())
    if m.price.note:
        fact("", f"note: {m.price.note}")
    for resolution, seconds, why in m.forbidden:
        fact("refuses", f"{resolution} at {seconds} s: {why}")
    if notes:
        fact("notes", notes)
    fact("assumed", "; ".join(assumed) if assumed else "nothing: every fact above is from the seed's schema or description")
    out.append("")
    out.append(f"input fields ({m.input.__name__}); a shot sets them as shown, anything else goes under params:")
    for name, info in m.input.model_fields.items():
        default = "required" if info.is_required() else f"default {json.dumps(info.default)}"
        bounds = _bounds(info)
        where = f"shot's {name}:" if name in MAPPED_FIELDS else f"params.{name}"
        fact(name, "; ".join(x for x in (_type_words(info.annotation), default, bounds, where) if x))
        if info.description:
            fact("", info.description)
    return "\n".join(out)
