"""The base of every endpoint's typed input class: what all of fal's inputs have in common."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class FalInput(BaseModel):
    """Base of every endpoint's input: unknown keys and wrong value types are errors.

    The seed states enums (mirrored as Literal types) but no numeric ranges; where it states
    none, numbers are still held to sane bounds: floats finite, whole numbers within int64."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    @field_validator("*")
    @classmethod
    def _int64(cls, value):
        if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(f"{value} is outside the 64-bit integer range ({INT64_MIN} to {INT64_MAX})")
        return value
