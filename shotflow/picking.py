"""The second review gate: a pick of each shot's take, once per level of the `from:` graph (a
shot's source is picked before the shot is generated). It shows a frame of every take of the
level's shots; the answer picks a take of each, or asks for another take of some (with an edited
prompt if given), after which the gate asks again with it. The first gate and what both share
(`Field`, the errors) are in shotflow/review.py, which says how the UI and the terminal use them.
"""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping

from shotflow.assembly.contactsheet import middle_frame
from shotflow.errors import ShotflowError
from shotflow.model import Plan
from shotflow.money import PREVIEW, usd
from shotflow.picks import Picks
from shotflow.review import AnswerRefused, Field, ask_again, duration, listed

THUMB_SIDE = 320  # a take's frame in the gate's artifact: small, since it travels inside the page as a data URI
FORM_WIDTH = 300  # what the takes of a shot may span in the UI's Resume form (a box about 470 px wide)
THUMB_QUALITY = 70
ANOTHER = "another take"  # field names no shot id can take (ids have no spaces)
NEW_PROMPT = "new prompt"


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
            raise AnswerRefused(f"new prompt: name exactly one shot in '{ANOTHER}' for it (named: {listed(another)})")
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
            f"(with a new prompt if you like). Unanswered in {duration(self.timeout)}, the run ends without paying for more.",
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
        request = plan.shot(shot_id).request  # picks and takes hold for this version of the shot (shotflow.picks)
        if shot_id in another:
            numbers = [t.take for t in plan.takes_of(shot_id)]
            picks, take = picks.with_extra_take(shot_id, max(numbers), answer.prompts.get(shot_id), request)
            rerolls.append((shot_id, take, answer.prompts.get(shot_id)))
            continue
        take = answer.picks.get(shot_id, _default(choice))
        if take not in choice.clips:
            raise AnswerRefused(f"shot '{shot_id}': take {take} cannot be picked (takes made: {listed(choice.takes)})")
        picks = picks.with_pick(shot_id, take, request)
        picked[shot_id] = take
    return PickOutcome(picks, tuple(rerolls), picked)


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
