"""`shotflow run`'s early start: generation begins at once, Prefect attaches when it is up.

`EarlyStart` wraps the CLI's Prefect start and flow run (`with EarlyStart(...) as early:`). It
makes the run token the flow receives (`run_token`: its force token and limits key). For a run
with the fal backend it opens the live table and starts every shot's generation
(shotflow.generation.early) before Prefect is imported or started, each clip normalised to the
output spec once stored. When the run reports to a PRIVATE Prefect server (no PREFECT_API_URL, no
server named by a profile, prefect.toml, pyproject or .env, no reusable `shotflow server`), nothing
bounds them but the run's own limits. When it reports to a shared server whose address is known
here (PREFECT_API_URL, or the `shotflow server` running), each request on fal holds a slot of that
server's global `fal-requests` limit, taken over its REST API (shotflow.tasks.limits.ServerSlots),
so the limit bounds the early submits as it bounds the flow's; a server named only in a profile or
a file, or one that does not take those calls, gets no early start (the flow takes the slots).
`SHOTFLOW_EARLY_START=0` (the environment or .env: `Settings.early_start`) turns it off (the bench
compares both).

Continuity: a shot that continues another (`from:`) never starts early (its task waits for its
source's clip, in the flow); a shot on a still (`image:`) starts early, its still resolved first
(shotflow.generation.early.startable).

Leaving the block: no early generation begins any more; after a Ctrl-C during the Prefect start
the stop flag is raised, those under way stop (bounded wait) and the paid requests still on fal
are named. A flow that ended without taking over every shot (it failed before generating) leaves
nothing running either: what is under way is stopped, journaled, and a re-run collects it.
"""

from __future__ import annotations

import os
import threading
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Callable, Iterator

from shotflow.tasks.limits import ServerSlots

from shotflow import interrupt
from shotflow.catalog import find_model
from shotflow.generation import events
from shotflow.model import Plan
from shotflow.report.display import ShotDisplay
from shotflow.settings import Settings


def names_a_server() -> str | None:
    """Where Prefect's configuration names an API server, read as Prefect reads it but without
    importing Prefect (env, the active profile, ./prefect.toml, ./pyproject.toml, ./.env), or the
    reusable `shotflow server`; None when the run will start a private server. A file that cannot
    be read as TOML counts as naming one (the safe side: no early start)."""
    if os.environ.get("PREFECT_API_URL"):
        return "PREFECT_API_URL"
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    profiles = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    data = _toml(profiles)
    if data is None:
        return str(profiles)
    active = os.environ.get("PREFECT_PROFILE") or data.get("active")
    if _dig(data, "profiles", active, "PREFECT_API_URL"):
        return f"{profiles} (profile {active})"
    for path, keys in ((Path("prefect.toml"), ("api", "url")), (Path("pyproject.toml"), ("tool", "prefect", "api", "url"))):
        data = _toml(path)
        if data is None or _dig(data, *keys):
            return str(path)
    try:
        dotenv = Path(".env").read_text(errors="replace")
    except OSError:
        dotenv = ""
    if any(line.strip().removeprefix("export ").lstrip().startswith("PREFECT_API_URL") for line in dotenv.splitlines()):
        return ".env"
    from shotflow.deployments import localserver

    return localserver.find()  # `shotflow server start` left one running: its UI shows the run


def _server_slots(named: str, limit_name: str) -> ServerSlots | None:
    """The global limit's slots of the shared server `names_a_server()` named, when its address is
    known here (PREFECT_API_URL, or the running `shotflow server`) and it takes the calls; None
    otherwise (the run then waits for Prefect before sending anything)."""
    url = os.environ.get("PREFECT_API_URL") if named == "PREFECT_API_URL" else named
    if not url or not url.startswith(("http://", "https://")):
        return None  # named in a profile or a file: Prefect reads those
    slots = ServerSlots(url, limit_name)
    if slots.answers():
        return slots
    slots.close()
    return None


def _toml(path: Path) -> dict | None:
    """The file's TOML ({} when there is no file); None when it cannot be read as TOML."""
    import tomllib

    try:
        return tomllib.loads(path.read_text(errors="replace"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return None


def _dig(data, *keys):
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


class EarlyStart:
    def __init__(
        self,
        plan: Plan,
        backend: str,
        settings: Settings,
        *,
        concurrency: int,
        model_limits: dict[str, int] | None,
        force: list[str] | None,
        on_stop: Callable[[ShotDisplay], None],
    ):
        self.plan = plan
        self.backend = backend
        self.settings = settings
        self.concurrency = concurrency
        self.model_limits = model_limits or {}
        self.force = set(force or [])
        self.on_stop = on_stop
        self.token = uuid.uuid4().hex
        self.generation = None
        self.slots: ServerSlots | None = None  # a shared server's global limit (None: a private server)
        self.display: ShotDisplay | None = None
        self._shown = ExitStack()

    def _key(self) -> str | None:
        """The fal key when it can be had without Prefect (FAL_KEY; a Secret block needs Prefect)."""
        if not self.settings.names_a_key or self.settings.fal_key is None:
            return None  # no key, or only a Secret block's name
        from shotflow.generation.fal.key import clean_key

        return clean_key(self.settings.fal_key.get_secret_value())

    def __enter__(self) -> EarlyStart:
        if self.backend != "fal" or not self.settings.early_start or self.plan.review:
            return self  # a reviewed run pays nothing before its plan is approved
        key = self._key()
        if key is None:
            return self
        named = names_a_server()
        if named:  # a shared server: its global limit bounds the early submits too, or none starts early
            self.slots = _server_slots(named, self.settings.concurrency_limit_name)
            if self.slots is None:
                return self
        from shotflow.generation import continuity
        from shotflow.generation.choose import open_backend
        from shotflow.generation.early import EarlyGeneration
        from shotflow.generation.fal.backend import FalBackend  # noqa: F401  (imported here, not by ten threads at once)
        from shotflow.generation.limits import open_limits

        interrupt.reset()
        per_model = {find_model(model).alias: n for model, n in self.model_limits.items()}
        limits = open_limits(self.token, self.concurrency, per_model)  # the flow's tasks take the same slots
        source = str(Path(self.plan.source).resolve())  # as the flow records it, for the ledger
        settings, token, slots = self.settings, self.token, self.slots
        self.display = self._shown.enter_context(ShotDisplay(self.plan, backend=self.backend))
        self._shown.callback(events.subscribe(self.display))
        if slots is None:
            print("shotflow: generating the shots while Prefect starts", flush=True)
        else:
            bound = (
                f"each request on fal holds a slot of the Prefect server's '{slots.name}' limit"
                if slots.bounded
                else f"the Prefect server has no '{slots.name}' limit: only --concurrency bounds them"
            )
            print(f"shotflow: generating the shots while the flow starts ({bound})", flush=True)
        self.generation = EarlyGeneration(
            self.plan.all_takes,
            lambda: open_backend("fal", settings, key=key, storyboard=source, run_token=token, request_slot=slots),
            token=token,
            limits=limits,
            forced=self.force,
            after=self._normaliser(),
            resolve=lambda shot: continuity.resolve(shot, None, settings.cache_dir, settings),  # a shot on a still
        ).start()
        return self

    def _normaliser(self):
        """Each clip brought to the output spec as soon as it is stored (cached next to it, where the
        flow's normalise task finds it) and checked for the join, no more encodes at once than cores."""
        from shotflow.store.team import open_clip_store

        store, output = open_clip_store(self.settings), self.plan.output
        encoders = threading.BoundedSemaphore(os.cpu_count() or 2)

        picked = {s.label for s in self.plan.shots}

        def normalise(shot, clip) -> None:
            if shot.label not in picked:
                return  # a take the video is not cut from
            # here, not before the shots are sent: ffmpeg-python and PyAV load while they generate
            from shotflow.assembly.conformance import normalise_checked

            with encoders:
                normalise_checked(store, clip, shot, output)

        return normalise

    def wait_sent(self, timeout: float = 3.0) -> None:
        """Before the caller imports Prefect: let the early requests go out first (bounded)."""
        if self.generation is not None:
            self.generation.wait_sent(timeout)

    @contextmanager
    def shown(self) -> Iterator[ShotDisplay]:
        """The live table the flow's events go to: the one open since the early start (closed on
        leaving), else a new one."""
        if self.display is None:
            with ShotDisplay(self.plan, backend=self.backend) as display:
                yield display
            return
        try:
            yield self.display
        finally:
            self._shown.close()

    def __exit__(self, exc_type, exc, tb) -> bool:
        generation = self.generation
        if generation is None:
            return False
        try:
            if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
                interrupt.request_stop()  # the signal handler raised it too; say it once more, for sure
                generation.finish(interrupt.STOP_GRACE_SECONDS)
                self._shown.close()
                self.on_stop(self.display)
            elif not generation.finish(0):
                # the flow ended without taking every shot over (Prefect did not start, or the flow
                # failed before generating): stop waiting on fal (the requests stay journaled) rather
                # than leave threads behind, and name what is still paid and running
                stopped = interrupt.stop_requested()
                interrupt.request_stop()
                ended = generation.finish(interrupt.STOP_GRACE_SECONDS)
                if self.slots is not None:
                    self.slots.close()  # no slot is taken any more, so nothing is sent after this
                if not stopped and ended:  # one still under way keeps the flag: it must not send anything
                    interrupt.reset()
                self._shown.close()
                self.on_stop(self.display)
        finally:
            self._shown.close()
            generation.close()
            if self.slots is not None:
                self.slots.close()
            from shotflow.generation.limits import close_limits

            close_limits(self.token)
        return False
