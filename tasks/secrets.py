"""Where the fal key comes from: FAL_KEY, else a Prefect Secret block named in settings.

Either way the key goes through `falkey.clean_key`: surrounding whitespace is stripped and a key
of the wrong shape is refused (naming FAL_KEY or the block, never quoting the key)."""

from __future__ import annotations

from shotflow.errors import KeyShapeError, MissingKeyError
from shotflow.generation.fal.key import clean_key
from shotflow.settings import Settings


def fal_key(settings: Settings) -> str | None:
    if settings.fal_key is not None and settings.fal_key.get_secret_value().strip():
        return clean_key(settings.fal_key.get_secret_value())
    if settings.fal_key_block:
        from prefect.blocks.system import Secret

        try:
            raw = Secret.load(settings.fal_key_block).get()
        except ValueError as exc:
            raise MissingKeyError(f"the Prefect Secret block '{settings.fal_key_block}' could not be loaded ({exc})") from None
        if not isinstance(raw, str) or not raw.strip():
            raise MissingKeyError(f"the Prefect Secret block '{settings.fal_key_block}' holds no fal key")
        try:
            return clean_key(raw)
        except KeyShapeError as exc:
            raise KeyShapeError(f"{exc} (read from the Prefect Secret block '{settings.fal_key_block}')") from None
    return None
