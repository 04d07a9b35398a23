"""The one preflight: everything that can be known before anything is paid for.

Called by `shotflow run` before Prefect starts and by the flow before the first shot is
generated, so a run that cannot finish stops while it has cost nothing. It checks:

- the output: its extension is one shotflow writes (`assembly.formats.OUTPUT_FORMATS`), it is not a folder,
  not the storyboard, not an input file, not inside the clip store and journal
  (`Settings.cache_dir`), its folder exists or can be created, and a probe file can be written
  there;
  an output that is a URL of the shared store (`s3://bucket/prefix/x.mp4`, shotflow.store.publish)
  is in SHOTFLOW_STORE, names a key and an extension shotflow writes; it is rendered in the cache;
- a shared store (SHOTFLOW_STORE=s3://...): reachable, and it keeps two machines from paying for
  one shot (conditional writes, or a Redis server that answers), else the run stops here;
- every input file (the soundtrack): it exists, is a file, and holds an audio stream;
- vars whose values end up in paths: no path separator, `..`, leading `/` or `~`, or NUL, so a
  value given by someone else (a deployment parameter, a UI run) cannot climb out of the
  output's folder;
- when the fal backend will run: the key is present and of the shape `KEY_ID:KEY_SECRET`, and
  what the run pays for (shotflow.spend): the shots `--force` makes again only with consent, and
  today's budget (`SHOTFLOW_DAILY_BUDGET`).

Paths follow one rule, written in `shotflow.storyboard.paths` (`input_path`, `output_path`): inputs named in
a storyboard resolve against its folder (its validation does it), outputs (`output.path`, `--out`)
against the folder the run starts in (done here; the flow then writes to the path returned).
Every problem is collected and reported at once, each naming the resolved path it concerns.
This module imports no Prefect.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Collection
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from shotflow.errors import KeyShapeError, Problem, StoryboardError
from shotflow.generation.fal.key import clean_key
from shotflow.model import SIDECARS, PathVar, Plan
from shotflow.plan import check_budget
from shotflow.settings import Settings, get_settings
from shotflow.spend import budget_problems, consent_problems
from shotflow.store.publish import is_store_url, render_path, url_key
from shotflow.storyboard.paths import output_path


@dataclass(frozen=True)
class Check(Problem):
    """One preflight problem: `file` is the (resolved) path or setting it concerns."""

    def __str__(self) -> str:
        return super().__str__() if self.file else self.message


class PreflightError(StoryboardError):
    """A run that would fail after paying: every problem the preflight found, one per line."""


def preflight(
    plan: Plan,
    *,
    backend: str | None = None,
    key: str | None = None,
    settings: Settings | None = None,
    cwd: str | Path | None = None,
    max_cost: float | Decimal | None = None,
    force: Collection[str] = (),
    force_descendants: bool | Callable[[str], bool] = False,
) -> Path:
    """Check that `plan` can finish before anything is paid; the resolved output path.

    First, at once: every id in `force` is a shot of the plan (else ShotflowError), and the
    estimate is within `max_cost` (`plan.check_budget`: BudgetError). Then every other problem is
    collected. `backend` is the backend that will run ("fal" checks the key: `key` if given, else
    FAL_KEY from the settings; the daily budget, `force` naming the shots bought again; and that
    the shots made again because they continue a forced one are consented to: `force_descendants`,
    or a callable asked with the line naming them once nothing else stops the run, such as the
    CLI's question on a terminal). Outputs resolve against `cwd` (default: the working directory),
    inputs were resolved against the storyboard's folder by the plan. PreflightError lists every
    problem."""
    for shot_id in force:
        plan.shot(shot_id)  # an unknown id: an error before anything is looked at
    check_budget(plan, max_cost, backend or "")
    settings = settings or get_settings()
    base = Path(cwd) if cwd is not None else Path.cwd()
    problems: list[Check] = store_problems(settings)
    refused = {var.where for var in plan.path_vars if var_problem(var.value)}
    problems += var_problems(plan)
    # a path a refused var went into is not looked at (nor probed: it may point anywhere); the
    # var's problem says it all
    if refused & {"output.path", "--out"}:
        output = Path(os.path.abspath(base / plan.output.path.replace("\0", "")))  # not resolved: it may point anywhere
    else:
        output, found = output_problems(plan, settings, base)
        problems += found
    if "output.audio.path" not in refused:
        problems += input_problems(plan)
    if backend == "fal":
        problems += key_problems(key, settings)
        problems += [Check("SHOTFLOW_DAILY_BUDGET", None, m) for m in budget_problems(plan, settings, force)]
        if not problems or not callable(force_descendants):  # nobody is asked about a run refused anyway
            problems += [Check("", None, m) for m in consent_problems(plan, force, force_descendants, settings)]
    if problems:
        raise PreflightError(problems)
    return output


# --- the shared store -----------------------------------------------------------------------


def store_problems(settings: Settings) -> list[Check]:
    """A shared store (SHOTFLOW_STORE=s3://...) answers, keeps two machines from paying for one shot
    (shotflow.store.coordination: conditional writes, or Redis), and its Redis answers when set."""
    if not settings.shared_store:
        return []
    from shotflow.store.coordination import redis_location
    from shotflow.store.shared import SharedStoreError
    from shotflow.store.team import team

    try:
        shared = team(settings)
    except SharedStoreError as exc:
        return [Check("SHOTFLOW_STORE", None, str(exc))]
    except Exception as exc:  # the store's client failing before any answer (e.g. botocore's connection errors)
        return [Check("SHOTFLOW_STORE", None, f"{settings.store} cannot be reached ({type(exc).__name__}: {exc})")]
    if shared is None or shared.coordination.mode != "redis":
        return []
    import redis

    url = shared.coordination.redis_url or ""
    try:
        redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:  # its text names host and port, never the URL's password
        return [Check("SHOTFLOW_REDIS_URL", None, f"the Redis server at {redis_location(url)} does not answer ({exc})")]
    return []


# --- vars in paths --------------------------------------------------------------------------


def var_problem(value: str) -> str | None:
    """Why a var's value may not go into a path, or None."""
    if "\0" in value:
        return "contains a NUL character"
    if "/" in value or "\\" in value or os.sep in value or (os.altsep and os.altsep in value):
        return "contains a path separator"
    if ".." in value:
        return "contains '..'"
    if value.startswith("~"):
        return "starts with '~'"
    return None


def var_problems(plan: Plan) -> list[Check]:
    problems = []
    for var in plan.path_vars:
        why = var_problem(var.value)
        if why:
            problems.append(_var_check(plan, var, why))
    return problems


def _var_check(plan: Plan, var: PathVar, why: str) -> Check:
    shown = var.value.replace("\0", "\\0")
    return Check(
        plan.source,
        var.line,
        f"var '{var.name}' = {shown!r} is used in {var.where} and {why}: a var in a path may only name a "
        "file or folder inside the output's folder (no '/', '\\', '..', leading '~' or NUL)",
    )


# --- the output -----------------------------------------------------------------------------


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare what we can
        return Path(os.path.abspath(path))


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path == folder or path.is_relative_to(folder)
    except ValueError:
        return False


def _same(a: Path, b: Path) -> bool:
    if _resolve(a) == _resolve(b):
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def output_problems(plan: Plan, settings: Settings, base: Path) -> tuple[Path, list[Check]]:
    """The resolved output path and what stops it from being written."""
    text = plan.output.path
    if "\0" in text:
        shown = text.replace("\0", "\\0")
        return Path(shown), [Check(shown, None, "the output path contains a NUL character")]
    if text.startswith("~"):
        return Path(text), [Check(text, None, "the output path starts with '~', which is not expanded: give the full path")]
    if is_store_url(text):  # rendered in the cache, then published at that key (shotflow.store.publish)
        return store_output_problems(text, settings)
    output = output_path(text, base)
    problems: list[Check] = []

    def problem(message: str, path: Path = output) -> None:
        problems.append(Check(str(path), None, message))

    # the assembly owns the list (and imports PyAV and ffmpeg): read only when there is an output
    from shotflow.assembly.formats import OUTPUT_FORMATS

    suffix = output.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        written = ", ".join(sorted(OUTPUT_FORMATS))
        what = f"a '{output.suffix}' file" if output.suffix else "a file without an extension"
        problem(f"shotflow writes {written} videos, not {what}: give the output one of these extensions")
    if output.is_dir():
        problem("is a folder: give the output a file name, e.g. " + str(output / "video.mp4"))

    storyboard = None if plan.source.startswith("<") else Path(plan.source)
    guarded: list[tuple[Path, str]] = []
    if storyboard is not None:
        guarded.append((storyboard, "the storyboard"))
    if plan.output.soundtrack:
        guarded.append((Path(plan.output.soundtrack), "the soundtrack (an input)"))
    written = [(output, "the output")] + [
        (output.with_name(f"{output.stem}.{s}"), f"its {s.split('.')[0]} sidecar") for s in SIDECARS
    ]
    for path, what in written:
        for other, name in guarded:
            if _same(path, other):
                problem(f"{what} would overwrite {name} {_resolve(other)}", path)

    cache = _resolve(settings.cache_dir)
    if _inside(output, cache):
        problem(f"is inside shotflow's clip store and journal ({cache}, SHOTFLOW_CACHE_DIR): write the video elsewhere")

    problems += folder_problems(output.parent)
    return output, problems


def store_output_problems(url: str, settings: Settings) -> tuple[Path, list[Check]]:
    """An output that is a URL of the shared store: where it is rendered here (the cache) and what
    stops it (no shared store, another store, not a key, an extension shotflow does not write)."""
    from shotflow.assembly.formats import OUTPUT_FORMATS
    from shotflow.store.shared import SharedStoreError
    from shotflow.store.team import store_location

    try:
        key = url_key(url, store_location(settings))
    except SharedStoreError as exc:
        return Path(settings.cache_dir) / "outputs", [Check(url, None, str(exc).removeprefix(f"{url}: "))]
    output = render_path(settings.cache_dir, key)
    problems = []
    if output.suffix.lower() not in OUTPUT_FORMATS:
        what = f"a '{output.suffix}' file" if output.suffix else "a file without an extension"
        problems.append(
            Check(url, None, f"shotflow writes {', '.join(sorted(OUTPUT_FORMATS))} videos, not {what}: give the URL one of these")
        )
    return output, problems + folder_problems(output.parent)


def folder_problems(folder: Path) -> list[Check]:
    """The folder exists and takes a file, or can be created (its nearest existing ancestor takes one)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a dangling link: mkdir would fail on it
            return [Check(str(existing), None, "is a broken symbolic link: the output's folder cannot be created")]
        existing = existing.parent
    if not existing.is_dir():
        return [Check(str(folder), None, f"the output's folder cannot be created: {existing} is a file, not a folder")]
    try:
        if existing == folder:
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".shotflow-probe-") as fh:
                fh.write(b"shotflow preflight")
                fh.flush()
        else:
            os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".shotflow-probe-"))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if existing == folder:
            return [Check(str(folder), None, f"cannot write into the output's folder ({reason})")]
        return [Check(str(folder), None, f"the output's folder cannot be created in {existing} ({reason})")]
    return []


# --- input files ----------------------------------------------------------------------------


def input_problems(plan: Plan) -> list[Check]:
    if not plan.output.soundtrack:
        return []
    return audio_problems(Path(plan.output.soundtrack), "output.audio.path")


def audio_problems(path: Path, field: str) -> list[Check]:
    """A soundtrack that exists, is a file and holds an audio stream (probed with PyAV)."""
    text = str(path)
    if "\0" in text:
        return [Check(text.replace("\0", "\\0"), None, f"{field}: the path contains a NUL character")]
    if not path.exists():
        return [Check(text, None, f"{field}: no such file")]
    if not path.is_file():
        return [Check(text, None, f"{field}: is {'a folder' if path.is_dir() else 'not a regular file'}, not an audio file")]
    import av  # only when there is a soundtrack: PyAV takes a moment to import

    try:
        with av.open(text) as container:
            if not container.streams.audio:
                return [Check(text, None, f"{field}: has no audio stream")]
    except (av.error.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        return [Check(text, None, f"{field}: not a readable audio file ({reason})")]
    return []


# --- the key --------------------------------------------------------------------------------


def key_problems(key: str | None, settings: Settings) -> list[Check]:
    """The fal backend needs a key of the right shape (its message never quotes the key)."""
    if key is None and settings.fal_key is not None:
        key = settings.fal_key.get_secret_value()
    if key is None:
        if settings.fal_key_block:
            return []  # a Prefect Secret block: read and checked where it is loaded (tasks.secrets)
        return [Check("", None, "no fal key: set FAL_KEY (the fal backend needs one), or run with --backend preview")]
    try:
        clean_key(key)
    except KeyShapeError as exc:
        return [Check("", None, str(exc))]
    return []
