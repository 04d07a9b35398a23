"""The ten fal text-to-video endpoints, declared as data, and `find_model`.

Each endpoint has one typed input class that mirrors `shared/seeds/fal-text-to-video-models.txt`
field for field (names, value types, enums, defaults), and one `ModelSpec` row saying what the
model can render and what it costs: both live in the file of the model's family (kling.py, ...).
Adding a model is adding one class and one row there (a new family: a new file, listed below).
"""

from __future__ import annotations

from shotflow.catalog import kling, luma, minimax, pika, pixverse, seedance, veo, wan
from shotflow.catalog.spec import ASSUMED_FPS, ModelSpec, Price, dollars, frame_size
from shotflow.errors import ShotflowError

__all__ = ["ASSUMED_FPS", "MODELS", "ModelSpec", "Price", "dollars", "find_model", "frame_size"]

# in the seed's order
FAMILIES = (kling, seedance, pixverse, wan, luma, pika, minimax, veo)
MODELS: tuple[ModelSpec, ...] = tuple(spec for family in FAMILIES for spec in family.MODELS)

_BY_NAME: dict[str, ModelSpec] = {}
for _spec in MODELS:
    for _name in (_spec.alias, _spec.endpoint, *_spec.aliases):
        _BY_NAME[_name.lower()] = _spec


def find_model(name: str) -> ModelSpec:
    """The model named by an alias or a full endpoint id (case-insensitive)."""
    spec = _BY_NAME.get(str(name).strip().lower())
    if spec is None:
        known = ", ".join(m.alias for m in MODELS)
        raise ShotflowError(f"unknown model '{name}': use one of {known}, or a full fal endpoint id")
    return spec
