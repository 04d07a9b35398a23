"""`shotflow ledger`'s videos in the shared store: every video runs published there
(shotflow.store.publish), newest first, each with a fresh link a browser opens (a presigned https
URL, valid 7 days) and where its manifest and contact sheet are. Nothing on this machine is read:
a worker's folders may be gone."""

from __future__ import annotations

from shotflow.cli.output import table
from shotflow.settings import Settings


def videos(settings: Settings) -> list[dict] | None:
    """The published videos as dicts (None: no shared store)."""
    from shotflow.store.publish import listed
    from shotflow.store.team import shared_store

    store = shared_store(settings)
    if store is None:
        return None
    return [
        {
            "video": v.url,
            "link": v.link,
            "title": v.title,
            "storyboard": v.storyboard,
            "published": v.published,
            "manifest": v.files.get("manifest"),
            "contact_sheet": v.files.get("contact_sheet"),
            "takes_sheet": v.files.get("takes_sheet"),
        }
        for v in listed(store)
    ]


def print_videos(settings: Settings) -> bool:
    """The "videos in the store" section; False (and nothing printed) without a shared store."""
    found = videos(settings)
    if found is None:
        return False
    print()
    if not found:
        print("videos in the store: none published yet")
        return True
    print(f"videos in the store ({len(found)}; links valid 7 days):")
    print(
        table(
            [[(v["published"] or "")[:19].replace("T", " "), v["title"] or "", v["video"]] for v in found],
            ["published (UTC)", "title", "video"],
        )
    )
    for v in found:
        print()
        print(f"{v['video']}\n  {'link:':<15}{v['link']}")
        for role in ("manifest", "contact_sheet", "takes_sheet"):
            if v[role]:
                print(f"  {role.replace('_', ' ') + ':':<15}{v[role]}")
    return True
