"""The ten fal text-to-video models and their image-to-video endpoints, declared as data, and the
lookups: `find_model` (a model by alias or text endpoint) and `find_endpoint` / `find_input` (any
endpoint id the catalog holds, text or image, as fal's queue is called).

Each model is one `ModelSpec` (spec.py: what it renders and costs) holding its typed input class,
declared with `fal_input` (inputs.py) to mirror `shared/seeds/fal-text-to-video-models.txt` field
for field, and its `ImageEndpoint` (spec.py: the endpoint a shot with `from:`, `image:` or
`end_image:` is sent to, its input class and frame fields, price, and where its id and schema were
confirmed). Both live in the file of the model's family (kling.py, veo.py, ...).

An 11th model: one `ModelSpec(...)` in its family's `MODELS`; a new family is a new file whose
module is added to `FAMILIES` below (in the seed's order). tests/test_catalog.py then checks the
input class against the seed, tests/test_image_endpoints.py the image endpoint's.
"""

from __future__ import annotations

from shotflow.catalog import kling, luma, minimax, pika, pixverse, seedance, veo, wan
from shotflow.catalog.inputs import FalInput
from shotflow.catalog.spec import ASSUMED_FPS, ImageEndpoint, ModelSpec, Price, dollars, frame_size
from shotflow.errors import ShotflowError

__all__ = [
    "ASSUMED_FPS",
    "MODELS",
    "ImageEndpoint",
    "ModelSpec",
    "Price",
    "dollars",
    "find_endpoint",
    "find_input",
    "find_model",
    "frame_size",
    "image_models",
]

# in the seed's order
FAMILIES = (kling, seedance, pixverse, wan, luma, pika, minimax, veo)
MODELS: tuple[ModelSpec, ...] = tuple(spec for family in FAMILIES for spec in family.MODELS)

_BY_NAME: dict[str, ModelSpec] = {}
for _spec in MODELS:
    for _name in (_spec.alias, _spec.endpoint, *_spec.aliases):
        _BY_NAME[_name.lower()] = _spec

# every endpoint id -> the model as that endpoint takes it (an image endpoint's: `for_images()`)
_BY_ENDPOINT: dict[str, ModelSpec] = {}
for _spec in MODELS:
    _BY_ENDPOINT[_spec.endpoint] = _spec
    if _spec.image is not None:
        _BY_ENDPOINT[_spec.image.endpoint] = _spec.for_images()


def find_model(name: str) -> ModelSpec:
    """The model named by an alias or a full endpoint id (case-insensitive)."""
    spec = _BY_NAME.get(str(name).strip().lower())
    if spec is None:
        known = ", ".join(m.alias for m in MODELS)
        raise ShotflowError(f"unknown model '{name}': use one of {known}, or a full fal endpoint id")
    return spec


def find_endpoint(endpoint: str) -> ModelSpec | None:
    """The model as the endpoint `endpoint` takes it: a text endpoint's ModelSpec, or an image
    endpoint's `for_images()` (its input class, durations and price); None for an id the catalog
    does not declare. Exact, as fal's queue matches a request's path."""
    return _BY_ENDPOINT.get(endpoint)


def find_input(endpoint: str) -> type[FalInput]:
    """The input class a request body for `endpoint` must satisfy (text or image endpoint)."""
    spec = find_endpoint(endpoint)
    if spec is None:
        raise ShotflowError(f"unknown fal endpoint '{endpoint}': the catalog declares {', '.join(sorted(_BY_ENDPOINT))}")
    return spec.input


def image_models() -> tuple[ModelSpec, ...]:
    """The models a shot can start from a frame with (`from:`, `image:`), in the catalog's order."""
    return tuple(m for m in MODELS if m.image is not None)
