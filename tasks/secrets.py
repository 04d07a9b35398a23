"""Secrets from Prefect blocks: the fal key (FAL_KEY, else the Secret block SHOTFLOW_FAL_KEY_BLOCK
names), and a worker's secret environment (the Secret block SHOTFLOW_SECRETS_BLOCK names).

The key goes through `falkey.clean_key`: surrounding whitespace is stripped and a key of the wrong
shape is refused (naming FAL_KEY or the block, never quoting the key).

A deployment carries only what is not secret to its workers (the store, the Redis address without
a password, the lease TTL: deployments/storyboards.py `team_env`); AWS keys, a Redis URL with its
password and FAL_KEY live in one Secret block holding a JSON object of environment variables,
which the flow applies when it starts (`load_secret_env`), before anything reads the settings or
opens the store: a variable already set on the worker wins. Messages name the block and the
variables, never a value.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, MutableMapping
from typing import Any

from shotflow.errors import KeyShapeError, MissingKeyError
from shotflow.generation.fal.key import clean_key
from shotflow.settings import Settings, SettingsError, get_settings


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


def apply_secret_env(values: Any, block: str, environ: MutableMapping[str, str] = os.environ) -> list[str]:
    """Set each variable of `values` (a JSON object, or its text) that `environ` does not already
    have (an empty value counts as unset); the names set, sorted."""
    what = f"the Prefect Secret block '{block}' (SHOTFLOW_SECRETS_BLOCK)"
    if isinstance(values, str):
        try:
            values = json.loads(values)
        except ValueError:
            values = None
    if not isinstance(values, Mapping):
        raise SettingsError(f'{what} must hold a JSON object of environment variables, e.g. {{"AWS_ACCESS_KEY_ID": "..."}}')
    bad = sorted(
        str(k)
        for k, v in values.items()
        if not str(k).isidentifier() or not isinstance(v, (str, int, float)) or isinstance(v, bool)
    )
    if bad:
        raise SettingsError(f"{what}: {', '.join(bad)}: a variable's name must be a plain name and its value a string or number")
    applied = []
    for name, value in values.items():
        if name == "SHOTFLOW_SECRETS_BLOCK" or environ.get(name, "").strip():
            continue
        environ[name] = str(value)
        applied.append(name)
    return sorted(applied)


def load_secret_env(settings: Settings | None = None) -> list[str]:
    """Apply the Secret block SHOTFLOW_SECRETS_BLOCK names (nothing when unset); the names set."""
    block = (settings or get_settings()).secrets_block
    if not block:
        return []
    from prefect.blocks.system import Secret

    try:
        values = Secret.load(block).get()
    except ValueError as exc:
        raise SettingsError(f"the Prefect Secret block '{block}' (SHOTFLOW_SECRETS_BLOCK) could not be loaded ({exc})") from None
    return apply_secret_env(values, block)
