"""The catalog against the contract: shared/seeds/fal-text-to-video-models.txt.

The seed's Input section of every model is parsed here and compared with the typed input class
field for field (names, value types, enums, defaults), so a typo in a declaration fails a test.
"""

from __future__ import annotations

import re
import typing
from decimal import Decimal
from pathlib import Path

import pytest

from shotflow.catalog import MODELS, find_model, frame_size
from shotflow.errors import ShotflowError

SHARED_SEED = Path(__file__).resolve().parents[2] / "shared" / "seeds" / "fal-text-to-video-models.txt"
# a copy travels with the repo so the contract is checked in any clone
SEED_COPY = Path(__file__).resolve().parent / "fixtures" / "fal-text-to-video-models.txt"

FIELD_LINE = re.compile(r"^([a-z_]+) (string|float|boolean|integer|[A-Za-z]+Enum)$")
# the ways fal's pages state a numeric range: "between 0 and 1", "Range: 1 to 10", "Minimum: 0"
NUMBER = r"(-?\d+(?:\.\d+)?)"
RANGE = re.compile(rf"(?i)\b(?:between|range:?|from)\s+{NUMBER}\s+(?:and|to|-)\s+{NUMBER}")
BOUND = re.compile(rf"(?i)\b(minimum|min|maximum|max)(?: value)?(?: is)?:?\s+{NUMBER}\b")


def seed_blocks(text: str) -> dict[str, str]:
    """endpoint -> the seed's text about that model (from its 'model N' line to the next)."""
    blocks = re.split(r"(?im)^model \d+\s*-*\s*", text)[1:]
    return {block.split()[0]: block for block in blocks}


def parse_seed(text: str) -> dict[str, dict[str, dict]]:
    """endpoint -> field -> {type, default, enum, ge, le} from each model's '5. Schema / Input' section."""
    models: dict[str, dict[str, dict]] = {}
    for endpoint, block in seed_blocks(text).items():
        section = block.split("5. Schema", 1)[1].split("\nInput\n", 1)[1]
        models[endpoint] = parse_fields(section.split("\n{", 1)[0].splitlines())
    return models


def parse_fields(lines: list[str], field_line: re.Pattern = FIELD_LINE) -> dict[str, dict]:
    """field -> {type, default, enum, ge, le} from a schema section's lines, in their order."""
    fields: dict[str, dict] = {}
    current = None
    for line in lines:
        line = line.strip()
        m = field_line.match(line)
        if m:
            current = {"type": m.group(2), "default": None, "enum": None, "ge": None, "le": None}
            fields[m.group(1)] = current
            continue
        if current is None:
            continue
        d = re.search(r"Default value: (.+)$", line)
        if d:
            current["default"] = d.group(1)
        e = re.match(r"Possible enum values: (.+)$", line)
        if e:
            current["enum"] = [v.strip() for v in e.group(1).split(",")]
        for low, high in RANGE.findall(line):
            current["ge"], current["le"] = float(low), float(high)
        for word, number in BOUND.findall(line):
            current["ge" if word.lower().startswith("min") else "le"] = float(number)
    return fields


@pytest.fixture(scope="module")
def seed():
    return parse_seed(SEED_COPY.read_text(encoding="utf-8"))


def test_the_copy_of_the_seed_is_the_contract():
    if not SHARED_SEED.is_file():
        pytest.skip(f"shared/ is not beside this clone ({SHARED_SEED})")
    assert SEED_COPY.read_bytes() == SHARED_SEED.read_bytes(), (
        "the seed changed: copy it to tests/fixtures and re-check the catalog"
    )


def test_seed_has_the_ten_endpoints(seed):
    assert sorted(seed) == sorted(m.endpoint for m in MODELS)


PY_TYPES = {"string": str, "float": float, "boolean": bool, "integer": int}


def _annotation_parts(annotation):
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return None, list(args)
    if args:  # X | None
        inner = [a for a in args if a is not type(None)]
        assert len(inner) == 1
        return _annotation_parts(inner[0])
    return annotation, None


@pytest.mark.parametrize("spec", MODELS, ids=lambda m: m.alias)
def test_input_class_mirrors_the_seed(seed, spec):
    assert_mirrors(spec.input, seed[spec.endpoint])


def assert_mirrors(cls, fields: dict[str, dict], required: tuple[str, ...] = ("prompt",)) -> None:
    """The input class declares exactly `fields` (as parse_fields reads them): names in order, value
    types, enums, defaults; the `required` fields have no default, every other defaultless one is None."""
    declared = cls.model_fields
    assert list(declared) == list(fields), f"{cls.__name__}: same field names, in the source's order"
    for name, want in fields.items():
        info = declared[name]
        py_type, enum = _annotation_parts(info.annotation)
        if want["enum"] is not None:
            assert enum == want["enum"], name
            assert all(isinstance(v, str) for v in enum), f"{name}: fal's enums are strings"
        else:
            assert enum is None and py_type is PY_TYPES[want["type"]], name
        default = info.default
        if want["default"] is None:
            if name in required:
                assert info.is_required(), f"{name} is required"
            else:
                assert default is None and not info.is_required(), f"{name} has no default in the source"
        else:
            raw = want["default"]
            if raw.startswith('"'):
                assert default == raw.strip('"'), name
            elif raw in ("true", "false"):
                assert default is (raw == "true"), name
            elif py_type is float:
                assert isinstance(default, float) and default == float(raw), name
            else:
                assert default == int(raw) and type(default) is int, name


@pytest.mark.parametrize("spec", MODELS, ids=lambda m: m.alias)
def test_durations_encode_to_the_seed_enum(spec):
    if not spec.durations:
        assert not spec.has_field("duration") and spec.native_duration
        return
    field = spec.input.model_fields["duration"]
    py_type, enum = _annotation_parts(field.annotation)
    for seconds, encoded in spec.durations.items():
        if enum is not None:
            assert encoded in enum
        else:
            assert type(encoded) is py_type
        spec.input.model_validate({"prompt": "x", "duration": encoded})


def test_aliases_and_endpoints_both_resolve():
    for spec in MODELS:
        assert find_model(spec.alias) is spec
        assert find_model(spec.endpoint) is spec
        assert find_model(spec.endpoint.upper()) is spec
    assert find_model("veo3").endpoint == "fal-ai/veo3"
    assert find_model("pika-2.2").endpoint == "fal-ai/pika/v2.2/text-to-video"
    with pytest.raises(ShotflowError, match="unknown model 'sora'.*kling-2.0-master"):
        find_model("sora")


def test_every_price_has_a_source_and_a_date():
    for spec in MODELS:
        assert spec.price.source and re.match(r"\d{4}-\d{2}", spec.price.as_of)


def cost(alias, seconds, resolution="720p", aspect="16:9", audio=False):
    spec = find_model(alias)
    w, h = frame_size(aspect, resolution)
    return spec.price.cost(seconds=seconds, resolution=resolution, width=w, height=h, fps=spec.fps, audio=audio)


def test_prices_follow_the_published_formulas():
    assert cost("kling-2.0-master", 5) == Decimal("1.40")
    assert cost("kling-2.0-master", 10) == Decimal("2.80")
    assert cost("veo3", 8, audio=True) == Decimal("3.20")
    assert cost("veo3", 8, audio=False) == Decimal("1.60")
    assert cost("luma-ray-2-flash", 5, "540p") == Decimal("0.20")
    assert cost("luma-ray-2-flash", 9, "1080p") == Decimal("1.60")
    assert cost("pika-2.2", 5, "1080p") == Decimal("0.45")
    assert cost("pixverse-v4-fast", 5, "540p") == Decimal("0.30")
    assert cost("pixverse-v4-fast", 5, "720p") == Decimal("0.40")
    assert cost("hailuo-02", 6, "768p") == Decimal("0.27")
    # $2.5 per 1M tokens, tokens = w*h*fps*s/1024: 1920x1080 at 24 fps for 5 s is about $0.61
    assert cost("seedance-1.0-pro", 5, "1080p") == Decimal("0.6075")


def test_unknown_prices_are_none_never_zero():
    for alias in ("wan-pro", "veo2", "pixverse-v4.5"):
        assert cost(alias, find_model(alias).seconds[0]) is None


def test_frame_sizes():
    assert frame_size("16:9", "720p") == (1280, 720)
    assert frame_size("9:16", "1080p") == (1080, 1920)
    assert frame_size("1:1", "540p") == (540, 540)
    assert frame_size("16:9", "768p") == (1366, 768)
    assert frame_size("21:9", "720p") == (1680, 720)


def _bounds(info) -> tuple[float | None, float | None]:
    ge = le = None
    for m in info.metadata:
        assert getattr(m, "gt", None) is None and getattr(m, "lt", None) is None, "the seed states inclusive ranges: use ge/le"
        if getattr(m, "ge", None) is not None:
            ge = float(m.ge)
        if getattr(m, "le", None) is not None:
            le = float(m.le)
    return ge, le


def test_the_range_parser_reads_the_ways_fal_states_ranges():
    text = (
        "model 1 - fal-ai/x\n5. Schema\nInput\nprompt string\nstrength float\n"
        "How strong. Must be between 0 and 1. Default value: 0.5\n\nsteps integer\nMaximum: 50\n\n{\n"
    )
    fields = parse_seed(text)["fal-ai/x"]
    assert (fields["strength"]["ge"], fields["strength"]["le"]) == (0.0, 1.0)
    assert (fields["steps"]["ge"], fields["steps"]["le"]) == (None, 50.0)


@pytest.mark.parametrize("spec", MODELS, ids=lambda m: m.alias)
def test_input_class_mirrors_every_range_the_seed_states(seed, spec):
    """Where the seed gives a range the class enforces it (ge/le); where it gives none the
    class declares none of its own (numbers are still held finite and within int64)."""
    for name, want in seed[spec.endpoint].items():
        assert _bounds(spec.input.model_fields[name]) == (want["ge"], want["le"]), name


@pytest.mark.parametrize("spec", MODELS, ids=lambda m: m.alias)
def test_every_input_refuses_nan_infinity_and_huge_whole_numbers(spec):
    from pydantic import ValidationError

    for name, info in spec.input.model_fields.items():
        py_type, enum = _annotation_parts(info.annotation)
        if enum is not None or py_type not in (int, float):
            continue
        bad_values = (float("nan"), float("inf")) if py_type is float else (2**63, -(2**63) - 1)
        for bad in bad_values:
            with pytest.raises(ValidationError):
                spec.input.model_validate({"prompt": "p", name: bad})


def test_every_family_file_is_in_the_catalog():
    """A model declared in a new family file but not listed in FAMILIES would never be found."""
    import importlib
    import pkgutil

    import shotflow.catalog as catalog

    for info in pkgutil.iter_modules(catalog.__path__):
        module = importlib.import_module(f"shotflow.catalog.{info.name}")
        if hasattr(module, "MODELS"):
            assert module in catalog.FAMILIES, f"shotflow/catalog/{info.name}.py: add it to FAMILIES"


def test_durations_are_read_from_the_duration_enum_or_declared():
    from shotflow.catalog.inputs import choice, fal_input, prompt, value
    from shotflow.catalog.spec import ModelSpec

    enum = fal_input("EnumInput", prompt=prompt(), duration=choice(("4s", "12s"), "4s", "seconds"))
    assert ModelSpec("x", "fal-ai/x", "X", enum).durations == {4: "4s", 12: "12s"}
    plain = fal_input("PlainInput", prompt=prompt(), duration=value(5))
    with pytest.raises(TypeError, match="x: its duration field has no enum: declare durations="):
        ModelSpec("x", "fal-ai/x", "X", plain)
    assert ModelSpec("x", "fal-ai/x", "X", plain, durations={5: 5}).seconds == (5,)
