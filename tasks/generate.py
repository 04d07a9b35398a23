"""Shot generation as a Prefect task: the backend does the work; this adds logs, and the retries
of the failures no loop inside the backend retries (`RetryLater`: still running after the wait
timeout, a clip's lock held elsewhere, fal's job failed unbilled). shotflow.generation.retry
says which layer retries what, so that no failure is retried twice over.

A shot that continues another (`from:`) gets its source's clip as `upstream`: the flow passes the
source task's future (wrapped in `allow_failure`), so Prefect runs this task once the source has
finished and its graph shows the edge. A source that failed arrives as its exception: the shot
fails naming its source, before anything is sent. Shots with frames (`from:`, `image:`) are
resolved here (shotflow.generation.continuity), right before the backend takes them."""

from __future__ import annotations

from contextlib import closing

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from shotflow.tasks.limits import account_slot, limits_for
from shotflow.tasks.secrets import fal_key

from shotflow import interrupt
from shotflow.errors import GenerationError
from shotflow.generation import continuity, early, events, retry
from shotflow.generation.choose import open_backend
from shotflow.model import GeneratedClip, ShotEvent, ShotPlan
from shotflow.settings import get_settings


def retry_transient(task, task_run, state) -> bool:
    """Retry what this task owns (`shotflow.generation.retry.task_retries`): a request still
    running after the wait timeout, a clip's lock held by another run, fal's job failed unbilled,
    a local ffmpeg failure. Not what the backend's own loops gave up on (a 429 answered to every
    submit, a 5xx to every poll, a download that kept failing): they would multiply its tries.

    A retried generation first consults the job journal, so it re-attaches to the request it
    already paid for instead of submitting again. (A plain function: Prefect silently ignores a
    partial or a callable object here.)
    """
    if interrupt.stop_requested():  # Ctrl-C/SIGTERM: nothing is tried again
        return False
    try:
        state.result()
    except Exception as exc:
        return retry.task_retries(exc)
    return False


def describe(event: ShotEvent) -> str:
    text = f"shot '{event.shot}': {event.kind}"
    if event.request_id:
        text += f" (fal request {event.request_id})"
    if event.queue_position is not None:
        text += f", queue position {event.queue_position}"
    if event.detail:
        text += f": {event.detail}"
    return text


@task(
    name="generate-shot",
    task_run_name="generate-{shot.label}",
    retries=retry.TASK.attempts - 1,
    retry_delay_seconds=retry.TASK.delays(),
    retry_jitter_factor=retry.TASK.jitter,
    retry_condition_fn=retry_transient,
    # the clip store is the cache: keyed by endpoint and exact body, shared by every storyboard,
    # and it holds the file itself (Prefect's cache would only hold a path)
    cache_policy=NO_CACHE,
)
def generate_shot(
    shot: ShotPlan,
    backend: str,
    run_key: str,
    force: bool = False,
    storyboard: str | None = None,
    upstream: GeneratedClip | BaseException | None = None,
) -> GeneratedClip:
    """The shot's clip. With `force`, a stored clip is not reused, but a request of this shot that
    fal still has (queued, running or finished but not yet downloaded) is re-attached, so a retry
    of a forced shot never pays twice. `upstream`: the clip of the shot this one continues
    (`shot.source`), or how that shot failed."""
    logger = get_run_logger()

    def on_event(event: ShotEvent) -> None:
        if event.kind != "log" or event.detail:
            logger.info(describe(event))
        events.publish(event)

    if interrupt.stop_requested():  # stopped before this shot's turn: send nothing
        raise interrupt.Interrupted(shot.label)
    # the CLI may have started this shot before Prefect was up: let that attempt end first
    early.wait_turn(run_key, shot.label)
    # ... it was the shot's first attempt: a transient failure its loops already tried again is not
    # tried twice over (shotflow.generation.retry); one this task owns is, as a retry would be
    first = early.failure(run_key, shot.label)
    if isinstance(first, GenerationError) and first.transient and not retry.task_retries(first):
        raise first.with_traceback(None) from None
    settings = get_settings()
    if shot.needs_frames:  # its frames are made now (its source's clip is there): the shot gets its key
        upstream_clip = upstream if isinstance(upstream, GeneratedClip) else None  # None: the source failed, said so
        shot = continuity.resolve(shot, upstream_clip, settings.cache_dir, settings)
    key = fal_key(settings) if backend == "fal" else None
    # the run key is recorded on intents: a clip this run already paid for is reported as generated;
    # a request on fal holds a slot of the server's global limit (a store hit takes none)
    with closing(
        open_backend(backend, settings, key=key, storyboard=storyboard, run_token=run_key, request_slot=account_slot(settings))
    ) as source:
        with limits_for(run_key).slot(shot.model, shot.label):
            if interrupt.stop_requested():  # stopped while waiting for a turn: send nothing
                raise interrupt.Interrupted(shot.label)
            # the run's key is the force token: a retry of this forced task never pays twice
            clip = source.generate(shot, force=run_key if force else None, on_event=on_event)
    events.publish(ShotEvent(shot.label, "done", "from the clip store" if clip.cache_hit else "", clip.request_id))
    return clip
