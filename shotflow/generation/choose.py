"""Choosing a backend by name. Both implement `shotflow.generation.backend.Backend`."""

from __future__ import annotations

from shotflow.errors import MissingKeyError, ShotflowError
from shotflow.generation.backend import Backend
from shotflow.model import RequestSlot
from shotflow.settings import Settings
from shotflow.store.team import open_clip_store

NO_KEY = (
    "no fal key: set FAL_KEY (or SHOTFLOW_FAL_KEY_BLOCK to the name of a Prefect Secret block "
    "holding it), or use --backend preview for an offline animatic that costs nothing"
)


def choose_backend(requested: str | None, has_key: bool) -> str:
    """`auto` (or nothing) means fal when a key is available, else the offline preview."""
    if requested in (None, "", "auto"):
        return "fal" if has_key else "preview"
    if requested not in ("fal", "preview"):
        raise ShotflowError(f"unknown backend '{requested}': use fal or preview")
    if requested == "fal" and not has_key:
        raise MissingKeyError(NO_KEY)
    return requested


def open_backend(
    name: str,
    settings: Settings,
    *,
    key: str | None = None,
    storyboard: str | None = None,
    run_token: str | None = None,
    request_slot: RequestSlot | None = None,
) -> Backend:
    """The backend `name`; `storyboard` (the run's file, or inline name) is recorded with each
    paid request, for the ledger; `run_token` too, and `request_slot` is held while a request is
    on fal (see FalBackend; the preview sends none)."""
    store = open_clip_store(settings)  # the shared store's (SHOTFLOW_STORE) when there is one
    if name == "preview":
        from shotflow.generation.preview import PreviewBackend

        return PreviewBackend(store)
    if name == "fal":
        if not key:
            raise MissingKeyError(NO_KEY)
        from shotflow.generation.fal.backend import FalBackend

        return FalBackend(
            store, key=key, settings=settings, storyboard=storyboard, run_token=run_token, request_slot=request_slot
        )
    raise ShotflowError(f"unknown backend '{name}': use fal or preview")
