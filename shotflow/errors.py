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
    """A paid clip that did not reach the store.

    `quarantined` is None when it should be tried again later from the same URL (a 4xx/5xx, the
    network, a host not allowed, too big: the request keeps its URL until fal's media retention
    has passed); else the path where a complete copy that failed verification (wrong length, a
    stream still broken after the in-run attempts) is kept for the user to accept or replace.
    `reason` is the message without the URL; `status` the media host's HTTP answer, if any;
    `refused`: the URL itself was refused (not https, a host not allowed, too big): fetching it
    again waits for a setting to change, not for time to pass."""

    def __init__(
        self, message: str, *, reason: str | None = None, quarantined=None, status: int | None = None, refused: bool = False
    ):
        self.reason = reason if reason is not None else message
        self.quarantined = quarantined
        self.status = status
        self.refused = refused
        super().__init__(message)

    @property
    def transient(self) -> bool:
        """Try again later (not quarantined)."""
        return self.quarantined is None

    def __reduce__(self):
        return (_download_error, (str(self), self.reason, self.quarantined, self.status, self.refused))


def _download_error(message: str, reason: str | None, quarantined, status: int | None, refused: bool = False) -> DownloadError:
    return DownloadError(message, reason=reason, quarantined=quarantined, status=status, refused=refused)
