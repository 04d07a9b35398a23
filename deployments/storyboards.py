"""One deployment per storyboard in pipelines/ that declares a `schedule:`.

The storyboard is the single source of truth: its schedule, timezone, title and vars become the
deployment's schedule, description and parameters. Two ways to run them:

- `shotflow serve`: one long-running process serves every scheduled storyboard (`serve()`).
- `shotflow deploy --pool NAME`: registers them on a Prefect server for `prefect worker start`
  on a `process` work pool, creating the pool and the global concurrency limit on in-flight fal
  requests if missing (the path to many machines).

Both carry the team's settings to the workers as the deployments' job variables (`team_env`):
the shared store, the Redis address, the lease TTL, the S3 endpoint and region, and the name of
the Secret block with what is secret (tasks/secrets.py). Secrets themselves are never written
into a deployment: a Redis URL with a password belongs in that block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shotflow.errors import ShotflowError, StoryboardError
from shotflow.settings import get_settings
from shotflow.storyboard.schema import Storyboard
from shotflow.storyboard.templating import PLACEHOLDER
from shotflow.storyboard.validate import validate_file

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = "flows/render.py:render_storyboard"


def team_env(settings=None, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a deployment gives its workers' flow runs: the shared store's settings,
    as set where `shotflow deploy` runs ({} on one machine: a local store needs nothing)."""
    import os
    from urllib.parse import urlsplit

    settings = settings or get_settings()
    environ = os.environ if environ is None else environ
    if not settings.shared_store:
        return {}
    env = {"SHOTFLOW_STORE": settings.store.strip(), "SHOTFLOW_LEASE_TTL": f"{settings.lease_ttl:g}"}
    if settings.secrets_block:
        env["SHOTFLOW_SECRETS_BLOCK"] = settings.secrets_block
    if settings.daily_budget is not None:  # one budget for the team: every worker holds runs to it
        env["SHOTFLOW_DAILY_BUDGET"] = str(settings.daily_budget)
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION"):
        if environ.get(name, "").strip():
            env[name] = environ[name].strip()
    if settings.redis_url:
        parts = urlsplit(settings.redis_url)
        if parts.password or parts.username:
            if not settings.secrets_block:
                raise ShotflowError(
                    f"SHOTFLOW_REDIS_URL holds a password ({parts.hostname}:{parts.port or 6379}): a deployment would "
                    "show it to everyone who can read it. Put SHOTFLOW_REDIS_URL in a Prefect Secret block (a JSON "
                    "object of environment variables) and name it in SHOTFLOW_SECRETS_BLOCK"
                )
            # left to the Secret block, which the flow applies for variables not already set
        else:
            env["SHOTFLOW_REDIS_URL"] = settings.redis_url
    return env


@dataclass(frozen=True)
class ScheduledStoryboard:
    path: str  # as the flow will be given it: relative to the project root when inside it
    board: Storyboard

    @property
    def name(self) -> str:
        return re.sub(r"[^a-z0-9-]+", "-", Path(self.path).stem.lower()).strip("-")

    @property
    def tags(self) -> list[str]:
        return ["shotflow", "storyboard", f"schedule-{self.board.schedule.kind}"]

    @property
    def description(self) -> str:
        # placeholders shown as <name>: prefect.yaml would read {{ name }} as its own templating
        title = PLACEHOLDER.sub(lambda m: f"<{m.group(1)}>", self.board.title or self.name)
        text = f"Renders {self.path} ({title}) on schedule {self.board.schedule.describe()}."
        if self.board.description:
            text += "\n\n" + self.board.description
        return text

    @property
    def parameters(self) -> dict[str, Any]:
        return {"storyboard": self.path, "vars": {k: str(v) for k, v in self.board.vars.items()}}

    def schedule(self):
        from prefect.schedules import Cron, Interval, RRule

        s = self.board.schedule
        prefect_kind = {"cron": Cron, "interval": Interval, "rrule": RRule}[s.kind]
        return prefect_kind(s.value, timezone=s.timezone, active=s.active)


def scheduled_storyboards(folder: str | Path = ROOT / "pipelines") -> list[ScheduledStoryboard]:
    """Every storyboard of `folder` with a schedule; all of them must be valid."""
    found, problems = [], []
    for file in sorted(Path(folder).glob("*.y*ml")):
        rel = file.resolve()
        shown = str(rel.relative_to(ROOT)) if rel.is_relative_to(ROOT) else str(rel)
        try:
            board = validate_file(file).written  # every check a run makes, so a broken storyboard is never deployed
        except StoryboardError as exc:
            problems.extend(exc.problems)
            continue
        if board.schedule is not None:
            found.append(ScheduledStoryboard(shown, board))
    if problems:
        raise StoryboardError(problems)
    return found


def runner_deployments(folder: str | Path = ROOT / "pipelines") -> list:
    """Deployments for `serve()`: they run in the serving process, whatever its working directory,
    so they name their storyboards by absolute path."""
    from shotflow.flows.render import render_storyboard

    deployments = []
    for s in scheduled_storyboards(folder):
        parameters = {**s.parameters, "storyboard": str((ROOT / s.path).resolve())}
        deployments.append(
            render_storyboard.to_deployment(
                name=s.name, schedules=[s.schedule()], parameters=parameters, tags=s.tags, description=s.description
            )
        )
    return deployments


def ensure_work_pool(pool: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        except ObjectAlreadyExists:
            pass


def ensure_concurrency_limit(name: str, limit: int) -> bool:
    """Create the global concurrency limit on in-flight fal requests if missing; True if created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
            return False
        except ObjectNotFound:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))
            return True


def concurrency_limit_step(name: str, limit: int) -> dict[str, Any]:
    """A `prefect deploy` build step (see prefect.yaml): the fal-requests limit, created if missing."""
    created = ensure_concurrency_limit(name, int(limit))
    return {"concurrency_limit": name, "created": created}


def prefect_yaml(pool: str = "shotflow", folder: str | Path = ROOT / "pipelines", limit: int = 4) -> str:
    """prefect.yaml for `prefect deploy --all`, written from the scheduled storyboards.

    Without a pull section, `prefect deploy` points workers at the directory it is run from."""
    import yaml

    settings = get_settings()
    env = team_env(settings)
    deployments = []
    for s in scheduled_storyboards(folder):
        deployments.append(
            {
                "name": s.name,
                "entrypoint": ENTRYPOINT,
                "description": s.description,
                "tags": s.tags,
                "parameters": s.parameters,
                "schedules": [s.board.schedule.settings()],
                "work_pool": {"name": pool, **({"job_variables": {"env": env}} if env else {})},
            }
        )
    config = {
        "name": "shotflow",
        "build": [
            {
                "shotflow.deployments.storyboards.concurrency_limit_step": {
                    "name": settings.concurrency_limit_name,
                    "limit": limit,
                }
            }
        ],
        "push": None,
        "deployments": deployments,
    }
    header = (
        "# Written by `shotflow deploy --prefect-yaml prefect.yaml` from the storyboards in pipelines/\n"
        "# that declare a schedule: edit those, not this. Use: prefect deploy --all (from this folder).\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False, width=100)


def deploy(
    pool: str,
    *,
    folder: str | Path = ROOT / "pipelines",
    source: str | Path = ROOT,
    limit: int = 4,
    limit_name: str | None = None,
) -> list[str]:
    """Register every scheduled storyboard on the server at PREFECT_API_URL, for a worker of `pool`.

    `source` is where workers find the code: this checkout for workers on this machine, or a
    git URL for workers elsewhere.
    """
    from prefect import flow
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise ShotflowError("deploy needs a Prefect server: start one (prefect server start) and set PREFECT_API_URL")
    storyboards = scheduled_storyboards(folder)
    env = team_env()
    ensure_work_pool(pool)
    ensure_concurrency_limit(limit_name or get_settings().concurrency_limit_name, limit)
    remote = flow.from_source(source=str(source), entrypoint=ENTRYPOINT)
    names = []
    for s in storyboards:
        remote.deploy(
            name=s.name,
            work_pool_name=pool,
            schedules=[s.schedule()],
            parameters=s.parameters,
            tags=s.tags,
            description=s.description,
            job_variables={"env": env} if env else None,
            print_next_steps=False,
            build=False,
            push=False,
        )
        names.append(f"render-storyboard/{s.name}")
    return names
