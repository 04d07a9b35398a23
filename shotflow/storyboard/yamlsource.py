"""Reading YAML the way a careful user expects: with line numbers, and with limits.

PyYAML's `safe_load` forgets where a value came from, keeps the last of two duplicate keys,
and recurses without bound. This module composes the node tree itself so that every value can
be traced back to its line, duplicate keys are errors, and a huge, deeply nested or
alias-bomb file is refused before it costs anything. A syntax error is told in plain words with
its line, column and a caret under the spot (`SyntaxProblem`), never in PyYAML's own wording.
"""

from __future__ import annotations

import re
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
            raise StoryboardError(
                [
                    Problem(
                        self.file,
                        node.start_mark.line + 1,
                        f"more than {MAX_NODES} values (aliases included): refusing to expand",
                    )
                ]
            )
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
                    self.problems.append(
                        Problem(
                            self.file,
                            key_node.start_mark.line + 1,
                            "YAML merge keys (<<) are not supported: use defaults: instead",
                        )
                    )
                    continue
                key = str(key)
                if key in out:
                    first = self.lines.get(path + (key,))
                    self.problems.append(
                        Problem(self.file, key_node.start_mark.line + 1, f"duplicate key '{key}' (first at line {first})")
                    )
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
    loader = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        if node is None:
            raise StoryboardError([Problem(file, None, "the file is empty: a storyboard needs version, and shots")])
        builder = _Builder(file, loader)
        data = builder.build(node, (), 0)
    except yaml.MarkedYAMLError as exc:
        raise StoryboardError([syntax_problem(exc, text, file)]) from None
    except yaml.reader.ReaderError as exc:
        line, column = _line_column(text, exc.position)
        what = f"a control character (U+{exc.character:04X})" if isinstance(exc.character, int) else "a character"
        raise StoryboardError(
            [
                SyntaxProblem(
                    file,
                    line + 1,
                    f"{what} that YAML does not allow: remove it",
                    column=column + 1,
                    text=_source_line(text, line),
                )
            ]
        ) from None
    except yaml.YAMLError:
        raise StoryboardError([Problem(file, None, "YAML cannot read this file")]) from None
    except RecursionError:
        raise StoryboardError([Problem(file, None, "nested too deeply to read")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if builder.problems:
        raise StoryboardError(builder.problems)
    if not isinstance(data, dict):
        kind = type(data).__name__ if data is not None else "nothing"
        raise StoryboardError([Problem(file, 1, f"a storyboard is a mapping (version:, shots:, ...), not a {kind}")])
    return Located(data, builder.lines)


# --- syntax errors in plain words ---------------------------------------------------------------


@dataclass(frozen=True)
class SyntaxProblem(Problem):
    """A YAML syntax error: `file:line:column: message`, then the line with a caret under the spot."""

    column: int | None = None  # 1-based, in characters
    text: str | None = None  # the line as written

    def __str__(self) -> str:
        head = f"{self.file}:{self.line}:{self.column}: {self.message}"
        if self.text is None or self.column is None:
            return head
        printable = "".join(c if c.isprintable() else " " for c in self.text)  # a tab too: the caret stays under it
        shown, caret = _window(printable, self.column - 1)
        gutter = f"{self.line:>5} | "
        return f"{head}\n{gutter}{shown}\n{' ' * (len(gutter) - 2)}| {' ' * caret}^"


def _window(line: str, column: int, width: int = 100) -> tuple[str, int]:
    """A long line (a prompt) cut to `width` characters around `column`; the caret's new offset."""
    if len(line) <= width:
        return line, column
    start = max(0, min(column - width // 2, len(line) - width))
    shown = line[start : start + width]
    caret = column - start
    if start:
        shown, caret = "..." + shown[3:], caret
    if start + width < len(line):
        shown = shown[:-3] + "..."
    return shown, caret


def _line_column(text: str, index: int) -> tuple[int, int]:
    before = text[:index]
    return before.count("\n"), index - (before.rfind("\n") + 1)


def _source_line(text: str, line: int) -> str:
    lines = text.split("\n")
    return lines[line].rstrip("\r") if 0 <= line < len(lines) else ""


def _found(problem: str) -> str | None:
    """What PyYAML found where it expected something else, e.g. ']' or '<scalar>'."""
    match = re.search(r"(?:found|got) '([^']*)'$", problem)
    return match.group(1) if match else None


def _unclosed_bracket(text: str, index: int) -> yaml.Mark | None:
    """The innermost '[' or '{' still open at `index` of `text` (reading tokens up to there)."""
    opened: list[yaml.Mark] = []
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if token.start_mark.index >= index:
                break
            if isinstance(token, (yaml.FlowSequenceStartToken, yaml.FlowMappingStartToken)):
                opened.append(token.start_mark)
            elif isinstance(token, (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken)) and opened:
                opened.pop()
    except yaml.YAMLError:
        pass
    return opened[-1] if opened else None


def _quoted(key: str, value: str) -> str:
    """`key: "value"` as the user could write it, or a shorter hint for a long or quoted value."""
    if len(value) <= 50 and '"' not in value and "\\" not in value:
        return f'e.g. {key}: "{value}"'
    return '(in double quotes, or single quotes if it holds a ")'


def syntax_problem(exc: yaml.MarkedYAMLError, text: str, file: str) -> SyntaxProblem:
    """What went wrong, said for a person: where to look (the spot PyYAML's marks point at, or a
    better one: the unclosed bracket or quote itself) and what to write instead."""
    problem, context = exc.problem or "", exc.context or ""
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line, mark.column) if mark else (0, 0)
    here = _source_line(text, line)
    found = _found(problem)
    message = "YAML cannot read this: check the quotes, brackets and indentation here and on the line above"

    if "cannot start any token" in problem:
        char = here[column : column + 1]
        if char == "\t":
            message = "a tab: YAML indents with spaces only (replace the tab with spaces)"
        else:
            message = f"a value cannot start with '{char}' unless it is in quotes: put the whole value in quotes"
    elif "quoted scalar" in context:
        if "escape" in problem and exc.problem_mark:
            message = (
                f"inside double quotes, a backslash starts an escape and '{here[column - 1 : column + 1]}' is not one: "
                "use single quotes, or write \\\\ for a backslash"
            )
        elif exc.context_mark:
            line, column = exc.context_mark.line, exc.context_mark.column
            here = _source_line(text, line)
            quote = here[column : column + 1] or '"'
            message = f"this {quote} opens a quoted value that is never closed: end the value with {quote}"
    elif "flow" in context and exc.problem_mark:
        opener = _unclosed_bracket(text, exc.problem_mark.index) or exc.context_mark
        if opener is not None:
            bracket = _source_line(text, opener.line)[opener.column : opener.column + 1] or "["
            closing, kind = ("]", "list") if bracket == "[" else ("}", "mapping")
            rest = _source_line(text, opener.line)[opener.column :]
            if exc.problem_mark.line == opener.line and closing in rest:
                message = f"the items of a {bracket}...{closing} {kind} are separated by commas: a ',' is missing here"
            else:
                line, column, here = opener.line, opener.column, _source_line(text, opener.line)
                message = f"a {kind} item is missing its closing '{closing}': this '{bracket}' is never closed " + (
                    "(the file ends inside it)"
                    if found == "<stream end>"
                    else f"(line {exc.problem_mark.line + 1} is still read as inside it)"
                )
    elif "mapping values are not allowed" in problem:
        before = here[:column]
        body = before.lstrip(" ")
        body = body[2:] if body.startswith("- ") else body
        if ": " in body:
            key, _, value = (body + here[column:]).partition(": ")
            message = f"a ': ' inside the value of '{key.strip()}': put the whole value in quotes, {_quoted(key.strip(), value.strip())}"
        else:
            column = len(here) - len(here.lstrip(" -"))
            key = here.strip(" -").partition(":")[0]
            message = (
                f"'{key}:' is indented more than the line above, so it is read as part of that line's value: "
                "line it up with the keys above it"
            )
    elif "expected <block end>" in problem or "expected <document start>" in problem:
        if found in ("]", "}"):
            message = f"a '{found}' with no '{'[' if found == ']' else '{'}' before it to close"
        elif found == "<scalar>" and here[:column].rstrip()[-1:] in ("'", '"'):
            quote = here[:column].rstrip()[-1]
            message = "text after the closing quote: put the whole value inside the quotes"
            if quote == "'":
                message += " (inside single quotes, write '' for one ', or use double quotes)"
        else:
            message = (
                "this line is not indented like the lines around it: the keys of one mapping, and the '-' of one list, "
                "start in the same column"
            )
    elif "could not find expected ':'" in problem and exc.context_mark:
        line, column = exc.context_mark.line, exc.context_mark.column
        here = _source_line(text, line)
        words = here[column:].strip()
        message = f"'{words}' has no ':' after it: write 'key: value', or indent it under the key it belongs to"
    elif "undefined alias" in problem:
        name = here[column + 1 :].split()[0] if here[column + 1 :].split() else ""
        message = f"'*{name}' names an anchor (&{name}) defined nowhere above: put the value in quotes if the '*' is text"
    elif "another document" in problem:
        message = "a second document starts here ('---'): a storyboard is one document"
    return SyntaxProblem(file, line + 1, message, column=column + 1, text=here)
