"""What a run shows in the Prefect UI: a shot table, a progress bar, a summary (with a shared store,
links to the outputs there), and which shots failed; and the `Sender` that sends a finishing run's
artifacts off its path to the video."""

from __future__ import annotations

import contextvars
import re
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from shotflow.model import Plan
from shotflow.money import PREVIEW, usd
from shotflow.report.manifest import ShotRecord, cost_line, read_manifest
from shotflow.store.publish import EXPIRES, Published


def artifact_key(title: str, suffix: str) -> str:
    """Artifact keys may only hold lowercase letters, digits and dashes."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40] or "storyboard"
    return f"{slug}-{suffix}"


def start_progress(plan: Plan) -> UUID:
    return create_progress_artifact(
        0.0, key=artifact_key(plan.title, "progress"), description=f"Shots of '{plan.title}' generated and prepared"
    )


def advance_progress(artifact_id: UUID, done: int, total: int) -> None:
    update_progress_artifact(artifact_id, 100.0 * done / max(total, 1), description=f"{done} of {total} shots ready")


class Sender:
    """Sends artifacts from one thread, in order, while the flow goes on: each call is an API
    request (40-80 ms beside a busy server) that the last clip's join need not wait for. Calls
    run in the caller's context (Prefect's run context: the artifacts belong to its run);
    progress updates not sent yet are replaced by the latest. `close` waits for them all, so a
    run's artifacts are there when its final state is; a failure to send one is the run's
    warning, not its failure (the video does not depend on it)."""

    def __init__(self, warn: Callable[[str], object]):
        self.warn = warn
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shotflow-artifacts")
        self._sent = []
        self._lock = threading.Lock()
        self._progress: tuple | None = None  # the latest progress update, not sent yet

    def send(self, fn: Callable, *args, **kwargs) -> None:
        self._sent.append(self._pool.submit(contextvars.copy_context().run, self._call, fn, *args, **kwargs))

    def progress(self, artifact_id: UUID, done: int, total: int) -> None:
        with self._lock:
            queued, self._progress = self._progress is not None, (artifact_id, done, total)
        if not queued:
            self.send(self._latest_progress)

    def _latest_progress(self) -> None:
        with self._lock:
            latest, self._progress = self._progress, None
        if latest is not None:
            advance_progress(*latest)

    def _call(self, fn: Callable, *args, **kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except Exception as exc:
            self.warn(f"a Prefect artifact was not sent ({fn.__name__}: {type(exc).__name__}: {exc})")

    def close(self, timeout: float = 30) -> None:
        """Wait up to `timeout` s for every artifact sent; those still unsent then are given up, and said."""
        try:
            _, unsent = wait(self._sent, timeout=timeout)
            if unsent:
                self.warn(f"{len(unsent)} Prefect artifact(s) were not sent within {timeout:g} s; given up")
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)


def shot_table(plan: Plan, records: list[ShotRecord], *, backend: str) -> None:
    # a preview paid nothing: its column says what fal would charge (the manifest's wording)
    cost = "would cost on fal" if backend == PREVIEW else "cost on fal"
    rows = [
        {
            "shot": r.id,
            "model": r.model,
            "seconds": r.seconds,
            cost: usd(r.cost),
            "fal request id": r.request_id or "",
            "cache hit": {True: "yes", False: "no", None: ""}[r.cache_hit],
            "status": r.status if not r.error else f"{r.status}: {r.error}",
        }
        for r in records
    ]
    create_table_artifact(rows, key=artifact_key(plan.title, "shots"), description=f"Shots of '{plan.title}'")


def failures(plan: Plan, records: list[ShotRecord]) -> None:
    """A failed run's first artifact: which shots failed or are uncertain (fal may have billed them), and why."""
    failed = [r for r in records if r.status != "done"]
    if not failed:
        return
    uncertain = {r.id for r in failed if "uncertain:" in (r.error or "")}
    lines = [
        f"# {len(failed)} of {len(records)} shots of '{plan.title}' did not finish",
        "",
        *(f"- **{r.id}** ({r.model}): {'UNCERTAIN' if r.id in uncertain else 'failed'}: {r.error or r.status}" for r in failed),
        "",
        "Finished clips are kept in the clip store: a re-run only redoes these shots."
        + (
            " Uncertain shots are never sent again without `--force`: check fal's dashboard (`shotflow ledger`) first."
            if uncertain
            else ""
        ),
    ]
    create_markdown_artifact(
        "\n".join(lines),
        key=artifact_key(plan.title, "failures"),
        description=f"Shots that failed: {', '.join(r.id for r in failed)}",
    )


def summary(
    plan: Plan,
    records: list[ShotRecord],
    *,
    backend: str,
    video: str | Path,
    manifest: str | Path,
    contact_sheet: str | Path,
    duration: float,
    published: Published | None = None,
) -> None:
    """Where the outputs are. With a shared store, each is a link a browser opens (a presigned
    https URL, valid 7 days) to the copy in the store, its s3:// URL beside it: the worker's
    local paths are of no use to whoever reads the run elsewhere."""
    generated = sum(1 for r in records if r.cache_hit is False)
    shape = f"({duration:.2f} s, {plan.output.width}x{plan.output.height} @ {plan.output.fps} fps)"
    if published is not None:
        days = EXPIRES // 86400
        where = [
            f"- **{label}**: [open]({published.links[role]}) (link valid {days} days) `{published.store_urls[role]}`"
            + (f" {shape}" if role == "video" else "")
            for role, label in (
                ("video", "video"),
                ("contact_sheet", "contact sheet"),
                ("takes_sheet", "takes"),
                ("manifest", "manifest"),
            )
            if role in published.links
        ]
        if line := published.earlier_line():
            where.append(f"- **earlier video**: {line}")
    else:
        where = [
            f"- **video**: `{video}` {shape}",
            f"- **contact sheet**: `{contact_sheet}`",
            f"- **manifest**: `{manifest}`",
        ]
    lines = [
        f"# {plan.title}",
        "",
        *where,
        f"- **backend**: {backend}; {generated} shot(s) generated, {len(records) - generated} from the clip store",
        f"- **cost**: {cost_line(read_manifest(manifest))}",
        f"- **storyboard**: `{plan.source}`",
    ]
    create_markdown_artifact("\n".join(lines), key=artifact_key(plan.title, "summary"), description="Where the outputs are")
