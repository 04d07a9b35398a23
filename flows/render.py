"""The `render-storyboard` flow: validate, plan, generate shots concurrently, assemble, report.

Called from the CLI (`shotflow run`), from Python, and as a deployment. Every shot is generated
by a task (retried when the failure is transient) and normalised by another as soon as its clip
lands, so the final join is a stream copy about a second after the last clip arrives.

The storyboard is a graph: a shot that continues another (`from:`) is submitted after its source
(`Plan.order`) with the source's future as its `upstream`, so Prefect starts it once that clip
is stored, and its task graph shows the chains and forks; independent shots run side by side. A
shot whose source failed fails naming it, without sending anything; the rest of the run goes on,
and the run fails at the end, as for any failed shot.
"""

from __future__ import annotations

import dataclasses
import os
import time
from concurrent.futures import FIRST_COMPLETED
from concurrent.futures import wait as wait_for_any
from pathlib import Path
from typing import Annotated, Any, Literal

from prefect import allow_failure, flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Cancelled
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field
from shotflow.flows import review as reviewing
from shotflow.tasks import artifacts
from shotflow.tasks.assemble import (
    clip_audio,
    contact_sheet,
    encode_soundtrack,
    join_clips,
    normalise_clip,
    prepare_join,
    takes_sheet,
)
from shotflow.tasks.export import export_timelines
from shotflow.tasks.generate import generate_shot
from shotflow.tasks.limits import close_limits, open_limits
from shotflow.tasks.secrets import fal_key, load_secret_env

from shotflow import interrupt
from shotflow.assembly import contactsheet
from shotflow.assembly.destination import temporary_name
from shotflow.catalog import find_model
from shotflow.errors import ShotflowError
from shotflow.generation import events
from shotflow.generation.choose import choose_backend
from shotflow.money import run_cost
from shotflow.plan import load_plan, plan_from_data
from shotflow.preflight import preflight
from shotflow.report.manifest import ShotRecord, cost_summary, sidecar, write_manifest
from shotflow.report.timeline import ExportFormat, check_formats
from shotflow.review import ReviewCancelled
from shotflow.settings import get_settings
from shotflow.spend import made_again_line
from shotflow.store import publish
from shotflow.store.atomic import move_atomic
from shotflow.store.team import shared_store

BackendName = Literal["auto", "fal", "preview"]


@flow(
    name="render-storyboard",
    task_runner=ThreadPoolTaskRunner(max_workers=64),
    description="Render a storyboard YAML file to a finished video.",
)
def render_storyboard(
    storyboard: str = "pipelines/demo.yaml",
    backend: BackendName = "auto",
    out: str | None = None,
    concurrency: Annotated[int | None, Field(ge=1, le=64)] = None,
    max_cost: Annotated[float | None, Field(ge=0)] = None,
    force: list[str] | None = None,
    force_descendants: bool = False,
    model_concurrency: dict[str, int] | None = None,
    vars: dict[str, str] | None = None,
    inline: dict[str, Any] | None = None,
    run_token: str | None = None,
    export: list[ExportFormat] | None = None,
    review: bool | None = None,
) -> dict[str, Any]:
    """Render a storyboard to a video.

    Args:
        storyboard: Path of the storyboard YAML file (relative to the working directory).
        backend: fal (paid generations), preview (offline animatic), or auto: fal when a key is set.
        out: Where to write the final video; default the storyboard's output.path.
        concurrency: Generation requests in flight at once (default: the SHOTFLOW_CONCURRENCY setting, 4).
        max_cost: Refuse to start when the estimated cost in USD is higher (fal only).
        force: Shot ids to generate again even though their clips are stored.
        force_descendants: Consent to pay again for the shots that continue a forced shot (from:): they
            start from its new clip. Without it, a run with such shots is refused before anything is paid.
        model_concurrency: Per-model caps on requests in flight, e.g. {"veo3": 1}.
        vars: Values for the storyboard's {{ name }} placeholders, overriding its vars.
        inline: A whole storyboard as structured data, used instead of the file.
        run_token: The run's token (default: the flow run's id): its force token and limits key; the CLI
            passes the one its early start (before Prefect was up) generated with.
        export: Timelines to write next to the video for an editor: otio, fcpxml, edl (see `shotflow export`).
        review: Wait for approval before paying and for a pick of each shot's take, in this UI (default:
            the storyboard's review:).
    """
    logger = get_run_logger()
    if applied := load_secret_env():  # a worker's secrets (SHOTFLOW_SECRETS_BLOCK), before anything reads the settings
        logger.info(f"from the Secret block SHOTFLOW_SECRETS_BLOCK names: {', '.join(applied)}")
    settings = get_settings()

    def planned(picks=None):  # the storyboard's plan; again with the takes bought at a review gate
        if inline is not None:
            return plan_from_data(inline, out=out, vars=vars, picks=picks)
        return load_plan(storyboard, out=out, vars=vars, picks=picks)

    plan = planned()
    if review is not None:
        plan = dataclasses.replace(plan, review=review)
    forced = set(force or [])
    key = fal_key(settings) if backend in ("auto", "fal") else None
    name = choose_backend(backend, key is not None)
    check_formats(export or (), plan.output.fps)  # a timeline that cannot be written is said before anything is paid
    # before anything is generated (and paid): the forced ids, max_cost, and the consent to generate a
    # forced shot's descendants again
    video_path = preflight(
        plan, backend=name, key=key, settings=settings, max_cost=max_cost, force=forced, force_descendants=force_descendants
    )
    outputs = publish.planned(plan, video_path, shared_store(settings))  # with a shared store: where outputs go in it
    # the output, resolved once by the preflight against the folder the run started in (an output URL: the cache)
    plan = dataclasses.replace(plan, output=publish.rendered_here(plan.output, video_path, outputs))
    logger.info(
        f"'{plan.title}': {len(plan.shots)} shots with the {name} backend, {plan.final_seconds:g} s, {run_cost(plan, name)}"
    )
    for warning in plan.warnings:
        logger.warning(warning)
    for shot_id in sorted(forced):
        logger.info(f"shot '{shot_id}': forced: generated again even though its clip is stored")
    if again := made_again_line(plan, forced, settings):
        logger.info(again)
    budget = max_cost
    if plan.review:  # nothing is paid before the plan is approved (flows/review.py)
        try:
            plan, budget = reviewing.gate_before_paying(plan, max_cost=max_cost, backend=name)
        except ReviewCancelled as exc:
            return Cancelled(message=str(exc))

    per_model = {find_model(model).alias: n for model, n in (model_concurrency or {}).items()}
    total = concurrency or settings.concurrency
    run_key = run_token or str(flow_run.id or id(plan))
    # previews are drawn by ffmpeg on this machine: more at once than cores only slows each down
    open_limits(run_key, total if name == "fal" else min(total, os.cpu_count() or 2), per_model)
    progress = artifacts.start_progress(plan)
    sheet_frames = contactsheet.Frames()  # the contact sheet's frames, grabbed as clips land
    # artifacts go out from one thread while the flow goes on (tasks/artifacts.py); all sent before it ends
    sender = artifacts.Sender(logger.warning)
    try:
        try:
            source = f"inline:{plan.title}" if inline is not None else str(Path(plan.source).resolve())  # for the ledger
            takes = {}  # every take of every shot, by (shot id, take)
            if plan.review:  # a level of from: at a time: its takes, then their picks, before what continues them
                try:
                    plan, takes = reviewing.generate_and_pick(
                        plan,
                        lambda s, up: generate_shot.submit(
                            s, name, run_key, force=s.id in forced, storyboard=source, upstream=allow_failure(up) if up else None
                        ),
                        planned,
                        budget=budget,
                        backend=name,
                    )
                except ReviewCancelled as exc:
                    sheet_frames.close()
                    return Cancelled(message=str(exc))
            for picked in plan.order if not plan.review else ():  # a source before the shots that continue it
                # a continuing shot starts from its source's picked take; a failure reaches the task, which names it
                source_take = plan.shot(picked.source) if picked.source else None
                upstream = allow_failure(takes[source_take.id, source_take.take]) if source_take else None
                for s in plan.takes_of(picked.id):
                    takes[s.id, s.take] = generate_shot.submit(
                        s, name, run_key, force=s.id in forced, storyboard=source, upstream=upstream
                    )
            generated = {s.id: takes[s.id, s.take] for s in plan.shots}  # the take each shot is cut from
            # for the run's timings (wall clock, as the clip store's mtimes): when the flow had each
            # clip, downloaded and verified, and when its normalisation was done
            landed_at: dict[str, float] = {}
            ready_at: dict[str, float] = {}
            for shot_id, future in generated.items():
                future.wrapped_future.add_done_callback(lambda _, s=shot_id: landed_at.setdefault(s, time.time()))
            prepared = {s.id: normalise_clip.submit(generated[s.id], s, plan.output) for s in plan.shots}
            soundtrack = None
            if not plan.overlapping:
                # cuts: each clip's sound as it lands, and the soundtrack encoded as soon as the last
                # one is there, while that clip's video is still normalised: the join copies it
                sounds = [clip_audio.submit(generated[s.id], s, plan.output) for s in plan.shots]
                soundtrack = encode_soundtrack.submit(sounds, [s.seconds for s in plan.shots], plan.output)
            for shot_id, future in prepared.items():
                future.wrapped_future.add_done_callback(lambda _, s=shot_id: ready_at.setdefault(s, time.time()))
            done, landed = 0, {}
            shot_of = {id(f): shot_id for shot_id, f in prepared.items()}
            durations = [s.seconds for s in plan.shots]
            for future in _as_landed(list(prepared.values())):
                try:
                    path = future.result()
                except Exception:  # looked at, with every other failure, once all shots are done
                    continue
                done += 1
                _grab_frame(sheet_frames, generated[shot_of[id(future)]])  # decoded now, not after the join
                sender.progress(progress, done, len(plan.shots))
                events.publish(events.AssemblyEvent("clips normalised", done, len(plan.shots) + 2))
                if plan.overlapping and done < len(plan.shots):
                    # overlaps between clips that have landed are rendered while the others generate
                    landed[shot_of[id(future)]] = path
                    try:
                        prepare_join([landed.get(s.id) for s in plan.shots], durations, plan.output)
                    except Exception as exc:  # only an optimisation: the join renders whatever is missing
                        logger.warning(f"preparing the join ahead of time failed ({_describe(exc)}); the join will do it")
        finally:
            close_limits(run_key)
        if interrupt.stop_requested():
            sheet_frames.close()
            # Ctrl-C/SIGTERM: shots not yet sent never will be; those fal accepted stay journaled
            return Cancelled(
                message=f"stopped after {done} of {len(plan.shots)} shots were ready: no shot was sent to fal after the stop; "
                "requests fal had accepted stay journaled, and a re-run collects them without paying again"
            )

        records: list[ShotRecord] = []
        clips, normalised, failures = [], [], []
        stored_at: dict[str, float] = {}  # clips downloaded by this run: when the store took them, verified
        for s in plan.shots:
            cost = None if s.cost is None else str(s.cost)
            try:
                clip = generated[s.id].result()
                normalised.append(prepared[s.id].result())
            except Exception as exc:  # every shot is looked at: one failure must not hide another
                error = _describe(exc)
                failures.append(f"shot '{s.id}': {error}")
                records.append(ShotRecord(s.id, s.model, s.seconds, cost, "failed", error=error))
                continue
            clips.append(clip)
            if clip.cache_hit is False:
                stored_at[s.id] = _mtime(clip.path)
                # normalised by whoever got there first (an early start may have): its file's time
                ready_at[s.id] = min(ready_at.get(s.id, float("inf")), _mtime(normalised[-1]))
            records.append(ShotRecord(s.id, s.model, s.seconds, cost, "done", clip.cache_hit, clip.request_id, str(clip.path)))
        # the takes the video is not cut from: paid for too, kept, and listed in the manifest. One that
        # failed does not hold the video back: it is said, and the next run (not up to date) redoes it
        others, failed_takes = [], []
        for s in plan.all_takes:
            if s.take != plan.pick_of(s.id):
                try:
                    others.append(takes[s.id, s.take].result())
                except Exception as exc:
                    failed_takes.append(f"shot '{s.label}': {_describe(exc)}")
                    logger.warning(f"shot '{s.label}' (not the picked take) failed: {_describe(exc)}; a re-run redoes it")
        if failures:
            sheet_frames.close()
            artifacts.shot_table(plan, records, backend=name)
            artifacts.failures(plan, records)  # a Failed run names its failed and uncertain shots at a glance
            kept = len(clips)
            rerun = "a re-run" + (" without --force" if forced else "")
            raise ShotflowError(
                f"{len(failures)} of {len(plan.shots)} shots failed; the {kept} finished clip(s) are kept in the clip store "
                f"and {rerun} only redoes the failed ones:\n  " + "\n  ".join(failures)
            )

        # the sheet (from the frames grabbed as clips landed) and, with takes, their view (a row per
        # shot, a frame per take, the picked one marked) are drawn by the task runner while the join
        # runs, and land once the video has; the shot table is sent meanwhile
        sheets: list[_Drawn] = []
        try:
            sheets.append(
                _Drawn(
                    sidecar(plan.output.path, "contact.png"),
                    lambda tmp: contact_sheet.submit(plan, clips, tmp, backend=name, frames=sheet_frames),
                )
            )
            if plan.has_takes:
                sheets.append(
                    _Drawn(
                        sidecar(plan.output.path, "takes.png"),
                        lambda tmp: takes_sheet.submit(plan, clips + others, tmp, name, sheet_frames),
                    )
                )
            sender.send(artifacts.shot_table, plan, records, backend=name)
            events.publish(events.AssemblyEvent("joining", len(plan.shots), len(plan.shots) + 2))
            joined = join_clips(normalised, [s.seconds for s in plan.shots], plan.output, audio=_ahead(soundtrack, logger))
            video, duration = joined.path, joined.seconds
            timings = _tail_timings(landed_at, ready_at, time.time(), stored_at)
            earlier = {
                "kept": f"the earlier video at {video} was kept as {joined.kept} (output.existing: keep)",
                "replaced": f"the earlier video at {video} was replaced (output.existing: replace)",
            }.get(joined.earlier)
            if earlier and not (outputs and outputs.in_cache):  # a cache copy bound for the store: publish says
                logger.info(earlier)
            events.publish(events.AssemblyEvent("contact sheet and manifest", len(plan.shots) + 1, len(plan.shots) + 2))
            sheet = sheets[0].land()  # the video is there: its pictures take their names beside it
            takes_png = str(sheets[1].land()) if plan.has_takes else None
            manifest = write_manifest(
                plan,
                clips + others,
                backend=name,
                video=Path(video),
                duration=duration,
                normalised=dict(zip((s.id for s in plan.shots), normalised)),  # what the timelines point at
                extra={
                    "join": {
                        "video_copied": joined.video_copied,
                        "overlaps_rendered_after_last_clip": joined.transitions_rendered,
                        "audio_encoded_ahead": joined.audio_copied,
                    },
                    "timings": timings,
                    **({"failed_takes": failed_takes} if failed_takes else {}),
                },
                store=outputs.store_urls(publish.roles(plan.has_takes)) if outputs else None,
            )
        finally:
            for drawn in sheets:
                drawn.discard()
            sheet_frames.close()
        published = publish.publish_run(outputs, settings, plan, source, (video, sheet, takes_png, manifest)) if outputs else None
        if published:  # the checked files are in the shared store: nothing on this machine is needed afterwards
            earlier = published.with_earlier(earlier)
            logger.info(f"published to {published.store_urls['video']}" + (f"; {earlier}" if earlier else ""))
        exports = export_timelines(manifest, list(export)) if export else []  # for an editor, next to the video
        events.publish(events.AssemblyEvent("done", len(plan.shots) + 2, len(plan.shots) + 2))
        sender.send(
            artifacts.summary,
            plan,
            records,
            backend=name,
            video=video,
            manifest=manifest,
            contact_sheet=sheet,
            duration=duration,
            published=published,
        )
        logger.info(f"video: {video} ({duration:.2f} s); contact sheet: {sheet}; manifest: {manifest}")
        return {
            "video": str(video),
            "duration": duration,
            "contact_sheet": str(sheet),
            "takes_sheet": takes_png,  # NAME.takes.png when the storyboard has takes, else None
            "manifest": str(manifest),
            "backend": name,
            **cost_summary(manifest),  # a preview's "would cost on fal", never as if spent; "cost": the sentence
            "shots": [r.__dict__ for r in records],
            **timings,  # last_clip_to_final_s, and that clip's normalisation (last_clip_normalise_s)
            "earlier_video": earlier,  # None, or what became of an earlier, different video at the output path
            "exports": exports,  # each timeline written (format, path, description, warnings) or its error
            "failed_takes": failed_takes,  # takes the video is not cut from that failed (a re-run redoes them)
            **(published.as_result() if published else {}),  # store: s3:// URLs; links: presigned https URLs
        }
    finally:
        sender.close()


class _Drawn:
    """A picture beside the video (contact sheet, takes view) drawn while the join runs: `submit(tmp)`
    starts the task that writes it under a temporary name, moved to `dst` once the video has landed
    (the join may first rename an earlier video's pictures with it, output.existing: keep)."""

    def __init__(self, dst: Path, submit):
        self.dst = dst
        self.tmp = temporary_name(dst)
        self.future = submit(self.tmp)

    def land(self) -> Path:
        self.future.result()
        move_atomic(self.tmp, self.dst)
        return self.dst

    def discard(self) -> None:
        """Wait for the task and remove what it wrote, unless it landed."""
        self.future.wait()
        self.tmp.unlink(missing_ok=True)


def _tail_timings(
    landed_at: dict[str, float], ready_at: dict[str, float], final_at: float, stored_at: dict[str, float] | None = None
) -> dict[str, Any]:
    """From the last clip downloaded and verified to the final file, and how much of it was that
    clip's normalisation (from then to its normalised file: the rest came after it).

    A clip downloaded before the flow had it (`stored_at`: when the clip store took it, e.g. by
    an early start while Prefect started) counts from then: the figure is the user's wait."""
    stored_at = stored_at or {}
    if not landed_at:
        return {"last_clip_to_final_s": 0.0}
    verified = {s: min(t, stored_at.get(s, t)) for s, t in landed_at.items()}
    # the last clip downloaded by this run; a clip from the store was not (its landing is the flow's start)
    downloaded = [s for s in verified if s in stored_at] or list(verified)
    last = max(downloaded, key=verified.__getitem__)
    normalised = max(ready_at.get(last, verified[last]), verified[last])
    return {
        "last_clip": last,
        "last_clip_normalise_s": round(normalised - verified[last], 2),
        "last_clip_to_final_s": round(final_at - verified[last], 2),
    }


def _mtime(path) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return float("inf")  # not known: the flow's own time counts


def _ahead(soundtrack, logger) -> Path | None:
    """The soundtrack encoded ahead of the join, or None (no cuts only, or it failed: the join encodes it)."""
    if soundtrack is None:
        return None
    try:
        return soundtrack.result()
    except Exception as exc:  # only an optimisation
        logger.warning(f"encoding the soundtrack ahead of the join failed ({_describe(exc)}); the join encodes it")
        return None


def _grab_frame(frames: contactsheet.Frames, generated) -> None:
    try:
        frames.grab(generated.result().path)
    except Exception:  # only an optimisation: the contact sheet decodes whatever was not grabbed
        pass


def _as_landed(futures):
    """Like prefect's as_completed, but gives up waiting as soon as a stop is requested."""
    pending = {f.wrapped_future: f for f in futures}
    while pending and not interrupt.stop_requested():
        landed, _ = wait_for_any(list(pending), timeout=0.25, return_when=FIRST_COMPLETED)
        for wrapped in landed:
            yield pending.pop(wrapped)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ShotflowError):
        return str(exc).removeprefix(f"shot '{getattr(exc, 'shot', '')}': ")
    # an unexpected failure: say what it was; the traceback is in the run logs
    return f"{type(exc).__name__}: {exc}"
