"""One exception family. Every message names the file, line, shot or model it concerns."""

from __future__ import annotations

from dataclasses import dataclass


class ShotflowError(Exception):
    """A user-facing error: the CLI prints its message, never a traceback."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a storyboard, located as precisely as we can."""

    file: str
    line: int | None
    message: str
    shot: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        who = f" shot '{self.shot}':" if self.shot else ""
        return f"{where}:{who} {self.message}"


class StoryboardError(ShotflowError):
    """A storyboard that cannot be run; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class BudgetError(ShotflowError):
    """A run whose estimate is over the budget the user set."""


class MissingKeyError(ShotflowError):
    """No fal key: raised before any work starts."""


class KeyShapeError(MissingKeyError):
    """A fal key that is not `KEY_ID:KEY_SECRET`; its message never quotes the key."""


class GenerationError(ShotflowError):
    """A shot that fal could not generate.

    `transient` says whether trying again may help (429, 5xx, timeouts) or not (422, 401,
    content policy, unknown endpoint)."""

    def __init__(self, shot: str, message: str, *, transient: bool):
        self.shot = shot
        self.reason = message
        self.transient = transient
        super().__init__(f"shot '{shot}': {message}")

    def __reduce__(self):
        # keyword-only `transient` defeats Exception's default pickling (Prefect pickles failures)
        return (_generation_error, (self.shot, self.reason, self.transient))


def _generation_error(shot: str, message: str, transient: bool) -> GenerationError:
    return GenerationError(shot, message, transient=transient)


class MediaError(ShotflowError):
    """A clip that is missing, truncated, corrupt or not a video."""


class AssemblyError(ShotflowError):
    """ffmpeg could not join the clips into the final video."""


class DownloadError(MediaError):
    """A generated clip that could not be fetched: `transient` says whether fetching the same URL
    again may help (a cut connection, a 5xx) or not (a host not allowed, too big, gone)."""

    def __init__(self, message: str, *, transient: bool):
        self.transient = transient
        super().__init__(message)

    def __reduce__(self):
        return (_download_error, (str(self), self.transient))


def _download_error(message: str, transient: bool) -> DownloadError:
    return DownloadError(message, transient=transient)
