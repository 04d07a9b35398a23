"""The ten fal text-to-video endpoints, declared as data, and `find_model`.

Each endpoint is one `ModelSpec` (spec.py: what it renders and costs) holding its typed input
class, declared with `fal_input` (inputs.py) to mirror `shared/seeds/fal-text-to-video-models.txt`
field for field. Both live in the file of the model's family (kling.py, veo.py, ...).

An 11th model: one `ModelSpec(...)` in its family's `MODELS`; a new family is a new file whose
module is added to `FAMILIES` below (in the seed's order). tests/test_catalog.py then checks the
input class against the seed.
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
