"""Where the fal key comes from: FAL_KEY, else a Prefect Secret block named in settings."""

from __future__ import annotations

from shotflow.errors import MissingKeyError
from shotflow.settings import Settings


def fal_key(settings: Settings) -> str | None:
    if settings.fal_key is not None and settings.fal_key.get_secret_value():
        return settings.fal_key.get_secret_value()
    if settings.fal_key_block:
        from prefect.blocks.system import Secret

        try:
            return Secret.load(settings.fal_key_block).get()
        except ValueError as exc:
            raise MissingKeyError(f"the Prefect Secret block '{settings.fal_key_block}' could not be loaded ({exc})") from None
    return None
