"""The storyboard of one run: every `{{ name }}` filled from vars, overrides and the run's date."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from shotflow.errors import Problem
from shotflow.model import PathVar
from shotflow.storyboard.schema import Storyboard, validation_problems
from shotflow.storyboard.templating import fill, malformed, placeholders, run_vars
from shotflow.storyboard.yamlsource import Located


def _override_problem(name: str, value: Any) -> str | None:
    """What is wrong with a value given for a var at run time (--var, a deployment, the UI)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return f"var '{name}': the value given for this run is a {type(value).__name__}: give text or a number"
    if isinstance(value, float) and not math.isfinite(value):
        return f"var '{name}': the value given for this run is {value}: give a finite number"
    if not str(value).strip():
        return f"var '{name}': the value given for this run is empty: give it a value (e.g. --var {name}=...)"
    return None


PATH_FIELDS = (("output", "path"), ("output", "audio", "path"))


def fill_placeholders(
    board: Storyboard, located: Located, file: str, overrides: Mapping[str, Any] | None, now: datetime | None
) -> tuple[Storyboard, dict[str, str], list[Problem]]:
    """The storyboard with every `{{ name }}` filled from vars, overrides and the run's date.

    An empty value is an error naming the var: given for the run, always; declared in vars:,
    where a placeholder uses it (an empty prompt or file name is never what was meant)."""
    problems: list[Problem] = []
    vars_line = located.line(("vars",))
    for name, value in (overrides or {}).items():
        if name not in board.vars:
            declared = ", ".join(board.vars) or "none"
            problems.append(Problem(file, vars_line, f"no var '{name}' to override (declared: {declared})"))
        elif why := _override_problem(name, value):
            problems.append(Problem(file, located.line(("vars", name)), why))
    tz = ZoneInfo(board.schedule.timezone) if board.schedule else None
    values = {**run_vars(now or datetime.now(tz)), **{k: str(v) for k, v in board.vars.items()}}
    values.update({k: str(v) for k, v in (overrides or {}).items()})
    data = board.model_dump(by_alias=True)  # `from:` is a keyword in Python: its field is from_
    empty_reported: set[str] = set(n for n in (overrides or {}) if n in board.vars and not str(overrides[n]).strip())

    def visit(path: tuple, text: str | None, shot: str | None) -> str | None:
        if text is None:
            return None
        where = ".".join(map(str, path if shot is None else path[2:]))
        for bad in malformed(text):
            problems.append(Problem(file, located.line(path), f"{where}: {bad} is not a placeholder: write {{{{ name }}}}", shot))
        unknown = [n for n in placeholders(text) if n not in values]
        for name in dict.fromkeys(unknown):
            known = ", ".join(sorted(values))
            problems.append(
                Problem(file, located.line(path), f"unknown placeholder {{{{ {name} }}}}: add it to vars: (known: {known})", shot)
            )
        for name in dict.fromkeys(placeholders(text)):
            if name in values and not values[name].strip() and name not in empty_reported:
                empty_reported.add(name)
                problems.append(
                    Problem(
                        file,
                        located.line(("vars", name)),
                        f"var '{name}' is empty but {{{{ {name} }}}} is used in {where}: give it a value",
                        shot,
                    )
                )
        return fill(text, values) if not unknown else text

    data["title"] = visit(("title",), data["title"], None)
    data["description"] = visit(("description",), data["description"], None)
    data["output"]["path"] = visit(("output", "path"), data["output"]["path"], None)
    if data["output"]["audio"] is not None:
        data["output"]["audio"]["path"] = visit(("output", "audio", "path"), data["output"]["audio"]["path"], None)
    data["defaults"]["negative_prompt"] = visit(("defaults", "negative_prompt"), data["defaults"]["negative_prompt"], None)
    for i, shot in enumerate(data["shots"]):
        shot["prompt"] = visit(("shots", i, "prompt"), shot["prompt"], shot["id"])
        shot["negative_prompt"] = visit(("shots", i, "negative_prompt"), shot["negative_prompt"], shot["id"])
    try:
        filled = Storyboard.model_validate(data)
    except ValidationError as exc:
        if not problems:  # what filling broke, said per field (an empty var is already named above)
            problems.extend(validation_problems(exc, located, file))
        filled = board
    return filled, values, problems


def path_vars(board: Storyboard, located: Located, values: Mapping[str, str], out: str | None) -> tuple[PathVar, ...]:
    """Every var (builtins included) whose value is filled into an output or input path."""
    found: list[PathVar] = []
    for path in PATH_FIELDS:
        if out and path == ("output", "path"):
            continue  # --out replaces output.path
        node: Any = board
        for part in path:
            node = getattr(node, part, None) if node is not None else None
        for name in dict.fromkeys(placeholders(node or "")):
            if name in values:
                found.append(PathVar(name, values[name], ".".join(path), located.line(path)))
    for name in dict.fromkeys(placeholders(out or "")):
        if name in values:
            found.append(PathVar(name, values[name], "--out"))
    return tuple(found)
