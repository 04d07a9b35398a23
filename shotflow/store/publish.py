"""A run's outputs in the shared store: the final video, its manifest and contact sheet(s), with links.

With `SHOTFLOW_STORE=s3://bucket/prefix` (shotflow.store.team), every run publishes what it made to
the store once the local files are checked, so nothing in a worker's folders is needed afterwards:

- `outputs/<storyboard name>/<video path>` for a video written to a local path (its path under the
  folder the run started in, else its file name; the manifest
  and the sheets beside it, named as locally: `film.manifest.json`, `film.contact.png`,
  `film.takes.png`); an output that is itself a URL of the store (`output.path` or `--out`
  `s3://bucket/prefix/renders/x.mp4`) is rendered into the local cache (`<cache>/outputs/<key>`)
  and published at its key;
- `published/<video key>.json`: what `shotflow ledger` lists (title, storyboard, when, sha256,
  each file's key).

The store follows the local rule (shotflow.assembly.destination.land): a video with the same bytes
is left as it is; a different one is replaced when the output says `existing: replace`, else kept
under its dated name (`film.2026-12-01T10-00-00.mp4`, its sidecars and listing with it) before the
new one takes the name. Publishers of one name on any machine take turns under a lease
(shotflow.store.lease), so of two runs finishing at once neither silently replaces the other's.

Links are presigned https URLs (`SharedStore.url`), valid `EXPIRES` (7 days, S3's longest); the
manifest records the lasting `s3://` URLs, and links are made afresh from them when shown.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from shotflow.errors import ShotflowError
from shotflow.model import OutputSpec, Plan
from shotflow.settings import Settings
from shotflow.store.digest import file_sha256
from shotflow.store.shared import SCHEMES, ObjectInfo, SharedStore, SharedStoreError, StoreLocation, check_key

EXPIRES = 7 * 24 * 3600  # a presigned link's life: S3's longest (SigV4)
INDEX = "published/"  # published/<video key>.json: one listing per published video
OUTPUTS = "outputs/"
ROLES = {"manifest": "manifest.json", "contact_sheet": "contact.png", "takes_sheet": "takes.png"}
LEASE_WAIT = 600.0  # seconds a run waits for another one publishing the same name


class PublishError(ShotflowError):
    """An output could not be published to the shared store; the message names the key."""


def is_store_url(text: str) -> bool:
    """Whether an output path is an object-store URL (s3://, gs://, az://) rather than a file."""
    return bool(re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", text)) and text.split("://", 1)[0].lower() in SCHEMES


def url_key(url: str, location: StoreLocation | None) -> str:
    """The key an output URL names in the store at `location` (SharedStoreError: no shared store,
    another store, or not a key a store takes)."""
    if location is None or not location.shared:
        raise SharedStoreError(f"{url}: an output URL needs SHOTFLOW_STORE set to the store it is in (s3://bucket/prefix)")
    parts = urlsplit(url)
    path = parts.path.lstrip("/")
    prefix = f"{location.prefix}/" if location.prefix else ""
    if (parts.scheme.lower(), parts.netloc) != (location.scheme, location.bucket) or not path.startswith(prefix):
        raise SharedStoreError(f"{url}: not in SHOTFLOW_STORE ({location.url}): an output URL must be in the team's store")
    if parts.query or parts.fragment:
        raise SharedStoreError(f"{url}: an output URL names an object, without a query")
    return check_key(path[len(prefix) :])


def render_path(cache_dir: Path, key: str) -> Path:
    """Where a video bound for the store key `key` is rendered on this machine (in the cache)."""
    return Path(cache_dir) / "outputs" / check_key(key)


def default_key(source: str, title: str, video: Path, run_folder: Path | None = None) -> str:
    """`outputs/<storyboard name>/<the video's path>` for a video written to a local path: its path
    under the folder the run started in (`out/ep1/film.mp4`, so two folders' videos of one name
    never share a key), else its file name."""
    stem = Path(source).stem if not source.startswith("<") else title
    try:
        where = Path(video).resolve().relative_to((run_folder or Path.cwd()).resolve()).parts
    except ValueError:
        where = (Path(video).name,)
    parts = [re.sub(r"[^A-Za-z0-9._-]+", "-", part).strip("-.") for part in (stem, *where)]
    parts = [part or "_" for part in parts]
    return check_key(OUTPUTS + "/".join(parts))


def sidecar_key(video_key: str, suffix: str) -> str:
    """outputs/film/film.mp4 -> outputs/film/film.<suffix>"""
    path = PurePosixPath(video_key)
    return str(path.with_name(f"{path.stem}.{suffix}"))


@dataclass(frozen=True)
class Outputs:
    """Where a run's outputs go in the store: the video's key and each sidecar's; `existing`: the
    output's rule for an earlier, different video there; `in_cache`: rendered in the cache only
    (an output URL), so the store's copy is the only one that counts."""

    store: SharedStore
    video_key: str
    existing: str = "keep"
    in_cache: bool = False

    def key(self, role: str) -> str:
        return self.video_key if role == "video" else sidecar_key(self.video_key, ROLES[role])

    def store_urls(self, roles=("video", *ROLES)) -> dict[str, str]:
        """The lasting `s3://` URL of each output (what the manifest records)."""
        return {role: self.store.location.url_of(self.key(role)) for role in roles}


def roles(takes: bool) -> tuple[str, ...]:
    """The outputs a run makes: the video, its manifest and contact sheet, and with takes the takes sheet."""
    return ("video", "manifest", "contact_sheet", *(("takes_sheet",) if takes else ()))


def planned(plan: Plan, video: Path, store: SharedStore | None) -> Outputs | None:
    """Where this run's outputs go in the store, decided before it renders (None: no shared store).
    `plan.output.path`: the output as given (a path or a store URL); `video`: where it is rendered here."""
    if store is None:
        return None
    requested = plan.output.path
    if is_store_url(requested):
        return Outputs(store, url_key(requested, store.location), plan.output.existing, in_cache=True)
    return Outputs(store, default_key(plan.source, plan.title, video), plan.output.existing)


def rendered_here(output: OutputSpec, video: Path, outputs: Outputs | None) -> OutputSpec:
    """The output spec the run renders with on this machine: at `video`; a video bound for an
    output URL replaces its earlier copy in the cache (the store keeps earlier ones: `publish`)."""
    return replace(output, path=str(video), existing="replace" if outputs and outputs.in_cache else output.existing)


def publish_run(outputs: Outputs, settings: Settings, plan: Plan, storyboard: str, files: tuple) -> Published:
    """`publish` a run's (video, contact sheet, takes sheet or None, manifest) with this process's
    team (its lease) and cache; `storyboard`: the run's, as the ledger names it."""
    from shotflow.store.team import team

    video, sheet, takes, manifest = files
    return publish(
        outputs,
        {"video": video, "contact_sheet": sheet, "takes_sheet": takes, "manifest": manifest},
        existing=outputs.existing,
        team=team(settings),
        cache_dir=settings.cache_dir,
        about={"title": plan.title, "storyboard": storyboard},
    )


@dataclass(frozen=True)
class Published:
    """What a run put in the store: each file's key and a link a browser opens."""

    video_key: str
    earlier: str  # "none", "identical", "replaced" or "kept" (as destination.land says)
    kept: str | None  # the key the earlier, different video was kept under
    keys: dict[str, str] = field(default_factory=dict)  # role -> key
    store_urls: dict[str, str] = field(default_factory=dict)  # role -> s3://...
    links: dict[str, str] = field(default_factory=dict)  # role -> presigned https URL
    in_cache: bool = False  # an output URL: the local files are the cache's, the store's are the outputs

    def earlier_line(self) -> str | None:
        """What became of an earlier, different video at the store's key, or None."""
        where = self.store_urls.get("video", self.video_key)
        if self.earlier == "kept":
            kept = where[: -len(self.video_key)] + str(self.kept) if where.endswith(self.video_key) else str(self.kept)
            return f"the earlier video at {where} was kept as {kept} (output.existing: keep)"
        if self.earlier == "replaced":
            return f"the earlier video at {where} was replaced (output.existing: replace)"
        return None

    def with_earlier(self, local: str | None) -> str | None:
        """What became of earlier videos: here (`local`, unless rendered in the cache only) and in the store."""
        return "; ".join(filter(None, (None if self.in_cache else local, self.earlier_line()))) or None

    def as_result(self) -> dict:
        return {"store": self.store_urls, "links": self.links, "rendered_in_cache": self.in_cache}


def publish(
    outputs: Outputs,
    files: dict[str, Path | str | None],
    *,
    existing: str,
    team=None,
    cache_dir: Path,
    about: dict | None = None,
    expires: int = EXPIRES,
) -> Published:
    """Put a run's checked local files in the store (`files`: role -> path; "video" first, then the
    sheets, the manifest last), never silently over another run's video (the module's docstring).
    `team` (shotflow.store.team.Team) gives the lease publishers of one name take turns under;
    `about` goes into the listing (title, storyboard)."""
    store, video_key = outputs.store, outputs.video_key
    present = {role: Path(p) for role, p in files.items() if p}
    if "video" not in present:
        raise PublishError(f"{store.location.url_of(video_key)}: no video to publish")
    digest = file_sha256(present["video"])
    from shotflow.store.lease import LeaseBusy, LeaseLost  # only a publishing run needs leases

    turn = _turn(team, store, video_key)
    try:
        with turn as lease:
            return _publish(outputs, present, digest, existing, lease, cache_dir, about, expires)
    except LeaseBusy as exc:
        raise PublishError(
            f"{store.location.url_of(video_key)}: another run ({exc.holder}) was still publishing there after "
            f"{LEASE_WAIT:.0f} s; the video is kept at {present['video']}"
        ) from None
    except LeaseLost:
        raise PublishError(
            f"{store.location.url_of(video_key)}: this run's turn to publish there was lost "
            f"({turn.lease.reason if turn.lease else 'unknown'}); the video is kept at {present['video']}"
        ) from None


def _publish(
    outputs: Outputs, present: dict[str, Path], digest: str, existing: str, lease, cache_dir: Path, about, expires: int
) -> Published:
    """publish(), holding the name's turn (`lease`, or None with no team)."""
    store, video_key = outputs.store, outputs.video_key
    current = store.stat(video_key)
    earlier, kept = "none", None
    if current is not None and (current.sha256, current.size) == (digest, present["video"].stat().st_size):
        earlier = "identical"  # an unchanged re-run: left as it is
    elif current is not None and existing == "replace":
        earlier = "replaced"
    elif current is not None:
        kept, earlier = keep_earlier(store, video_key, current, cache_dir), "kept"
    if lease is not None:
        lease.ensure()  # no longer ours: stop before writing over what another run may be writing
    keys = {}
    for role in ("video", "contact_sheet", "takes_sheet", "manifest"):  # the manifest last: the set is complete
        if role in present:
            keys[role] = outputs.key(role)
            _put(store, present[role], keys[role], sha256=digest if role == "video" else None)
    listing = {
        **(about or {}),
        "video": video_key,
        "sha256": digest,
        "bytes": present["video"].stat().st_size,
        "published": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": keys,
    }
    store.put_bytes(f"{INDEX}{video_key}.json", json.dumps(listing, indent=2).encode())
    return Published(
        video_key,
        earlier,
        kept,
        keys,
        {role: store.location.url_of(k) for role, k in keys.items()},
        {role: store.url(k, expires=expires) for role, k in keys.items()},
        outputs.in_cache,
    )


def _put(store: SharedStore, local: Path, key: str, sha256: str | None = None) -> ObjectInfo:
    try:
        return store.put_file(local, key, sha256=sha256)
    except SharedStoreError as exc:
        raise PublishError(f"publishing {local} to {store.location.url_of(key)}: {exc}") from None


class _turn:
    """The lease of one output name (every machine's publishers of it take turns); none without a team."""

    def __init__(self, team, store: SharedStore, key: str):
        self.lease = None
        if team is not None:
            from shotflow.store.lease import lease_for

            name = "publish-" + hashlib.sha256(key.encode()).hexdigest()[:32]
            self.lease = lease_for(name, store=store, coordination=team.coordination, ttl=team.lease_ttl, wait=LEASE_WAIT)

    def __enter__(self):
        if self.lease is not None:
            self.lease.__enter__()
        return self.lease

    def __exit__(self, *exc):
        if self.lease is not None:
            self.lease.__exit__(*exc)
        return False


def keep_earlier(store: SharedStore, video_key: str, current: ObjectInfo, cache_dir: Path) -> str:
    """Copy the earlier video at `video_key`, its sidecars and its listing to its dated name
    (NAME.<when it was published, UTC>), as destination.keep_earlier does with a local file; the
    new key of the video. PublishError when it cannot be kept (then nothing is replaced)."""
    stamp = _published_at(store, video_key)
    path = PurePosixPath(video_key)
    for n in range(1, 1000):
        name = stamp if n == 1 else f"{stamp}-{n}"
        new_video = str(path.with_name(f"{path.stem}.{name}{path.suffix}"))
        if not store.exists(new_video):
            break
    else:
        raise PublishError(f"{store.location.url_of(video_key)}: no free name to keep the earlier video under")
    moves = [(sidecar_key(video_key, s), sidecar_key(new_video, s)) for s in ROLES.values()]
    try:
        for old, new in moves:  # the sidecars first: the video's copy is what makes the name taken
            if store.exists(old):
                store.put_file(store.get_file(old, cache_dir), new)
        store.put_file(store.get_file(video_key, cache_dir), new_video)
    except SharedStoreError as exc:
        raise PublishError(
            f"{store.location.url_of(video_key)}: the earlier, different video there could not be kept as "
            f"{store.location.url_of(new_video)} ({exc}); it was not replaced"
        ) from None
    listing = store.get_bytes(f"{INDEX}{video_key}.json")
    if listing is not None:
        try:
            data = json.loads(listing.data)
            data["video"] = new_video
            data["files"] = {
                role: (new_video if role == "video" else sidecar_key(new_video, ROLES[role]))
                for role in data.get("files") or {}
                if role == "video" or role in ROLES
            }
            store.put_bytes(f"{INDEX}{new_video}.json", json.dumps(data, indent=2).encode())
        except (ValueError, TypeError, AttributeError):
            pass  # an unreadable listing: the kept video is in the store all the same
    return new_video


def _published_at(store: SharedStore, video_key: str) -> str:
    """When the earlier video was published (its listing, else its manifest's `created`), as a file name's stamp."""
    for key, field_name in ((f"{INDEX}{video_key}.json", "published"), (sidecar_key(video_key, ROLES["manifest"]), "created")):
        found = store.get_bytes(key)
        try:
            when = datetime.fromisoformat(json.loads(found.data)[field_name]) if found else None
        except (ValueError, TypeError, KeyError):
            when = None
        if when is not None:
            return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H-%M-%S")
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H-%M-%S")


# --- what was published -------------------------------------------------------------------------


@dataclass(frozen=True)
class Listed:
    """A published video as `shotflow ledger` shows it."""

    key: str
    url: str  # its s3:// URL
    link: str  # a fresh presigned https URL
    title: str | None
    storyboard: str | None
    published: str | None
    files: dict[str, str]  # role -> s3:// URL


def listed(store: SharedStore, expires: int = EXPIRES) -> list[Listed]:
    """Every video published to the store that is still there, newest first, with fresh links."""
    found = []
    for index_key in store.list(INDEX):
        record = store.get_bytes(index_key)
        try:
            data = json.loads(record.data) if record else None
            key = check_key(str(data["video"]))
        except (ValueError, TypeError, KeyError, SharedStoreError):
            continue  # not a listing shotflow wrote
        if not store.exists(key):
            continue
        files = {role: store.location.url_of(k) for role, k in (data.get("files") or {}).items() if isinstance(k, str)}
        found.append(
            Listed(
                key,
                store.location.url_of(key),
                store.url(key, expires=expires),
                data.get("title"),
                data.get("storyboard"),
                data.get("published"),
                files,
            )
        )
    return sorted(found, key=lambda v: v.published or "", reverse=True)


def links(store: SharedStore, store_urls: dict[str, str], expires: int = EXPIRES) -> dict[str, str]:
    """Fresh presigned links for the `s3://` URLs a manifest records (those of another store are left out)."""
    made = {}
    for role, url in store_urls.items():
        try:
            made[role] = store.url(url_key(url, store.location), expires=expires)
        except SharedStoreError:
            continue
    return made
