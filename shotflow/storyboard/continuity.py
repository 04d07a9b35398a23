"""Where each shot's frames come from: `from:`, `image:` and `end_image:`, checked here and only here.

A shot with `from:` starts from the last frame of another shot, so the shots form a graph. Its
rules: the shot named exists and is not the shot itself, no cycle (the message names every shot
in it), `from:` and `image:` not together (both are the first frame), and every still exists
(`paths.still_source`). `from:` a shot that comes later in the cut is allowed, with a warning.
Whether the shot's model can start from a frame at all is `modelrules`' (it reads the catalog).
"""

from __future__ import annotations

from dataclasses import dataclass

from shotflow.errors import Problem
from shotflow.storyboard.paths import still_source
from shotflow.storyboard.schema import Storyboard
from shotflow.storyboard.yamlsource import Located


@dataclass(frozen=True)
class FrameSources:
    """Where a shot's frames come from, as the storyboard gives them, checked: what the model rules
    and the plan need (the frames themselves are made at generation: shotflow.media.frames)."""

    source: str | None = None  # the shot whose last frame is the first frame
    image: str | None = None  # a still as the first frame: an absolute path or an https URL
    end_image: str | None = None  # a still as the last frame


def warning(file: str, line: int | None, shot: str, message: str) -> str:
    """A warning as every output prints it: "warning: sb.yaml:12: shot 'a': ..."."""
    return f"warning: {Problem(file, line, message, shot)}"


def check_continuity(board: Storyboard, located: Located, file: str) -> tuple[dict[int, FrameSources], list[Problem], list[str]]:
    """The frames of every shot that has any (by index), the problems, and the warnings."""
    index_of: dict[str, int] = {}
    for i, shot in enumerate(board.shots):
        index_of.setdefault(shot.id, i)  # a duplicate id is reported by the schema's rules
    frames: dict[int, FrameSources] = {}
    sources: dict[int, str] = {}  # the from: that name another shot: the graph the cycles are looked for in
    problems: list[Problem] = []
    warnings: list[str] = []
    for i, shot in enumerate(board.shots):
        if shot.from_ is None and shot.image is None and shot.end_image is None:
            continue

        def line(key: str, i: int = i) -> int | None:
            return located.line(("shots", i, key))

        source = shot.from_
        if source is not None:
            if source == shot.id:
                problems.append(
                    Problem(
                        file, line("from"), f"from: '{source}' is this shot: a shot cannot start from its own last frame", shot.id
                    )
                )
            elif source not in index_of:
                problems.append(Problem(file, line("from"), f"from: {_unknown(source, index_of)}", shot.id))
            else:
                sources[i] = source
            if source in index_of and index_of[source] > i:
                later = f"from: '{source}' comes later in the cut (shot {index_of[source] + 1} of {len(board.shots)}): "
                warnings.append(
                    warning(file, line("from"), shot.id, later + f"'{shot.id}' is generated after it but shown before it")
                )
            if shot.image is not None:
                problems.append(
                    Problem(file, line("from"), "from: and image: both give the first frame: keep one of them", shot.id)
                )
        stills: dict[str, str | None] = {}
        for key in ("image", "end_image"):
            text = getattr(shot, key)
            if text is not None:
                stills[key], wrong = still_source(text, file)
                if wrong:
                    problems.append(Problem(file, line(key), f"{key}: {wrong}", shot.id))
        frames[i] = FrameSources(source, stills.get("image"), stills.get("end_image"))
    problems.extend(_cycles(board, located, file, sources, index_of))
    return frames, problems, warnings


def _unknown(source: str, index_of: dict[str, int]) -> str:
    """No shot `source`: the id meant, when only its case differs, else the ids there are."""
    near = [known for known in index_of if known.lower() == source.lower()]
    if near:
        return f"no shot '{source}': did you mean '{near[0]}'? (ids are matched exactly)"
    return f"no shot '{source}' (shots: {', '.join(index_of)})"


def _cycles(board: Storyboard, located: Located, file: str, sources: dict[int, str], index_of: dict[str, int]) -> list[Problem]:
    """One problem per cycle of `from:`, at the from: of its shot that comes first in the cut.

    Each shot has at most one source, so following sources from any shot either ends or loops."""
    problems: list[Problem] = []
    done: set[int] = set()
    for start in sorted(sources):
        path: list[int] = []
        at: int | None = start
        while at is not None and at not in done and at not in path:
            path.append(at)
            at = index_of[sources[at]] if at in sources else None
        if at is not None and at in path:
            cycle = path[path.index(at) :]
            first = min(cycle)
            cycle = cycle[cycle.index(first) :] + cycle[: cycle.index(first)]
            names = " -> ".join(board.shots[k].id for k in cycle + [first])
            problems.append(
                Problem(
                    file,
                    located.line(("shots", first, "from")),
                    f"from: makes a cycle ({names}: each starts from the last frame of the next), "
                    "so none of them can be generated first: remove one of their from:",
                    board.shots[first].id,
                )
            )
        done.update(path)
    return problems
