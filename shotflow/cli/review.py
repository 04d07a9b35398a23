"""The review gates in the terminal: `shotflow run --review` (or a storyboard's `review: true`) run
on a terminal asks the gates' questions here, with prompts, instead of waiting in the Prefect UI.

The questions and what an answer does are the gates' own (shotflow.review, shotflow.picking); the
flow asks them through `flows.review.set_answerer`, which checks each answer with the same form
as the UI's. Here each question is shown (the cost table; for the picks, a sheet of a frame of
every take, written to a PNG whose path is printed and opened where a desktop is) and its
fields asked one by one. The end of input (or Ctrl-C while a question waits) cancels at the first
gate (nothing is paid) and keeps the picks shown at the second.
"""

from __future__ import annotations

import dataclasses
import os
import re
import select
import shutil
import subprocess
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Mapping, TextIO

from shotflow import interrupt
from shotflow.model import Plan
from shotflow.money import usd
from shotflow.picking import PickQuestion
from shotflow.review import ApprovalQuestion, Field


class EndOfInput(Exception):
    pass


class TerminalReview:
    """The answerer of the gates (`flows.review.set_answerer`): prompts on `out`, answers from `given`."""

    def __init__(self, plan: Plan, sheets: Path, *, given: TextIO | None = None, out: TextIO | None = None, backend: str = "fal"):
        self.plan, self.sheets, self.backend = plan, Path(sheets), backend
        self.given, self.out = given or sys.stdin, out or sys.stdout

    def __call__(self, question: ApprovalQuestion | PickQuestion) -> Mapping[str, Any]:
        self._say("")
        self._say(_plain(question.markdown()))
        if isinstance(question, PickQuestion):
            self._say(f"\nA frame of every take: {self._sheet(question)}")
        try:
            return {f.name: self._ask(f) for f in question.fields}
        except EndOfInput:
            if isinstance(question, ApprovalQuestion):
                self._say("\n(no answer: the run is cancelled; nothing is paid)")
                return {"approve": False}
            self._say("\n(no answer: the picks shown are kept)")
            return {}

    # --- one field ---------------------------------------------------------------------------

    def _ask(self, f: Field) -> Any:
        while True:
            text = self._read(f"{f.title} ({f.description}){_hint(f)}: ").strip()
            try:
                return _value(f, text)
            except ValueError as exc:
                self._say(f"  {exc}")

    def _read(self, prompt: str) -> str:
        """A line typed in answer; EndOfInput at the end of input, or once Ctrl-C asked the run to stop."""
        self.out.write(prompt)
        self.out.flush()
        try:
            fd = self.given.fileno()
        except (AttributeError, OSError, ValueError):  # not a file: read it as it is
            fd = None
        while fd is not None and not select.select([fd], [], [], 0.25)[0]:
            if interrupt.stop_requested():
                raise EndOfInput
        line = self.given.readline()
        if not line:
            raise EndOfInput
        return line

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # --- the takes sheet ---------------------------------------------------------------------

    def _sheet(self, question: PickQuestion) -> Path:
        """One row per shot of the question, a labelled frame per take; opened where a desktop is."""
        from shotflow.assembly.contactsheet import takes_sheet

        takes, clips = [], []
        for choice in question.choices:
            shot = self.plan.shot(choice.shot)
            numbers = sorted({*choice.clips, *choice.failed})
            for take in numbers:
                takes.append(dataclasses.replace(shot, take=take, takes=len(numbers)))
                clips.append(choice.clips.get(take))
        dst = self.sheets / f"{question.key}.png"
        dst.parent.mkdir(parents=True, exist_ok=True)
        picked = {c.shot: c.picked for c in question.choices}
        sheet = takes_sheet(takes, clips, dst, picked=picked, title=f"{question.title}: pick a take", backend=self.backend)
        _open(sheet)
        return sheet


def _hint(f: Field) -> str:
    if f.kind == "bool":
        return " [Y/n]" if f.default else " [y/N]"
    if f.kind == "choice":
        return f" [{'/'.join(map(str, f.choices))}; Enter: {f.default}]"
    if f.kind == "choices":
        return f" [any of {', '.join(map(str, f.choices))}, comma-separated; Enter: none]"
    if f.kind == "money":
        return f" [dollars; Enter: {usd(f.default) if f.default is not None else 'none'}]"
    return " [Enter: none]"


def _value(f: Field, text: str) -> Any:
    """The answer typed for `f`, as the form takes it; ValueError saying what to type instead."""
    if not text:
        if f.kind == "choices":
            return list(f.default or ())
        return (f.default or "") if f.kind == "text" else f.default  # the form's "no text" is ""
    if f.kind == "bool":
        if text.lower() in ("y", "yes"):
            return True
        if text.lower() in ("n", "no"):
            return False
        raise ValueError("type y or n")
    if f.kind == "choice":
        found = [c for c in f.choices if str(c) == text]
        if not found:
            raise ValueError(f"type one of {', '.join(map(str, f.choices))}")
        return found[0]
    if f.kind == "choices":
        names = [n for n in re.split(r"[,\s]+", text) if n]
        unknown = [n for n in names if n not in map(str, f.choices)]
        if unknown:
            raise ValueError(f"not offered: {', '.join(unknown)} (offered: {', '.join(map(str, f.choices))})")
        return [c for c in f.choices if str(c) in names]
    if f.kind == "money":
        try:
            amount = Decimal(text.lstrip("$").replace(",", ""))
        except InvalidOperation:
            raise ValueError("type an amount of dollars, e.g. 4.50") from None
        if not amount.is_finite() or amount < 0:
            raise ValueError("type an amount of dollars, e.g. 4.50")
        return float(amount)
    return text


def _plain(markdown: str) -> str:
    """The gate's markdown as a terminal shows it: no emphasis marks, images named, not inlined."""
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"[\1]", markdown)
    return text.replace("**", "").replace("# ", "")


def _open(path: Path) -> None:
    """Open the sheet in the desktop's image viewer, where there is a desktop; never waits for it."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return
    opener = shutil.which("xdg-open") or shutil.which("open")
    if opener:
        subprocess.Popen([opener, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
