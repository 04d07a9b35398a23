"""What every endpoint's typed input class has in common, and the words to declare one.

An input class mirrors one model's Input section of `shared/seeds/fal-text-to-video-models.txt`
field for field, in the seed's order (tests/test_catalog.py compares them); an image-to-video
input mirrors the request type of the seed's "Other types" it names (or fal's docs, for the three
models the seed gives none), with `frame()` and `end_frame()` for its frame fields
(tests/test_image_endpoints.py compares them). A family file declares it as data:
`fal_input("KlingV2MasterInput", prompt=prompt(), duration=choice(...), ...)`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# one field of an input class: its type and its pydantic Field (default, description)
FieldDecl = tuple[Any, Any]


class FalInput(BaseModel):
    """Base of every endpoint's input: unknown keys and wrong value types are errors.

    The seed states enums (mirrored as Literal types) but no numeric ranges; where it states
    none, numbers are still held to sane bounds: floats finite, whole numbers within int64."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, defer_build=True)

    @field_validator("*")
    @classmethod
    def _int64(cls, value):
        if problem := int64_problem(value):
            raise ValueError(problem)
        return value


def int64_problem(value: Any) -> str | None:
    """What is wrong with a whole number that fal's JSON side cannot take (beyond a signed 64-bit
    integer); None for any other value. The storyboard holds every number of a file to it too."""
    if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
        return f"{value} is outside the 64-bit integer range ({INT64_MIN} to {INT64_MAX})"
    return None


def fal_input(name: str, **fields: FieldDecl) -> type[FalInput]:
    """The input class `name` with `fields`, in the order given (the seed's)."""
    return create_model(name, __base__=FalInput, **fields)


def prompt(description: str | None = None) -> FieldDecl:
    """The required text prompt every endpoint takes."""
    return str, Field(description=description)


def choice(values: tuple[str, ...], default: str, description: str) -> FieldDecl:
    """One of the seed's enum values (fal's enums are strings), in the seed's order."""
    return Literal[values], Field(default, description=description)


def value(default: str | float | bool | int, description: str | None = None) -> FieldDecl:
    """A plain field of its default's type."""
    return type(default), Field(default, description=description)


def optional(kind: Any, description: str | None) -> FieldDecl:
    """A field the seed leaves unset by default (null): sent only when a shot gives it."""
    return kind | None, Field(None, description=description)


def seed(description: str) -> FieldDecl:
    """The random seed, a whole number: a shot's `seed:` is sent to models that have it."""
    return optional(int, description)


def frame(description: str | None = None) -> FieldDecl:
    """The first frame of an image-to-video endpoint: required, an https URL or a data URI (shotflow
    sends the frame as a data URI, made at the submit from the frame's stored file)."""
    return str, Field(description=description)


def end_frame(description: str | None = None) -> FieldDecl:
    """The last frame, on endpoints that take one: sent only when a shot gives `end_image:`."""
    return optional(str, description)
