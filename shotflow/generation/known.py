"""What a run's shots will be sent as, known before the run generates anything.

A shot without frames is sent as planned. A shot that continues another (`from:`) has no request,
and so no cache key, until its source's clip exists (`ShotPlan.body_hash` raises before). The
up-to-date check (shotflow/report/uptodate.py) and the daily budget's preflight
(shotflow/preflight.py) ask for every shot's key before a run: `known_requests` gives a dependent
shot resolved (shotflow.generation.continuity) from its source's clip where that clip is in the
clip store and will not be made again by the run, and a still from its file or its stored copy.
Where that cannot be known (the source has no stored clip, or the run makes it again, or the frame
cannot be made now), the shot is None: not up to date, and counted as to be paid.

Resolving from the store sends nothing and pays nothing: it makes (or finds, remembered by the
clip's hash) the frame a run would send.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

from shotflow.errors import ShotflowError
from shotflow.generation import continuity
from shotflow.model import GeneratedClip, Plan, ShotPlan
from shotflow.settings import Settings
from shotflow.store.clips import ClipStore
from shotflow.store.team import clip_store_at


def known_requests(
    plan: Plan, backend: str, cache_dir: str | os.PathLike, settings: Settings | None = None, *, made_again: Collection[str] = ()
) -> dict[str, tuple[ShotPlan, Path | None] | None]:
    """For each generation (every take of every shot, by its `label`): the shot as it would be sent
    and its clip's file in the store (None if there is none; not verified here: `ClipStore.stored`
    does that, and moves a bad one aside), or None when its request cannot be known yet. A shot
    that continues another starts from its source's picked take. `made_again`: shot ids whose
    clips this run makes again whatever the store holds (forced): their dependents are not known.
    `settings`: how long fetching a still not stored yet may stall (continuity.resolve)."""
    store = clip_store_at(cache_dir, settings)  # a shared store's clip is fetched into the cache
    known: dict[str, tuple[ShotPlan, Path | None] | None] = {}
    for picked in plan.order:  # a source before the shots that continue it
        upstream = None
        if picked.source:
            source = known.get(plan.shot(picked.source).label)
            if source is None or source[1] is None or picked.source in made_again:
                for shot in plan.takes_of(picked.id):
                    known[shot.label] = None  # the frame it starts from does not exist yet
                continue
            sent, clip = source
            upstream = GeneratedClip(
                picked.source, clip, ClipStore.key(backend, sent), backend, cache_hit=True, frames=sent.frames
            )
        for shot in plan.takes_of(picked.id):
            try:
                resolved = continuity.resolve(shot, upstream, cache_dir, settings)
                known[shot.label] = (resolved, store.locate(ClipStore.key(backend, resolved)))
            except ShotflowError:  # a still that cannot be had now: the run reports it, before paying
                known[shot.label] = None
    return known
