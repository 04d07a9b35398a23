"""The review gates: what each asks, what an answer may say, and what it does to the plan and picks.

Gate 1, before paying: the plan's shots with their takes and prices and the total; the answer
approves, skips shots (and what continues them), lowers the budget, or cancels. Gate 2, once per
level of the `from:` graph (a shot's source is picked before the shot is generated): a frame of
every take of the level's shots; the answer picks a take of each, or asks for another take of
some (with an edited prompt if given), after which the gate asks again with it.

Pure: no Prefect. The Prefect UI (flows/review.py) and the terminal ask the same `Field`s and
hand the values to `question.answer(...)`; `approve` and `apply_picks` say what the answer does,
or refuse it (`AnswerRefused`: ask again, saying why). A question's `key` names it, stable for
one plan, so a run that is re-executed finds the answers it was given (Prefect's suspend).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Mapping

from shotflow.assembly.contactsheet import middle_frame
from shotflow.errors import BudgetError, ShotflowError
from shotflow.model import CutSpec, Plan
from shotflow.money import PREVIEW, on_fal, plan_cost, usd
from shotflow.picks import Picks
from shotflow.plan import check_budget

THUMB_SIDE = 320  # a take's frame in the gate's artifact: small, since it travels inside the page as a data URI
FORM_WIDTH = 300  # what the takes of a shot may span in the UI's Resume form (a box about 470 px wide)
THUMB_QUALITY = 70
ANOTHER = "another take"  # field names no shot id can take (ids have no spaces)
NEW_PROMPT = "new prompt"

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
    kind: Kind  # bool; choice (one of choices); choices (any of them); money (dollars or None); text (or None)
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
        money = values.get("max_cost", self.budget)
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
            f"Unanswered in {_duration(self.timeout)}, the run ends without paying.",
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
        raise AnswerRefused(f"{said}: skip shots or raise the budget") from None
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
    return dataclasses.replace(without_shots(fresh, {s.id for s in fresh.shots} - keep), output=like.output)


# --- gate 2: picks, one level of the from: graph at a time ------------------------------------


def levels(plan: Plan) -> tuple[tuple[str, ...], ...]:
    """The shots by depth of `from:` (in cut order within a level): a level's sources are all in
    earlier levels, so its takes can start from picked takes."""
    depth: dict[str, int] = {}
    ids = {s.id for s in plan.shots}
    for s in plan.order:
        depth[s.id] = depth[s.source] + 1 if s.source in ids else 0
    return tuple(tuple(s.id for s in plan.shots if depth[s.id] == d) for d in range(max(depth.values(), default=-1) + 1))


@dataclass(frozen=True)
class TakeChoice:
    shot: str
    prompt: str
    picked: int  # the take picked so far (take 1 until someone picks)
    clips: Mapping[int, str]  # take -> its clip, for the takes that were made
    failed: Mapping[int, str] = field(default_factory=dict)  # take -> why it was not

    @property
    def takes(self) -> tuple[int, ...]:
        return tuple(sorted(self.clips))


@dataclass(frozen=True)
class PickAnswer:
    picks: Mapping[str, int] = field(default_factory=dict)
    another: tuple[str, ...] = ()
    prompts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PickQuestion:
    title: str
    level: int  # 1-based
    of_levels: int
    choices: tuple[TakeChoice, ...]
    timeout: int
    problem: str | None = None
    round: int = 1

    @property
    def key(self) -> str:
        # the shots and their takes: after another take the question (and its key) is new
        shown = ";".join(f"{c.shot}:{','.join(map(str, (*c.takes, *sorted(c.failed))))}" for c in self.choices)
        digest = hashlib.sha256(shown.encode()).hexdigest()[:12]
        return f"pick-level-{self.level}-{digest}" + (f"-{self.round}" if self.round > 1 else "")

    @property
    def fields(self) -> tuple[Field, ...]:
        """A pick for each shot with a choice (a shot with one take made takes it), the shots to
        make another take of, and one new prompt (for one shot at a time): few fields, so the UI's
        form leaves room for the frames above it."""
        found = [
            Field(c.shot, c.shot, f"The take of '{c.shot}' cut into the video", "choice", c.takes, _default(c))
            for c in self.choices
            if len(c.takes) > 1
        ]
        found += [
            Field(
                ANOTHER,
                "Another take",
                "Shots to generate one more take of (paid); the gate then asks again with it",
                "choices",
                tuple(c.shot for c in self.choices),
                (),
            ),
            Field(NEW_PROMPT, "New prompt", "Optional, with one shot in Another take: its new take's prompt", "text"),
        ]
        return tuple(found)

    def answer(self, values: Mapping[str, Any]) -> PickAnswer:
        shots = [c.shot for c in self.choices]
        another = tuple(values.get(ANOTHER) or ())
        prompt = str(values.get(NEW_PROMPT) or "").strip()
        if prompt and len(another) != 1:
            raise AnswerRefused(f"new prompt: name exactly one shot in '{ANOTHER}' for it (named: {_listed(another)})")
        return PickAnswer(
            picks={s: int(values[s]) for s in shots if values.get(s) is not None},
            another=another,
            prompts={another[0]: prompt} if prompt else {},
        )

    @property
    def columns(self) -> int:
        """The takes side by side: as many as the shot with the most."""
        return max((max((*c.takes, *c.failed), default=1) for c in self.choices), default=1)

    @property
    def form_side(self) -> int:
        """The frames' long side in the UI's form, so a shot's takes fit its width side by side."""
        return max(64, min(160, FORM_WIDTH // self.columns))

    def markdown(self, frames: Mapping[str, str | None] | None = None, *, heading: bool = True) -> str:
        """The takes side by side, one row per shot, then what to do; `frames`: a clip path -> an
        image URL (a data URI); `heading`: a title first (an artifact; the UI's form shows the text
        in a box of its own, where the frames come first)."""
        frames = frames or {}
        width = self.columns
        where = f"{self.title}" + (f", level {self.level} of {self.of_levels}" if self.of_levels > 1 else "")
        lines = [f"# Pick the takes: {where}", ""] if heading else []
        if self.problem:
            lines += [ask_again(self.problem).strip(), ""]
        lines += [
            "| shot | " + " | ".join(f"take {t}" for t in range(1, width + 1)) + " |",
            "|---|" + "---|" * width,
        ]
        for c in self.choices:
            cells = []
            for t in range(1, width + 1):
                if t in c.clips:
                    uri = frames.get(c.clips[t])
                    cells.append(f"![{c.shot} take {t}]({uri})" if uri else f"take {t}")
                else:
                    cells.append(f"failed: {c.failed[t]}" if t in c.failed else "")
            lines.append(f"| **{c.shot}**" + (f" (picked: {c.picked})" if heading else "") + " | " + " | ".join(cells) + " |")
        lines += [
            "",
            ("A" if heading else f"**{where}**: a")
            + " frame from the middle of every take. Pick one take of each shot, or ask for another take "
            f"(with a new prompt if you like). Unanswered in {_duration(self.timeout)}, the run ends without paying for more.",
            "",
            *(f"- **{c.shot}**: {c.prompt}" for c in self.choices),
        ]
        return "\n".join(lines)


def _default(choice: TakeChoice) -> int | None:
    return choice.picked if choice.picked in choice.clips else (choice.takes[0] if choice.takes else None)


def pick_question(
    plan: Plan,
    level: int,
    shot_ids: tuple[str, ...],
    clips: Mapping[tuple[str, int], str],
    failed: Mapping[tuple[str, int], str] | None = None,
    *,
    of_levels: int = 1,
    problem: str | None = None,
    round: int = 1,
) -> PickQuestion:
    """Gate 2 for the shots of one level: `clips` (shot, take) -> clip path of each take made,
    `failed` (shot, take) -> why a take was not made. A shot with no take made cannot be asked
    about: that is an error naming its failures."""
    failed = failed or {}
    choices = []
    for shot_id in shot_ids:
        shot = plan.shot(shot_id)
        made = {t.take: clips[shot_id, t.take] for t in plan.takes_of(shot_id) if (shot_id, t.take) in clips}
        lost = {t.take: failed[shot_id, t.take] for t in plan.takes_of(shot_id) if (shot_id, t.take) in failed}
        if not made:
            reasons = "; ".join(f"take {t}: {why}" for t, why in sorted(lost.items())) or "no take was made"
            raise ShotflowError(f"shot '{shot_id}': no take to pick from ({reasons})")
        choices.append(TakeChoice(shot_id, str(shot.body.get("prompt", "")), shot.take, made, lost))
    return PickQuestion(plan.title, level, of_levels, tuple(choices), plan.review_timeout, problem, round)


@dataclass(frozen=True)
class PickOutcome:
    picks: Picks  # to save: the level's picks, and the takes asked for (numbered, with their prompts)
    rerolls: tuple[tuple[str, int, str | None], ...]  # (shot, new take, prompt or None): to generate, then ask again
    picked: Mapping[str, int]  # shot -> take, for the shots settled at this gate


def apply_picks(
    plan: Plan, picks: Picks, question: PickQuestion, answer: PickAnswer, budget: Decimal | None, backend: str
) -> PickOutcome:
    """What an answer to gate 2 does: each shot's pick, or another take (a prompt given means
    another take); refused when it names what the question did not offer, or another take would
    take a fal run over its budget."""
    offered = {c.shot: c for c in question.choices}
    wrong = [s for s in (*answer.picks, *answer.another, *answer.prompts) if s not in offered]
    if wrong:
        raise AnswerRefused(f"no shot {', '.join(map(repr, sorted(set(wrong))))} at this gate (shots: {', '.join(offered)})")
    another = [s for s in offered if s in answer.another or s in answer.prompts]
    extra = [plan.shot(s) for s in another]
    if another and budget is not None and backend != PREVIEW:
        unpriced = [s.id for s in extra if s.cost is None]
        total = plan.known_cost + sum((s.cost for s in extra if s.cost is not None), Decimal(0))
        if unpriced or total > budget:
            why = f"no known price for {', '.join(unpriced)}" if unpriced else f"the run would cost {usd(total)}"
            raise AnswerRefused(
                f"another take of {', '.join(another)}: {why}, over the budget of {usd(budget)}: pick a take instead"
            )
    picked: dict[str, int] = {}
    rerolls = []
    for shot_id, choice in offered.items():
        if shot_id in another:
            numbers = [t.take for t in plan.takes_of(shot_id)]
            picks, take = picks.with_extra_take(shot_id, max(numbers), answer.prompts.get(shot_id))
            rerolls.append((shot_id, take, answer.prompts.get(shot_id)))
            continue
        take = answer.picks.get(shot_id, _default(choice))
        if take not in choice.clips:
            raise AnswerRefused(f"shot '{shot_id}': take {take} cannot be picked (takes made: {_listed(choice.takes)})")
        picks = picks.with_pick(shot_id, take)
        picked[shot_id] = take
    return PickOutcome(picks, tuple(rerolls), picked)


# --- what the gates show -----------------------------------------------------------------------


def frame_uri(clip: str | Path, side: int = THUMB_SIDE) -> str | None:
    """The clip's middle frame as a JPEG data URI (the UI renders it in markdown), `side` pixels on
    its long side whatever the clip's size (the takes line up), or None when it cannot be decoded."""
    frame = middle_frame(clip)
    if frame is None:
        return None
    scale = side / max(frame.size)
    frame = frame.resize((max(1, round(frame.width * scale)), max(1, round(frame.height * scale))))
    data = io.BytesIO()
    frame.convert("RGB").save(data, "JPEG", quality=THUMB_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(data.getvalue()).decode()


def _cost(cost: str, backend: str) -> str:
    return on_fal(cost, backend) if backend == PREVIEW else f"estimated {cost}"


def _listed(numbers) -> str:
    return ", ".join(map(str, numbers)) or "none"


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"
