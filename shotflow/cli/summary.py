"""What a finished run (or an up-to-date answer) tells the user: the summary lines at the end,
and the JSON object `run --json` prints. With a shared store, where each output is there (its
s3:// URL) and a link a browser opens (a presigned https URL, made afresh for an up-to-date answer)."""

from __future__ import annotations

from shotflow.cli.export import print_exports

LABELS = {"video": "video", "contact_sheet": "contact sheet", "takes_sheet": "takes", "manifest": "manifest"}


def store_links(result: dict) -> tuple[dict, dict]:
    """The outputs' s3:// URLs and presigned links: the run's, else made now from the manifest's `store`."""
    store_urls = result.get("store") or (result.get("manifest_data") or {}).get("store") or {}
    links = result.get("links") or {}
    if store_urls and not links:
        from shotflow.settings import get_settings
        from shotflow.store.publish import links as fresh_links
        from shotflow.store.team import shared_store

        store = shared_store(get_settings())
        links = fresh_links(store, store_urls) if store is not None else {}
    return store_urls, links


def as_outputs(result: dict) -> dict:
    """A run whose output is a store URL: the outputs are the store's copies (the local files are
    the worker's cache); `local_video`: where it was rendered."""
    store = result.get("store") or {}
    if not (result.get("rendered_in_cache") and store):
        return result
    return {**result, "local_video": result.get("video"), **{role: store[role] for role in LABELS if role in store}}


def run_report(result: dict, *, up_to_date: bool) -> dict:
    """The JSON object `run --json` prints: outputs, duration, per-shot state, request id, cost."""
    result = as_outputs(result)
    manifest = result.get("manifest_data") or {}
    shots = []
    for s in manifest.get("shots") or result.get("shots") or []:
        shots.append(
            {
                "id": s.get("id"),
                "state": "done" if "clip_sha256" in s else s.get("status"),
                "request_id": s.get("request_id"),
                "from_clip_store": s.get("cache_hit"),
                "cost_usd": s.get("cost_usd", s.get("cost")),
                "cost_usd_on_fal": s.get("cost_usd_on_fal"),
            }
        )
    return {
        "up_to_date": up_to_date,
        "video": result.get("video"),
        "manifest": result.get("manifest"),
        "contact_sheet": result.get("contact_sheet"),
        "takes_sheet": result.get("takes_sheet"),
        "duration": result.get("duration"),
        "backend": result.get("backend"),
        "cost": result.get("cost"),
        "last_clip_to_final_s": result.get("last_clip_to_final_s"),
        "last_clip_normalise_s": result.get("last_clip_normalise_s"),
        "exports": result.get("exports") or [],
        "shots": shots,
        "failed_takes": result.get("failed_takes") or [],  # takes the video is not cut from: a re-run redoes them
        # with a shared store: role -> s3:// URL, and role -> a presigned https link (valid 7 days)
        **dict(zip(("store", "links"), store_links(result))),
        **({"local_video": result["local_video"]} if result.get("local_video") else {}),  # an output URL's copy in the cache
    }


def print_summary(result: dict, *, up_to_date: bool) -> None:
    """The one summary at the end of a run (or of an up-to-date answer)."""
    result = as_outputs(result)
    manifest = result.get("manifest_data") or {}
    shots = manifest.get("shots") or []
    reused = sum(1 for s in shots if s.get("cache_hit"))
    print()
    print(
        f"video:         {result['video']} ({result['duration']:.2f} s)"
        + ("  (up to date: nothing rendered)" if up_to_date else "")
    )
    print(f"contact sheet: {result['contact_sheet']}")
    if result.get("takes_sheet"):  # a storyboard with takes: a row per shot, a frame per take
        print(f"takes:         {result['takes_sheet']}")
    print(f"manifest:      {result['manifest']}")
    store_urls, links = store_links(result)
    roles = [role for role in LABELS if role in store_urls]  # a shared store: where each output is there
    for n, role in enumerate(roles if not result.get("rendered_in_cache") else ()):  # else shown above
        print(f"{'in the store:' if n == 0 else '':<15}{store_urls[role]}")
    if links:  # and a link a browser opens, for each
        print("links (valid 7 days):")
        for role in (r for r in roles if r in links):
            print(f"  {LABELS[role] + ':':<15}{links[role]}")
    if result.get("cost"):
        print(f"cost:          {result['cost']}")
    if result.get("earlier_video"):
        print(f"earlier video: {result['earlier_video']}")
    for failed in result.get("failed_takes") or []:  # not cut into the video, but paid for or perhaps paid for
        print(f"take failed:   {failed} (the video uses another take; `shotflow run` again redoes it)")
    print_exports(result.get("exports") or [])
    if not up_to_date:
        print(f"reused:        {reused} of {len(shots)} clips from the clip store")
        if result.get("last_clip_to_final_s") is not None:
            # "that clip's normalisation plus at most 1 s": both parts, so the claim can be checked
            part = result.get("last_clip_normalise_s")
            which = (
                f" ('{result['last_clip']}'" + (f": {part:.1f} s its normalisation)" if part is not None else ")")
                if result.get("last_clip")
                else ""
            )
            print(f"last clip -> final file: {result['last_clip_to_final_s']:.1f} s{which}")
