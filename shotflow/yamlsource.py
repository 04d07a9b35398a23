"""Reading YAML the way a careful user expects: with line numbers, and with limits.

PyYAML's `safe_load` forgets where a value came from, keeps the last of two duplicate keys,
and recurses without bound. This module composes the node tree itself so that every value can
be traced back to its line, duplicate keys are errors, and a huge, deeply nested or
alias-bomb file is refused before it costs anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shotflow.errors import Problem, StoryboardError

MAX_BYTES = 1 << 20  # a storyboard of 500 long prompts is ~300 KB
MAX_DEPTH = 32
MAX_NODES = 100_000

Path_ = tuple[str | int, ...]


@dataclass
class Located:
    """Plain Python data (dicts, lists, scalars) and the line of every path in it."""

    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line(self, path: Path_) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


class _Builder:
    def __init__(self, file: str, loader: yaml.SafeLoader):
        self.file = file
        self.loader = loader
        self.lines: dict[Path_, int] = {}
        self.nodes = 0
        self.problems: list[Problem] = []

    def build(self, node: yaml.Node, path: Path_, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise StoryboardError([Problem(self.file, node.start_mark.line + 1, f"more than {MAX_NODES} values (aliases included): refusing to expand")])
        if depth > MAX_DEPTH:
            raise StoryboardError([Problem(self.file, node.start_mark.line + 1, f"nested more than {MAX_DEPTH} levels deep")])
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problems.append(Problem(self.file, key_node.start_mark.line + 1, "a mapping key must be a plain name"))
                    continue
                key = self.loader.construct_object(key_node)
                if key == "<<":
                    self.problems.append(Problem(self.file, key_node.start_mark.line + 1, "YAML merge keys (<<) are not supported: use defaults: instead"))
                    continue
                key = str(key)
                if key in out:
                    first = self.lines.get(path + (key,))
                    self.problems.append(Problem(self.file, key_node.start_mark.line + 1, f"duplicate key '{key}' (first at line {first})"))
                    continue
                self.lines[path + (key,)] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, path + (key,), depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        return self.loader.construct_object(node)


def load_yaml(path: str | Path) -> Located:
    """Parse one YAML file; every failure is a `StoryboardError` naming the file and line."""
    file = str(path)
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise StoryboardError([Problem(file, None, "no such file")]) from None
    except OSError as exc:
        raise StoryboardError([Problem(file, None, f"cannot read: {exc.strerror}")]) from None
    if p.is_dir():
        raise StoryboardError([Problem(file, None, "is a directory, not a storyboard file")])
    if size > MAX_BYTES:
        raise StoryboardError([Problem(file, None, f"{size} bytes: a storyboard may be at most {MAX_BYTES} bytes")])
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise StoryboardError([Problem(file, None, f"not UTF-8 text (byte {exc.start})")]) from None
    return parse_yaml(text, file)


def parse_yaml(text: str, file: str = "<storyboard>") -> Located:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise StoryboardError([Problem(file, None, "the file is empty: a storyboard needs version, and shots")])
        builder = _Builder(file, loader)
        data = builder.build(node, (), 0)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        reason = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        raise StoryboardError([Problem(file, line, f"not valid YAML: {reason}")]) from None
    except yaml.YAMLError as exc:
        raise StoryboardError([Problem(file, None, f"not valid YAML: {exc}")]) from None
    except RecursionError:
        raise StoryboardError([Problem(file, None, "nested too deeply to read")]) from None
    finally:
        loader.dispose()
    if builder.problems:
        raise StoryboardError(builder.problems)
    if not isinstance(data, dict):
        kind = type(data).__name__ if data is not None else "nothing"
        raise StoryboardError([Problem(file, 1, f"a storyboard is a mapping (version:, shots:, ...), not a {kind}")])
    return Located(data, builder.lines)
