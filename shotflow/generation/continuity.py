"""Continuity: a shot that starts where another ended (`from:`), or on a still (`image:`, `end_image:`).

`resolve(shot, upstream, cache_dir)` makes the frames a dependent shot is sent with (the last
frame of its source's RAW clip in the clip store, or its stills; `shotflow.media.frames`) and
returns the shot with `frames` filled and each frame's body field holding the frame's reference
(`FrameInput.reference`, `shotflow-frame:sha256:<hash>`). From then on the shot has a cache key,
and that key includes each frame's hash: a change upstream changes exactly its descendants' keys.

`request_body(shot)` is the ONLY place a data URI is made: the body with each reference replaced
by the frame's data URI, built by the backend right at the submit. Cache keys, the journal and
the manifest see the references (and `frames`: hashes and stored paths), never the megabytes.

Failures cost nothing (nothing was sent): a source without a clip, a still that cannot be read
or fetched, a stored frame changed on disk. A fetch that may succeed later (no connection, a 5xx)
is `RetryLater` (the Prefect task tries the shot again; shotflow.generation.retry); the rest are
permanent `GenerationError`s naming the shot.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from shotflow.errors import GenerationError, ShotflowError
from shotflow.generation.retry import RetryLater
from shotflow.media import frames as media
from shotflow.model import FRAME_REF, FrameInput, GeneratedClip, ShotPlan
from shotflow.settings import Settings, get_settings
from shotflow.store.digest import file_sha256


def resolve(
    shot: ShotPlan,
    upstream: GeneratedClip | None,
    cache_dir: str | os.PathLike,
    settings: Settings | None = None,
    *,
    max_uri_bytes: int | None = None,
) -> ShotPlan:
    """`shot` with its frames made and referenced in its body; a shot without frames (or already
    resolved) is returned as it is.

    upstream: the clip of `shot.source` (its last frame is this shot's first), None for a shot
    without `from:`. max_uri_bytes: each frame's data-URI limit (default: `frame_limit(shot)`).
    settings: how long a still's fetch may stall (`download_timeout`; `get_settings()`'s when None).
    """
    if not shot.needs_frames or shot.resolved:
        return shot
    limit = max_uri_bytes or frame_limit(shot)
    timeout = (settings or get_settings()).download_timeout
    made: list[FrameInput] = []
    if shot.source or shot.image:
        made.append(_first_frame(shot, upstream, cache_dir, limit, timeout))
    if shot.end_image:
        if not shot.end_field:
            raise GenerationError(shot.label, f"its endpoint {shot.endpoint} takes no last frame (end_image)", transient=False)
        stored = _made(shot, lambda: media.still(shot.end_image, cache_dir, max_uri_bytes=limit, timeout=timeout))
        made.append(FrameInput(shot.end_field, stored.sha256, str(stored.path), _origin(shot.end_image)))
    body = dict(shot.body)
    for frame in made:
        body[frame.field] = frame.reference
    return replace(shot, body=body, frames=tuple(made))


def _first_frame(shot: ShotPlan, upstream: GeneratedClip | None, cache_dir, limit: int, timeout: float) -> FrameInput:
    if not shot.image_field:
        raise GenerationError(
            shot.label,
            f"its endpoint {shot.endpoint} has no first-frame field (planned without an image endpoint)",
            transient=False,
        )
    if shot.source:
        if upstream is None:
            raise GenerationError(
                shot.label,
                f"it starts on the last frame of shot '{shot.source}', which has no clip (it failed or was not "
                "generated); nothing was sent for this shot",
                transient=False,
            )
        if upstream.shot != shot.source:
            raise ShotflowError(f"shot '{shot.label}': continues '{shot.source}', but was given the clip of '{upstream.shot}'")
        stored = _made(shot, lambda: media.last_frame(upstream.path, cache_dir, max_uri_bytes=limit))
        return FrameInput(shot.image_field, stored.sha256, str(stored.path), f"last frame of {shot.source}")
    stored = _made(shot, lambda: media.still(shot.image, cache_dir, max_uri_bytes=limit, timeout=timeout))
    return FrameInput(shot.image_field, stored.sha256, str(stored.path), _origin(shot.image))


def _origin(still: str) -> str:
    """How a still is named in the journal and the manifest: its path, or its URL without the query
    (a signed URL's credentials stay out of files; the frame's hash tells two stills apart)."""
    return media.show_url(still) if media.is_url(still) else still


def _made(shot: ShotPlan, make) -> media.StoredFrame:
    try:
        return make()
    except media.FrameError as exc:
        if exc.transient:
            raise RetryLater(shot.label, f"{exc}; nothing was sent for this shot") from None
        raise GenerationError(shot.label, f"{exc}; nothing was sent for this shot", transient=False) from None
    except ShotflowError as exc:  # a full disk, a clip that is not a video
        raise GenerationError(shot.label, f"{exc}; nothing was sent for this shot", transient=False) from None


def frame_limit(shot: ShotPlan) -> int:
    """The data-URI limit of each of the shot's frames: the request's share of
    `DEFAULT_MAX_URI_BYTES` (one per frame), or the image endpoint's `max_image_bytes` if smaller."""
    count = int(bool(shot.source or shot.image)) + int(bool(shot.end_image))
    limit = media.DEFAULT_MAX_URI_BYTES // max(1, count)
    try:
        from shotflow.catalog import find_model

        endpoint = find_model(shot.model).image
    except ShotflowError:
        endpoint = None
    if endpoint is not None and endpoint.max_image_bytes:
        limit = min(limit, endpoint.max_image_bytes)
    return limit


def request_body(shot: ShotPlan) -> dict[str, Any]:
    """The body fal receives: each frame reference replaced by its frame's data URI (the stored
    file checked against its hash first, so the bytes sent are the ones the key names)."""
    if not shot.resolved:
        raise GenerationError(
            shot.label, "its first frame does not exist yet (resolve the shot first); nothing was sent", transient=False
        )
    body = dict(shot.body)
    for frame in shot.frames:
        if body.get(frame.field) != frame.reference:
            raise ShotflowError(f"shot '{shot.label}': body field {frame.field} does not hold its frame's reference")
        try:
            intact = file_sha256(frame.path) == frame.sha256
        except OSError:
            intact = False
        if not intact:
            raise GenerationError(
                shot.label,
                f"its frame {frame.path} ({frame.origin}) is missing or changed since it was made; run again to "
                "make it again. Nothing was sent",
                transient=False,
            )
        body[frame.field] = media.data_uri(frame.path)
    stray = [name for name, value in body.items() if isinstance(value, str) and value.startswith(FRAME_REF)]
    if stray:
        raise ShotflowError(f"shot '{shot.label}': body fields {', '.join(stray)} hold frame references without frames")
    return body
