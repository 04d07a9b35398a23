"""The cut into every shot: a storyboard's transitions, checked against the shots' lengths."""

from __future__ import annotations

from typing import Mapping

from shotflow.errors import Problem
from shotflow.model import CutSpec
from shotflow.storyboard.schema import Storyboard, Transition
from shotflow.storyboard.yamlsource import Located


def effect_name(transition: Transition) -> str:
    """A storyboard transition as the assembly's effect name: a fade is named by its colour."""
    return f"fade{transition.color or 'black'}" if transition.type == "fade" else transition.type


def _label(transition: Transition) -> str:
    return f"fade through {transition.color or 'black'}" if transition.type == "fade" else transition.type


def check_cuts(
    board: Storyboard, located: Located, file: str, seconds: Mapping[int, int]
) -> tuple[tuple[CutSpec, ...], list[Problem]]:
    """The cut into every shot after the first (its own `transition:`, else `output.transition`),
    and what is wrong with them: a transition on the first shot (refused: nothing cuts into it), an
    overlap that is not whole frames, one not shorter than a clip it joins, or a clip that cannot
    hold the overlaps at both of its ends. `seconds` has the length of every shot that passed its model."""
    fps = board.output.fps
    problems: list[Problem] = []
    first = board.shots[0]
    if first.transition is not None:
        problems.append(
            Problem(
                file,
                located.line(("shots", 0, "transition")),
                "transition: the first shot has no cut into it: remove its transition:",
                first.id,
            )
        )
    chosen: list[tuple[Transition, int | None, str, bool]] = []  # transition, its line, its field, the shot's own
    default = (board.output.transition, located.line(("output", "transition")), "output.transition", False)
    for i, shot in enumerate(board.shots[1:], start=1):
        own = shot.transition is not None
        chosen.append((shot.transition, located.line(("shots", i, "transition")), "transition", True) if own else default)
    # output.transition is checked even when no cut takes it (a setting that is wrong is said)
    for k, (transition, line, field, own) in [(0, default)] + [(i, c) for i, c in enumerate(chosen, start=1) if c[3]]:
        count = transition.seconds * fps
        if transition.type != "cut" and abs(count - round(count)) > 1e-6:
            lo, hi = int(count) / fps, (int(count) + 1) / fps
            shot = board.shots[k].id if own else None
            problems.append(
                Problem(
                    file,
                    line,
                    f"{field}: a {transition.seconds:g} s {transition.type} is {count:g} frames at {fps} fps; "
                    f"use a whole number of frames, e.g. {lo:.4g} or {hi:.4g} s, so the video lasts exactly what the plan says",
                    shot,
                )
            )
    cuts = tuple(CutSpec(effect_name(t), 0.0 if t.type == "cut" else t.seconds) for t, *_ in chosen)
    frames_of = [round(c.overlap * fps) for c in cuts]
    too_long: set[int] = set()
    for k, (cut, (transition, line, field, _)) in enumerate(zip(cuts, chosen), start=1):  # the cut into shot k
        if not cut.overlap:
            continue
        for j in (k - 1, k):
            if j in seconds and frames_of[k - 1] >= seconds[j] * fps:
                too_long.add(k)
                problems.append(
                    Problem(
                        file,
                        line,
                        f"{field}: the {transition.seconds:g} s {_label(transition)} from '{board.shots[k - 1].id}' into "
                        f"'{board.shots[k].id}' does not fit in shot '{board.shots[j].id}' ({seconds[j]} s): "
                        f"a transition must be shorter than both shots it joins",
                        board.shots[k].id,
                    )
                )
    for j in range(1, len(board.shots) - 1):  # a clip between two overlaps must outlast both
        head, tail = frames_of[j - 1], frames_of[j]
        if j not in seconds or not (head and tail) or {j, j + 1} & too_long or head + tail < seconds[j] * fps:
            continue
        (t_in, line_in, _, own_in), (t_out, line_out, _, own_out) = chosen[j - 1], chosen[j]
        problems.append(
            Problem(
                file,
                line_in if own_in or not own_out else line_out,
                f"a {seconds[j]} s clip cannot hold the {t_in.seconds:g} s {_label(t_in)} into it and the "
                f"{t_out.seconds:g} s {_label(t_out)} out of it: together they must be shorter than the clip "
                f"(shorten one, e.g. both below {seconds[j] / 2:g} s)",
                board.shots[j].id,
            )
        )
    return cuts, problems
