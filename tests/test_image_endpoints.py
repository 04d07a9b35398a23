"""Each model's image-to-video endpoint against its sources.

Seven are mirrored from the seed's "Other types" (the request type each names in `schema_source`):
parsed here and compared with the input class field for field, as test_catalog does for the text
inputs. Seedance, Veo 3 and Veo 2 have no request type in the seed: their classes are compared
with the schema as read in fal's docs (recorded below, with the page each fact came from), and
must carry their sources. Then: frame fields, what `for_images()` gives the planner, the lookups
the fake fal server uses (it validates image bodies with their own class), and `shotflow models`.
"""

from __future__ import annotations

import base64
import re
from decimal import Decimal

import httpx
import pytest
from test_catalog import SEED_COPY, _annotation_parts, _bounds, assert_mirrors, parse_fields, seed_blocks

from shotflow.catalog import MODELS, find_endpoint, find_input, find_model, frame_size, image_models
from shotflow.catalog.spec import ASSUMED_ID
from shotflow.errors import ShotflowError

# a field line of an "Other types" request: any type, e.g. `dynamic_masks list<DynamicMask>`
OTHER_FIELD = re.compile(r"^([a-z_]+) (string|float|boolean|integer|[A-Za-z]+Enum|list<\w+>|[A-Z]\w*)$")
TYPE_LINE = re.compile(r"^[A-Z]\w*$")


def parse_other_types(text: str) -> dict[str, dict[str, dict[str, dict]]]:
    """endpoint -> request type -> field -> {type, default, enum, ge, le}, from each model's 'Other types'."""
    out: dict[str, dict[str, dict[str, dict]]] = {}
    for endpoint, block in seed_blocks(text).items():
        lines = block.split("\nOther types\n", 1)[1].splitlines() if "\nOther types\n" in block else []
        types: dict[str, list[str]] = {}
        current = None
        for i, line in enumerate(lines):
            if TYPE_LINE.match(line.strip()) and i + 1 < len(lines) and lines[i + 1].strip() == "#":
                current = types.setdefault(line.strip(), [])
            elif current is not None:
                current.append(line)
        out[endpoint] = {name: parse_fields(body, OTHER_FIELD) for name, body in types.items()}
    return out


@pytest.fixture(scope="module")
def other_types():
    return parse_other_types(SEED_COPY.read_text(encoding="utf-8"))


def test_the_other_types_parser_reads_each_request_type():
    text = (
        "model 1 - fal-ai/x\n5. Schema\nInput\nprompt string\n\n{\n}\nOther types\n#\nFile\n#\nurl string\n"
        "ImageToVideoRequest\n#\nprompt string\nimage_url string\nURL of the image\n\nduration DurationEnum\n"
        'The duration Default value: "5"\n\nPossible enum values: 5, 10\n\nmasks list<DynamicMask>\nMasks\n'
    )
    types = parse_other_types(text)["fal-ai/x"]
    assert list(types) == ["File", "ImageToVideoRequest"]
    request = types["ImageToVideoRequest"]
    assert list(request) == ["prompt", "image_url", "duration", "masks"]
    assert request["duration"]["enum"] == ["5", "10"] and request["duration"]["default"] == '"5"'


SEEDED = [m for m in MODELS if m.image and m.image.schema_source.startswith("seed: ")]
FROM_DOCS = [m for m in MODELS if m.image and not m.image.schema_source.startswith("seed: ")]


def test_every_model_starts_from_a_frame_seven_from_the_seed():
    assert image_models() == MODELS, "every one of the ten has an image endpoint"
    assert len(SEEDED) == 7 and {m.alias for m in FROM_DOCS} == {"seedance-1.0-pro", "veo3", "veo2"}


@pytest.mark.parametrize("spec", SEEDED, ids=lambda m: m.alias)
def test_seed_image_input_mirrors_the_request_type_it_names(other_types, spec):
    request = spec.image.schema_source.removeprefix("seed: ")
    assert spec.image.input.__name__ == request
    fields = other_types[spec.endpoint][request]
    assert_mirrors(spec.image.input, fields, required=("prompt", spec.image.image_field))
    for name, want in fields.items():
        assert _bounds(spec.image.input.model_fields[name]) == (want["ge"], want["le"]), name


def field(kind: str, default: str | None = None, enum: list[str] | None = None) -> dict:
    """One field as parse_fields reads it: the seed's words for types and defaults."""
    return {"type": kind, "default": default, "enum": enum, "ge": None, "le": None}


# fal's schemas as read (2026-12-01): fields, types and enums from fal's client (fal-ai/fal-js
# libs/client/src/types/video/zod.gen.ts at 53241327, generated from fal's OpenAPI); enum defaults
# from fal's model pages where they give one (llms.txt), else the declared default the notes explain
DOCS = {
    "seedance-1.0-pro": {
        "prompt": field("string"),
        "aspect_ratio": field("AspectRatioEnum", '"auto"', ["21:9", "16:9", "4:3", "1:1", "3:4", "9:16", "auto"]),
        "resolution": field("ResolutionEnum", '"1080p"', ["480p", "720p", "1080p"]),
        "duration": field("DurationEnum", '"5"', [str(s) for s in range(2, 13)]),
        "camera_fixed": field("boolean", "false"),
        "seed": field("integer"),
        "enable_safety_checker": field("boolean", "true"),
        "image_url": field("string"),
        "end_image_url": field("string"),
    },
    "veo3": {
        "prompt": field("string"),
        "aspect_ratio": field("AspectRatioEnum", '"auto"', ["auto", "16:9", "9:16"]),
        "duration": field("DurationEnum", '"8s"', ["4s", "6s", "8s"]),
        "resolution": field("ResolutionEnum", '"720p"', ["720p", "1080p"]),
        "generate_audio": field("boolean", "true"),
        "auto_fix": field("boolean", "false"),
        "image_url": field("string"),
    },
    "veo2": {
        "prompt": field("string"),
        "duration": field("DurationEnum", '"5s"', ["5s", "6s", "7s", "8s"]),
        "aspect_ratio": field("AspectRatioEnum", '"auto"', ["auto", "auto_prefer_portrait", "16:9", "9:16"]),
        "image_url": field("string"),
    },
}


@pytest.mark.parametrize("spec", FROM_DOCS, ids=lambda m: m.alias)
def test_docs_image_input_mirrors_the_schema_as_read_and_names_its_sources(spec):
    assert_mirrors(spec.image.input, DOCS[spec.alias], required=("prompt", "image_url"))
    source = spec.image.schema_source
    assert "fal-ai/fal-js" in source and re.search(r"read \d{4}-\d{2}-\d{2}", source), source
    assert spec.image.notes, "what is not from the source (a default, a field left out) is said"


def test_veo3_image_prompt_keeps_fals_length_limit():
    from pydantic import ValidationError

    veo3 = find_model("veo3").image.input
    veo3.model_validate({"prompt": "p" * 20000, "image_url": "data:image/png;base64,AA=="})
    with pytest.raises(ValidationError, match="at most 20000"):
        veo3.model_validate({"prompt": "p" * 20001, "image_url": "data:image/png;base64,AA=="})


@pytest.mark.parametrize("spec", MODELS, ids=lambda m: m.alias)
def test_frame_fields_exist_the_first_required_the_last_optional(spec):
    im = spec.image
    fields = im.input.model_fields
    assert fields[im.image_field].is_required() and fields[im.image_field].annotation is str
    if im.end_field is not None:
        assert not fields[im.end_field].is_required() and _annotation_parts(fields[im.end_field].annotation)[0] is str
    frame_like = {name for name in fields if name.endswith("image_url")}
    assert frame_like == {im.image_field, im.end_field} - {None}, "every image field is a frame field"
    assert im.image_field not in spec.input.model_fields, "the text endpoint takes no frame"


def test_end_frames_are_where_the_request_has_one():
    ends = {m.alias: m.image.end_field for m in MODELS}
    assert ends == {
        "kling-2.0-master": None,  # ImageToVideoV2MasterRequest has no tail_image_url
        "seedance-1.0-pro": "end_image_url",
        "pixverse-v4-fast": None,
        "pixverse-v4.5": None,  # the transition request is another endpoint
        "wan-pro": None,
        "luma-ray-2-flash": "end_image_url",
        "pika-2.2": None,
        "hailuo-02": None,
        "veo3": None,
        "veo2": None,
    }


@pytest.mark.parametrize("spec", MODELS, ids=lambda m: m.alias)
def test_every_image_endpoint_id_is_confirmed_with_its_source(spec):
    im = spec.image
    assert im.endpoint.endswith("image-to-video") or im.endpoint.endswith("image-to-video/fast"), im.endpoint
    assert im.endpoint.split("/")[:2] == spec.endpoint.split("/")[:2], "the same model family on fal"
    assert not im.id_assumed and im.id_source != ASSUMED_ID
    assert "endpoint-map.ts" in im.id_source and re.search(r"\d{4}-\d{2}-\d{2}", im.id_source)


def cost(price, seconds, resolution="1080p", audio=False, fps=24):
    w, h = frame_size("16:9", resolution)
    return price.cost(seconds=seconds, resolution=resolution, width=w, height=h, fps=fps, audio=audio)


def test_image_prices_are_declared_only_where_fal_prices_them_like_the_text():
    priced = {m.alias for m in MODELS if m.image.price.usd is not None}
    assert priced == {"seedance-1.0-pro", "veo3"}
    for alias in priced:
        m = find_model(alias)
        assert "image-to-video" in m.image.price.source and re.match(r"\d{4}-\d{2}", m.image.price.as_of)
        for seconds, audio in ((5, False), (8, True), (8, False)):
            assert cost(m.image.price, seconds, audio=audio) == cost(m.price, seconds, audio=audio), alias
    assert cost(find_model("veo3").image.price, 8, audio=True) == Decimal("3.20")
    for m in MODELS:
        if m.alias not in priced:
            assert cost(m.image.price, 5) is None and m.image.price.describe() == "unknown", m.alias


def test_veo2_documents_its_image_size_limit():
    assert find_model("veo2").image.max_image_bytes == 8_000_000
    assert all(m.image.max_image_bytes is None for m in MODELS if m.alias != "veo2"), "only where the docs give one"


def test_for_images_is_the_model_as_its_image_endpoint():
    shapes = {}
    for m in MODELS:
        i = m.for_images()
        assert (i.endpoint, i.input, i.price, i.image) == (m.image.endpoint, m.image.input, m.image.price, None)
        assert i.alias == m.alias and i.fps == m.fps
        shapes[m.alias] = (i.seconds, i.default_seconds, i.aspect_ratios if i.has_field("aspect_ratio") else None)
    assert shapes == {
        "kling-2.0-master": ((5, 10), 5, None),
        "seedance-1.0-pro": (tuple(range(2, 13)), 5, ("21:9", "16:9", "4:3", "1:1", "3:4", "9:16", "auto")),
        "pixverse-v4-fast": ((5,), 5, ("16:9", "4:3", "1:1", "3:4", "9:16")),
        "pixverse-v4.5": ((5, 8), 5, ("16:9", "4:3", "1:1", "3:4", "9:16")),
        "wan-pro": ((6,), 6, None),
        "luma-ray-2-flash": ((5, 9), 5, ("16:9", "9:16", "4:3", "3:4", "21:9", "9:21")),
        "pika-2.2": ((5, 10), 5, None),  # an integer duration: the text endpoint's lengths are kept
        "hailuo-02": ((6,), 6, None),  # no duration field: the text endpoint's default length
        "veo3": ((4, 6, 8), 8, ("auto", "16:9", "9:16")),
        "veo2": ((5, 6, 7, 8), 5, ("auto", "auto_prefer_portrait", "16:9", "9:16")),
    }
    assert find_model("seedance").for_images().resolutions == ("480p", "720p", "1080p")
    assert find_model("hailuo").for_images().durations == {} and find_model("kling").for_images().durations == {5: "5", 10: "10"}
    with pytest.raises(ValueError, match="veo3 has no image endpoint"):
        find_model("veo3").for_images().for_images()


def test_every_endpoint_id_finds_its_input_class():
    for m in MODELS:
        assert find_endpoint(m.endpoint) is m and find_input(m.endpoint) is m.input
        assert find_input(m.image.endpoint) is m.image.input
        assert find_endpoint(m.image.endpoint).seconds == m.for_images().seconds
    assert find_endpoint("fal-ai/veo2/IMAGE-TO-VIDEO") is None, "exact, as fal's queue matches a path"
    with pytest.raises(ShotflowError, match="unknown fal endpoint 'fal-ai/sora'.*fal-ai/veo2/image-to-video"):
        find_input("fal-ai/sora")


PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()


def submit(fake, endpoint: str, body: dict):
    """POST a request as fal_client would, answered by the fake server: the job it made of it."""
    import ssl

    import fakefal

    r = httpx.post(f"https://{fake.host}/{endpoint}", json=body, headers={"Authorization": f"Key {fakefal.KEY}"},
                   verify=ssl.create_default_context(cafile=str(fake.ca_file)), timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text
    return fake.jobs[r.json()["request_id"]]


@pytest.mark.parametrize("spec", MODELS, ids=lambda m: m.alias)
def test_the_fake_server_validates_image_bodies_with_their_own_class(fake_fal, spec):
    im = spec.image
    body = {"prompt": "the car stops by the lighthouse", im.image_field: PNG}
    if im.end_field:
        body[im.end_field] = PNG
    job = submit(fake_fal, im.endpoint, body)
    assert job.outcome == "ok", job.detail
    assert job.seconds == spec.for_images().default_seconds
    missing = submit(fake_fal, im.endpoint, {"prompt": "no frame"})
    assert missing.outcome == "invalid" and ["body", im.image_field] in [d["loc"] for d in missing.detail]
    text_only = set(spec.input.model_fields) - set(im.input.model_fields)
    if text_only:  # a field only the text endpoint takes is refused at the image endpoint
        name = sorted(text_only)[0]
        wrong = submit(fake_fal, im.endpoint, {**body, name: spec.input.model_fields[name].default or "x"})
        assert wrong.outcome == "invalid" and ["body", name] in [d["loc"] for d in wrong.detail]


def test_shotflow_models_shows_every_image_endpoint_its_frames_and_price(capsys):
    from argparse import Namespace

    from shotflow.cli.models import cmd_models, describe_model

    cmd_models(Namespace(name=None))
    out = capsys.readouterr().out
    assert max(map(len, out.splitlines())) <= 100
    for m in MODELS:
        assert f"\n  {m.alias:<18}{m.image.endpoint}\n" in out, m.alias
    assert "first frame image_url; last frame end_image_url; price unknown" in out  # luma
    assert "first frame image_url; no last frame; price $0.20/s, $0.40/s with audio" in out  # veo3
    assert "(id assumed)" not in out
    luma = describe_model(find_model("luma"))
    assert "\nimage-to-video (a shot with from:, image: or end_image:):\n" in luma
    assert re.search(r"\n  last frame +end_image_url \(the end_image: still\)", luma)
    assert re.search(r"\n  end_image_url +text or null; default null; the last frame", luma)
    assert "image-to-video input fields (Ray2ImageToVideoRequest):" in luma
    veo2 = describe_model(find_model("veo2"))
    assert re.search(r"\n  last frame +none: end_image: is refused", veo2) and "up to 8 MB per image" in veo2
    assert re.search(r"\n  id +confirmed: https://fal.ai/models/fal-ai/veo2/image-to-video/api", veo2)
    hailuo = describe_model(find_model("hailuo"))
    assert re.search(r"\n  aspect ratios +no aspect_ratio field: the first frame decides the shape", hailuo)
    assert re.search(r"\n  durations +6 s, fixed \(no duration field", hailuo)
    for m in MODELS:
        assert max(map(len, describe_model(m).splitlines())) <= 100, m.alias
