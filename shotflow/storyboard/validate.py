"""The one way down for a storyboard: read (with lines) -> validate -> a `ValidStoryboard`.

Every check of a storyboard happens here, in this order, each rule in one module: the YAML and
its lines (yamlsource), the shape (schema), the run's placeholders (fill), where each shot's
frames come from (continuity: `from:`, `image:`, `end_image:`), each shot against its model
(modelrules, which reads the catalog), the transitions against the shots' lengths
(transitions), the soundtrack and `--out` (paths). Every problem is collected and raised at once
as one StoryboardError naming file, line and shot; what is allowed but worth saying (`from:` a
later shot) is kept as a warning. What passes is all the plan needs: the plan
(shotflow.plan) never reads, checks or calls back into the storyboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

from shotflow.errors import Problem, StoryboardError
from shotflow.model import CutSpec, PathVar
from shotflow.storyboard.continuity import check_continuity
from shotflow.storyboard.fill import fill_placeholders, path_vars
from shotflow.storyboard.modelrules import ValidShot, check_shot
from shotflow.storyboard.paths import input_path
from shotflow.storyboard.schema import Storyboard, duplicate_ids, parse_storyboard
from shotflow.storyboard.templating import fill, placeholders
from shotflow.storyboard.transitions import check_cuts
from shotflow.storyboard.yamlsource import Located, load_yaml, parse_yaml


@dataclass(frozen=True)
class ValidStoryboard:
    """A storyboard that passed every check, for one run (its vars, `--out` and date filled in)."""

    file: str  # the path given, or "<storyboard>" / "<inline storyboard>" when there is no file
    written: Storyboard  # as in the file, placeholders and all (a deployment's schedule, vars, title)
    board: Storyboard  # for this run: every {{ name }} filled
    shots: tuple[ValidShot, ...]
    cuts: tuple[CutSpec, ...]  # the cut into every shot after the first
    soundtrack: str | None  # output.audio.path, resolved against the storyboard's folder
    out: str | None  # --out, its placeholders filled
    path_vars: tuple[PathVar, ...]
    warnings: tuple[str, ...] = ()  # allowed, but said by validate, estimate and run


def validate(
    located: Located, file: str, *, out: str | None = None, vars: Mapping[str, Any] | None = None, now: datetime | None = None
) -> ValidStoryboard:
    """Every check of a storyboard read with its lines, for a run with `vars` and `out` at `now`:
    the valid storyboard, or a StoryboardError listing every problem."""
    written = parse_storyboard(located, file)
    board, values, problems = fill_placeholders(written, located, file, vars, now)
    problems = duplicate_ids(located, file) + problems
    frames, found, warnings = check_continuity(board, located, file)
    problems.extend(found)
    shots: list[ValidShot] = []
    for i in range(len(board.shots)):
        shot, found = check_shot(board, located, file, i, frames.get(i))
        problems.extend(found)
        if shot is not None:
            shots.append(shot)
    cuts, found = check_cuts(board, located, file, {s.index: s.seconds for s in shots})
    problems.extend(found)
    soundtrack = None
    if board.output.audio is not None:
        track = input_path(board.output.audio.path, file)
        if not track.is_file():
            problems.append(Problem(file, located.line(("output", "audio", "path")), f"output.audio.path: no such file {track}"))
        soundtrack = str(track)
    for name in placeholders(out or ""):
        if name not in values:
            problems.append(Problem(file, None, f"--out {out!r}: unknown placeholder {{{{ {name} }}}}"))
    if problems:
        problems.sort(key=lambda p: p.line or 0)
        raise StoryboardError(problems)
    return ValidStoryboard(
        file=file,
        written=written,
        board=board,
        shots=tuple(shots),
        cuts=cuts,
        soundtrack=soundtrack,
        out=fill(out, values) if out else None,
        path_vars=path_vars(written, located, values, out),
        warnings=tuple(warnings),
    )


def validate_file(path: str | Path, **run: Any) -> ValidStoryboard:
    """A storyboard file; `run` is validate's out, vars and now."""
    return validate(load_yaml(path), str(path), **run)


def validate_text(text: str, file: str = "<storyboard>", **run: Any) -> ValidStoryboard:
    return validate(parse_yaml(text, file), file, **run)


def validate_data(data: Mapping[str, Any], file: str = "<inline storyboard>", **run: Any) -> ValidStoryboard:
    """A storyboard given as structured data (e.g. a deployment parameter): no lines to name."""
    return validate(Located(dict(data)), file, **run)
