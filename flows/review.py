"""The review gates in Prefect: the flow waits for a person's answer, given in the Prefect UI's form
(or through the API), before paying and after each level of takes.

What is asked and what an answer does is `shotflow.review`'s (gate 1) and `shotflow.picking`'s
(gate 2); here each question becomes a `RunInput` form (built at run time: the takes per shot are
known only then), a markdown artifact (the cost table; a frame of every take, as data URIs, which
the UI renders), and a wait:
`pause_flow_run` in a run started by a process (it blocks that process), `suspend_flow_run` in a
deployment's run (the worker is freed; the answered run is executed again from its start, finds
its clips in the store and each answered gate's input under the question's key). A gate nobody
answers within the plan's `review_timeout` ends the run without paying for anything more: a
paused run ends Cancelled, a suspended one is failed by the server ("never resumed").

`set_answerer(fn)` lets the process that runs the flow answer instead (the CLI's terminal review):
`fn(question)` returns the values of `question.fields` by name. `abandon_pause(message)` is for
that process's Ctrl-C: a paused run's wait does not see the stop flag, so the CLI ends the run
Cancelled on the server itself (else the UI would offer to resume a run whose process is gone).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Callable, Literal, Mapping

import pydantic
from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.input import RunInput
from prefect.runtime import deployment, flow_run
from prefect.states import Cancelled, Cancelling
from shotflow.tasks.artifacts import artifact_key

from shotflow.errors import ShotflowError
from shotflow.model import Plan, ShotPlan
from shotflow.picking import PickQuestion, apply_picks, frame_uri, levels, pick_question
from shotflow.picks import Picks, load_picks, save_picks
from shotflow.review import (
    AnswerRefused,
    ApprovalQuestion,
    Field,
    ReviewCancelled,
    approval_question,
    approve,
    same_run,
)

POLL_SECONDS = 2  # how soon a paused run sees its answer
MAX_ROUNDS = 5  # answers refused in a row before a gate gives up

Question = ApprovalQuestion | PickQuestion
Answerer = Callable[[Question], Mapping[str, Any]]
_answerer: Answerer | None = None
_paused: Any = None  # the id of this process's flow run while it waits at a gate in pause_flow_run


def set_answerer(answerer: Answerer | None) -> Answerer | None:
    """Answer the gates in this process (`answerer(question)` -> values by field name) instead of
    waiting for the UI; None restores the UI. Returns the one it replaces."""
    global _answerer
    previous, _answerer = _answerer, answerer
    return previous


def run_input(name: str, fields: tuple[Field, ...], description: str) -> type[RunInput]:
    """The form of a question: a typed field per `Field` (the UI renders enums as selects)."""
    spec: dict[str, Any] = {}
    for f in fields:
        default: Any = f.default
        if f.kind == "bool":
            kind: Any = bool
        elif f.kind == "choice":
            kind = Literal[f.choices]  # type: ignore[valid-type]
        elif f.kind == "choices":
            kind, default = list[Literal[f.choices]], list(f.default or ())  # type: ignore[valid-type]
        elif f.kind == "money":
            kind = Annotated[float | None, pydantic.Field(ge=0)]
        else:
            kind, default = str, f.default or ""  # a plain text box in the UI ("" is no text)
        spec[f.name] = (kind, pydantic.Field(default, title=f.title, description=f.description))
    model = pydantic.create_model(name, __base__=RunInput, **spec)
    model._description = description  # shown above the form (markdown), as RunInput.with_initial_data does
    return model


def ask(question: Question, description: str) -> Mapping[str, Any]:
    """The answer to `question`: from the answerer if one is set, else from the UI or API; either
    way checked by the same form (a value of the wrong type is refused: asked again)."""
    form = run_input("ApprovePlan" if isinstance(question, ApprovalQuestion) else "PickTakes", question.fields, description)
    if _answerer is not None:
        try:
            return form.model_validate(_answerer(question)).model_dump()
        except pydantic.ValidationError as exc:
            raise AnswerRefused("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
    try:
        if deployment.id:  # a worker runs it: free it while waiting
            answer = suspend_flow_run(wait_for_input=form, key=question.key, timeout=question.timeout)
        else:
            global _paused
            _paused = flow_run.id
            try:
                answer = pause_flow_run(
                    wait_for_input=form, key=question.key, timeout=question.timeout, poll_interval=POLL_SECONDS
                )
            finally:
                _paused = None
    except FlowPauseTimeout:
        what = "the review before paying" if isinstance(question, ApprovalQuestion) else "the pick of takes"
        message = f"{what} was not answered within {question.timeout} s: the run ends, paying for nothing more"
        _cancelling(message)
        raise ReviewCancelled(message) from None
    return answer.model_dump()


def abandon_pause(message: str, api_url: str) -> bool:
    """End Cancelled (with `message`) the flow run this process has waiting at a gate on the API
    at `api_url`, if one waits; True if one did. For the process's Ctrl-C (from any thread):
    nothing more is paid, and nobody is offered a form whose answer no process would read."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    run_id = _paused
    if run_id is None:
        return False
    try:
        with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
            client.set_flow_run_state(run_id, Cancelled(message=message), force=True)
    except Exception:  # the server is gone too: the run is as stopped as it gets
        return False
    return True


def _cancelling(message: str) -> None:
    """An expired pause may only become Cancelling (else the server fails the run its own way):
    then the flow's Cancelled state, with its message, is accepted."""
    try:
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(flow_run.id, Cancelling(message=message))
    except Exception as exc:  # the run then ends Failed ("never resumed"): still nothing paid
        get_run_logger().warning(f"could not mark the run cancelling ({exc}); Prefect will fail it instead")


def gate_before_paying(plan: Plan, *, max_cost: float | Decimal | None, backend: str) -> tuple[Plan, Decimal | None]:
    """Gate 1: the approved plan (skipped shots left out) and the run's budget; ReviewCancelled if
    the reviewer cancels or nobody answers."""
    logger = get_run_logger()
    problem = None
    for round in range(1, MAX_ROUNDS + 1):
        question = approval_question(plan, max_cost, backend, problem=problem, round=round)
        create_markdown_artifact(
            question.markdown(), key=artifact_key(plan.title, "review-plan"), description="Review before paying"
        )
        logger.info(f"review: waiting for the plan to be approved (gate '{question.key}'; Resume in the Prefect UI)")
        try:
            approved, budget = approve(plan, question.answer(ask(question, question.markdown(heading=False))), backend)
        except AnswerRefused as exc:
            problem = str(exc)
            logger.warning(f"review: answer refused, asked again: {problem}")
            continue
        skipped = [s.id for s in plan.shots if s.id not in {k.id for k in approved.shots}]
        logger.info(
            f"review: approved {len(approved.shots)} shot(s)"
            + (f", skipped {', '.join(skipped)}" if skipped else "")
            + (f", budget ${budget}" if budget is not None else "")
        )
        return approved, budget
    raise ShotflowError(f"'{plan.title}': {MAX_ROUNDS} answers in a row could not be applied ({problem}); nothing was paid")


def generate_and_pick(
    plan: Plan,
    submit: Callable[[ShotPlan, Any], Any],
    replan: Callable[[Picks], Plan],
    *,
    budget: Decimal | None,
    backend: str,
) -> tuple[Plan, dict[tuple[str, int], Any]]:
    """Gate 2, once per level of `from:`: every take of the level's shots is generated
    (`submit(take, upstream)`: upstream is the future of the source's picked take), then the
    reviewer picks a take of each, or asks for another take (bought, then asked again). Returns
    the plan with the picks and the future of every take by (shot, take)."""
    logger = get_run_logger()
    takes: dict[tuple[str, int], Any] = {}
    picks = load_picks(plan.picks_file) if plan.picks_file else Picks("")
    graph = levels(plan)
    for number, level in enumerate(graph, start=1):
        problem, round = None, 1
        while True:
            for shot_id in level:
                shot = plan.shot(shot_id)
                source = plan.shot(shot.source) if shot.source else None
                upstream = takes[source.id, source.take] if source else None
                for s in plan.takes_of(shot_id):
                    if (s.id, s.take) not in takes:
                        takes[s.id, s.take] = submit(s, upstream)
            clips, failed = _landed({k: f for k, f in takes.items() if k[0] in level})
            question = pick_question(plan, number, level, clips, failed, of_levels=len(graph), problem=problem, round=round)
            create_markdown_artifact(
                question.markdown({path: frame_uri(path) for path in clips.values()}),
                key=artifact_key(plan.title, f"review-takes-{number}"),
                description=f"Takes to pick from, level {number}",
            )
            logger.info(f"review: waiting for the picks of {', '.join(level)} (gate '{question.key}'; Resume in the Prefect UI)")
            try:
                small = {path: frame_uri(path, question.form_side) for path in clips.values()}  # to fit the form's box
                values = ask(question, question.markdown(small, heading=False))
                outcome = apply_picks(plan, picks, question, question.answer(values), budget, backend)
            except AnswerRefused as exc:
                problem, round = str(exc), round + 1
                logger.warning(f"review: answer refused, asked again: {problem}")
                if round > MAX_ROUNDS:
                    raise ShotflowError(
                        f"'{plan.title}': {MAX_ROUNDS} answers in a row could not be applied ({problem})"
                    ) from None
                continue
            picks = outcome.picks
            if picks.file:  # kept beside the storyboard: every later run uses them, and a take asked for is not lost
                save_picks(picks, plan.source)
            if outcome.rerolls:
                asked = ", ".join(
                    f"{shot} take {take}" + (f" ('{prompt}')" if prompt else "") for shot, take, prompt in outcome.rerolls
                )
                logger.info(f"review: another take asked for: {asked}")
                plan = same_run(replan(picks), plan)
                problem, round = None, 1
                continue
            plan = plan.with_picks(outcome.picked)
            logger.info("review: picked " + ", ".join(f"{shot} take {take}" for shot, take in outcome.picked.items()))
            break
    return plan, takes


def _landed(futures: Mapping[tuple[str, int], Any]) -> tuple[dict[tuple[str, int], str], dict[tuple[str, int], str]]:
    """Each take's clip path, or why it failed (waits for all of them)."""
    clips, failed = {}, {}
    for key, future in futures.items():
        try:
            clips[key] = str(future.result().path)
        except Exception as exc:  # shown at the gate: another take can be asked for
            failed[key] = str(exc) or type(exc).__name__
    return clips, failed
