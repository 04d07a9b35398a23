"""The review gates: what each asks, what an answer may say, and what it does to the plan and picks.

Gate 1, before paying (here): the plan's shots with their takes and prices and the total; the
answer approves, skips shots (and what continues them), lowers the budget, or cancels. Gate 2,
once per level of the `from:` graph, a pick of each shot's take: shotflow/picking.py.

Pure: no Prefect. The Prefect UI (flows/review.py) and the terminal ask the same `Field`s and
hand the values to `question.answer(...)`; `approve` and `picking.apply_picks` say what the answer
does, or refuse it (`AnswerRefused`: ask again, saying why). A question's `key` names it, stable
for one plan, so a run that is re-executed finds the answers it was given (Prefect's suspend).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Mapping

from shotflow.errors import BudgetError, ShotflowError
from shotflow.model import CutSpec, Plan
from shotflow.money import PREVIEW, on_fal, plan_cost, usd
from shotflow.plan import check_budget

Kind = Literal["bool", "choice", "choices", "money", "text"]


class ReviewCancelled(ShotflowError):
    """The reviewer cancelled, or nobody answered in time: the run ends without paying for more."""


class AnswerRefused(ShotflowError):
    """An answer the gate cannot apply (a shot that is not in the plan, a take over the budget):
    the gate asks again, saying why."""


@dataclass(frozen=True)
class Field:
    """One thing a gate asks: a form field in the UI, a prompt in the terminal."""

    name: str  # the key of the answer's value
    title: str
    description: str
    kind: Kind  # bool; choice (one of choices); choices (any of them); money (dollars or None); text ('': none)
    choices: tuple[Any, ...] = ()
    default: Any = None


def ask_again(problem: str | None) -> str:
    return f"**Asked again**: {problem}\n\n" if problem else ""


# --- gate 1: before paying -------------------------------------------------------------------


@dataclass(frozen=True)
class CostRow:
    shot: str
    model: str
    seconds: int
    takes: int
    per_take: Decimal | None
    continues: str | None  # the shot it starts from (from:)

    @property
    def cost(self) -> Decimal | None:
        return None if self.per_take is None else self.per_take * self.takes


@dataclass(frozen=True)
class Approval:
    approve: bool = True
    skip: tuple[str, ...] = ()
    max_cost: Decimal | None = None


@dataclass(frozen=True)
class ApprovalQuestion:
    plan: Plan
    backend: str
    budget: Decimal | None  # the run's max_cost so far
    timeout: int
    problem: str | None = None  # why it is asked again
    round: int = 1

    @property
    def key(self) -> str:
        return "approve-plan" if self.round == 1 else f"approve-plan-{self.round}"

    @property
    def rows(self) -> tuple[CostRow, ...]:
        return tuple(CostRow(s.id, s.model, s.seconds, len(self.plan.takes_of(s.id)), s.cost, s.source) for s in self.plan.shots)

    @property
    def fields(self) -> tuple[Field, ...]:
        ids = tuple(s.id for s in self.plan.shots)
        return (
            Field("approve", "Approve", "Off: cancel the run; nothing is paid", "bool", default=True),
            Field("skip", "Skip", "Shots left out of this run (with the shots that continue them)", "choices", ids, ()),
            Field(
                "max_cost",
                "Max cost (USD)",
                "The run's budget, takes asked for at the picks included; empty: none",
                "money",
                default=None if self.budget is None else float(self.budget),
            ),
        )

    def answer(self, values: Mapping[str, Any]) -> Approval:
        """The answer as an Approval. The budget can only be lowered: the run's --max-cost (or the
        deployment's max_cost) is what the person who started it allowed; empty keeps it."""
        money = values.get("max_cost")
        if money is None:
            money = self.budget
        elif self.budget is not None and Decimal(str(money)) > self.budget:
            raise AnswerRefused(
                f"max_cost: {usd(Decimal(str(money)))} is over the run's budget of {usd(self.budget)}: the review can "
                "lower the budget, not raise it (start the run again with a higher --max-cost)"
            )
        return Approval(
            approve=bool(values.get("approve", True)),
            skip=tuple(values.get("skip") or ()),
            max_cost=None if money is None else Decimal(str(money)),
        )

    def markdown(self, *, heading: bool = True) -> str:
        """The cost table, then what to do; `heading`: a title first (an artifact; the UI's form
        shows the text in a box of its own, where the table comes first)."""
        plan, backend = self.plan, self.backend
        lines = [f"# Review before paying: {plan.title}", ""] if heading else []
        lines += [
            ask_again(self.problem)
            + ("" if heading else f"**{plan.title}**: ")
            + f"{len(plan.shots)} shots, {len(plan.all_takes)} generations, {_cost(plan_cost(plan), backend)}"
            + (f"; budget {usd(self.budget)}" if self.budget is not None else "")
            + ".",
            "",
            "| shot | model | seconds | takes | per take | cost | starts from |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            lines.append(
                f"| **{r.shot}** | {r.model} | {r.seconds} | {r.takes} | {usd(r.per_take)} | {usd(r.cost)} | {r.continues or ''} |"
            )
        lines += [
            f"| **total** | | | {len(plan.all_takes)} | | **{plan_cost(plan)}** | |",
            "",
            "Approve to start paying, skip shots, or lower the budget; turn Approve off to cancel (nothing is paid). "
            f"Unanswered in {duration(self.timeout)}, the run ends without paying.",
        ]
        return "\n".join(lines)


def approval_question(
    plan: Plan, max_cost: float | Decimal | None, backend: str, *, problem: str | None = None, round: int = 1
) -> ApprovalQuestion:
    budget = None if max_cost is None else Decimal(str(max_cost))
    return ApprovalQuestion(plan, backend, budget, plan.review_timeout, problem, round)


def approve(plan: Plan, answer: Approval, backend: str) -> tuple[Plan, Decimal | None]:
    """The plan to pay for and its budget: the skipped shots (and what continues them) left out."""
    if not answer.approve:
        raise ReviewCancelled(f"'{plan.title}': cancelled at the review before paying; nothing was paid")
    ids = {s.id for s in plan.shots}
    unknown = [s for s in answer.skip if s not in ids]
    if unknown:
        raise AnswerRefused(f"skip: no shot {', '.join(map(repr, unknown))} (shots: {', '.join(sorted(ids))})")
    skipped = set(answer.skip)
    for shot_id in answer.skip:
        skipped |= {d.id for d in plan.descendants(shot_id)}
    if skipped >= ids:
        raise AnswerRefused("skip: that is every shot; turn Approve off to cancel the run instead")
    kept = without_shots(plan, skipped)
    try:
        check_budget(kept, answer.max_cost, backend)
    except BudgetError as exc:
        said = str(exc).removesuffix("; nothing was started")  # it is not refused: asked again
        raise AnswerRefused(f"{said}: skip shots, or leave the budget as the run set it") from None
    return kept, answer.max_cost


def without_shots(plan: Plan, skipped: set[str]) -> Plan:
    """The plan without `skipped` shots: the rest keep their order, takes and the cut into each
    (a plain cut where an overlap no longer fits its new neighbours)."""
    if not skipped:
        return plan
    kept = [s for s in plan.shots if s.id not in skipped]
    cuts = [plan.output.cut_into(s.index) for s in kept[1:]]
    # a cut between the same two shots as before was checked with the storyboard; one whose shot
    # before it is new is checked against its new neighbours, in order
    moved = [kept[i].index != kept[i + 1].index - 1 for i in range(len(cuts))]
    fps = plan.output.fps
    for i, cut in enumerate(cuts):  # the cut into kept[i + 1]
        if not moved[i]:
            continue
        before, after = kept[i], kept[i + 1]
        head = cuts[i - 1].overlap if i else 0.0
        tail = cuts[i + 1].overlap if i + 1 < len(cuts) and not moved[i + 1] else 0.0
        frames = round(cut.overlap * fps)
        if frames and (
            frames >= round(before.seconds * fps)
            or frames >= round(after.seconds * fps)
            or frames + round(head * fps) > round(before.seconds * fps)
            or frames + round(tail * fps) > round(after.seconds * fps)
        ):
            cuts[i] = CutSpec("cut")
    index = {s.id: i for i, s in enumerate(kept)}
    return dataclasses.replace(
        plan,
        shots=tuple(dataclasses.replace(s, index=index[s.id]) for s in kept),
        generations=tuple(dataclasses.replace(g, index=index[g.id]) for g in plan.generations if g.id in index),
        output=dataclasses.replace(plan.output, cuts=tuple(cuts)),
    )


def same_run(fresh: Plan, like: Plan) -> Plan:
    """`fresh` (the storyboard planned again, e.g. with a take bought at gate 2) with the shots and
    output `like` has: the shots skipped at gate 1 stay skipped, the output path stays resolved."""
    keep = {s.id for s in like.shots}
    return dataclasses.replace(
        without_shots(fresh, {s.id for s in fresh.shots} - keep),
        output=like.output,
        review=like.review,  # a run reviewed through --review (or the flow's parameter) stays reviewed
        review_timeout=like.review_timeout,
    )


# --- shared by the gates ---------------------------------------------------------------------


def _cost(cost: str, backend: str) -> str:
    return on_fal(cost, backend) if backend == PREVIEW else f"estimated {cost}"


def listed(numbers) -> str:
    return ", ".join(map(str, numbers)) or "none"


def duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"
