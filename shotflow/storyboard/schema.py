"""The storyboard format (version 1): the user's contract, as a pydantic schema, and its shape problems.

This module only says what a storyboard looks like (and the kinds of schedule it may declare:
`SCHEDULE_KINDS`). Whether each shot is something its model can render is
`shotflow.storyboard.modelrules`'s job, since that depends on the model catalog.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any, Iterator, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from shotflow.catalog.inputs import INT64_MAX, INT64_MIN, int64_problem
from shotflow.errors import Problem, StoryboardError
from shotflow.storyboard.templating import BUILTINS
from shotflow.storyboard.yamlsource import Located

SHOT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
ASPECT_PATTERN = r"^[1-9][0-9]?:[1-9][0-9]?$"
RESOLUTION_PATTERN = r"^[1-9][0-9]{2,3}p$"
MAX_SHOTS = 500
MAX_INTERVAL = 10 * 365 * 24 * 3600  # seconds; a schedule further apart is an rrule's job
MAX_TAKES = 10  # paid generations of one shot in a run (more takes come one at a time: `shotflow reroll`)
DAY = 24 * 3600

AspectRatio = Field(pattern=ASPECT_PATTERN, description='Width:height, e.g. "16:9", "9:16", "1:1"')
Resolution = Field(pattern=RESOLUTION_PATTERN, description='Lines of the short side, e.g. "720p"')


def or_list(values) -> str:
    """Choices as a message says them: "a", "a or b", "a, b or c"."""
    values = [str(v) for v in values]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


class Strict(BaseModel):
    # NaN and infinity are never a valid value (a NaN passes every range check by failing it)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# the cuts a storyboard can ask for: a plain cut, or an overlap drawn by ffmpeg's xfade
TransitionType = Literal[
    "cut", "crossfade", "fade", "wipeleft", "wiperight", "wipeup", "wipedown", "slideleft", "slideright", "slideup", "slidedown"
]


class Transition(Strict):
    """How one clip gives way to the next: a cut, or an overlap of `seconds`."""

    type: TransitionType = Field(
        "cut",
        description="cut; crossfade (one picture dissolves into the other); fade (through a colour); "
        "wipeleft, wiperight, wipeup, wipedown (the next picture wipes in); slideleft, slideright, slideup, slidedown",
    )
    seconds: float = Field(
        0.5, gt=0, le=5, description="Length of the overlap, in whole frames at output.fps (not used by a cut)"
    )
    color: Literal["black", "white"] | None = Field(None, description="A fade's colour (default black); fade only")

    @model_validator(mode="after")
    def _colour_is_for_fades(self):
        if self.color is not None and self.type != "fade":
            raise ValueError(f"color: only a fade goes through a colour, not a {self.type}")
        return self


class Soundtrack(Strict):
    path: str = Field(min_length=1, description="An audio file, relative to the storyboard's folder")
    volume: float = Field(1.0, ge=0, le=4, description="Gain applied to the soundtrack under the clips' own audio")


class Output(Strict):
    path: str | None = Field(
        None, description="The final video; default out/<storyboard name>.mp4; relative to the folder the run starts in"
    )
    resolution: Literal["360p", "480p", "540p", "720p", "1080p"] = Field("720p", description="Of the final video (short side)")
    aspect_ratio: str | None = Field(
        None, pattern=ASPECT_PATTERN, description="Of the final video; default defaults.aspect_ratio, else 16:9"
    )
    fps: int = Field(24, ge=1, le=60)
    fit: Literal["pad", "crop"] = Field("pad", description="pad (letterbox) or crop clips of another shape")
    transition: Transition = Field(default_factory=Transition, description="Every cut's transition, unless a shot sets its own")
    audio: Soundtrack | None = Field(None, description="Optional soundtrack mixed under the clips")
    existing: Literal["keep", "replace"] = Field(
        "keep",
        description="An earlier, different video at the output path: keep (renamed NAME.<its time>.mp4, with its "
        "manifest and contact sheet) or replace",
    )


class Defaults(Strict):
    """Values every shot inherits unless it sets its own."""

    model: str | None = Field(None, description="A model alias or a full fal endpoint id")
    duration: float | None = Field(None, gt=0, le=60)
    aspect_ratio: str | None = Field(None, pattern=ASPECT_PATTERN, description="Requested from every model that takes one")
    resolution: str | None = Field(None, pattern=RESOLUTION_PATTERN, description="Asked of every model that takes one")
    negative_prompt: str | None = Field(None, description="Sent to every model that takes one")
    takes: int | None = Field(None, ge=1, le=MAX_TAKES, description="Paid generations of every shot (default 1)")


class Shot(Strict):
    id: str = Field(pattern=SHOT_ID_PATTERN, description="Unique, safe as a file name")
    prompt: str = Field(min_length=1)
    model: str | None = None
    duration: float | None = Field(None, gt=0, le=60, description="Seconds; mapped to each model's own encoding")
    seed: int | None = Field(None, ge=INT64_MIN, le=INT64_MAX, description="A whole number; sent to models that take one")
    aspect_ratio: str | None = Field(None, pattern=ASPECT_PATTERN)
    resolution: str | None = Field(None, pattern=RESOLUTION_PATTERN, description="What this shot asks its model for")
    negative_prompt: str | None = None
    params: dict[str, Any] = Field(default_factory=dict, description="Model-specific fields, checked against the model")
    transition: Transition | None = Field(None, description="The cut INTO this shot; default output.transition")
    takes: int | None = Field(
        None, ge=1, le=MAX_TAKES, description="Paid generations of this shot to pick from (default defaults.takes, else 1)"
    )
    # continuity: the first (and last) frame; the shot is then sent to its model's image endpoint
    from_: str | None = Field(
        None,
        alias="from",
        pattern=SHOT_ID_PATTERN,
        description="The id of a shot whose last frame is this shot's first frame (the shots run in that order)",
    )
    image: str | None = Field(
        None, min_length=1, description="A still as the first frame: a path relative to the storyboard's folder, or an https URL"
    )
    end_image: str | None = Field(
        None, min_length=1, description="A still as the last frame, on models whose image endpoint takes one (path or https URL)"
    )

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the prompt is empty")
        return value


# the kinds of schedule, each a field of `Schedule`: the one list of them (deployments, the CLI
# and prefect.yaml read a schedule through `kind`, `describe` and `settings`)
SCHEDULE_KINDS = ("cron", "interval", "rrule")


class Schedule(Strict):
    """When the storyboard renders itself (as a deployment): one of cron, interval or rrule."""

    cron: str | None = Field(None, description='Five fields, e.g. "0 9 * * 1-5"')
    interval: int | None = Field(None, ge=60, le=MAX_INTERVAL, description="Seconds between runs")
    rrule: str | None = Field(None, description="An RFC 5545 recurrence rule")
    timezone: str = Field("UTC", description="IANA name, e.g. Europe/Paris")
    active: bool = True

    @model_validator(mode="after")
    def _exactly_one(self):
        given = [k for k in SCHEDULE_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {or_list(SCHEDULE_KINDS)} (got {', '.join(given) or 'none'})")
        return self

    @field_validator("cron", "rrule")
    @classmethod
    def _parses(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A cron line cronsim reads, an rrule dateutil reads (what Prefect reads them with)."""
        if value is not None:
            from cronsim import CronSim, CronSimError
            from dateutil.rrule import rrulestr

            try:
                CronSim(value, datetime(2025, 1, 1)) if info.field_name == "cron" else rrulestr(value)
            except (CronSimError, ValueError, TypeError) as exc:
                raise ValueError(f"invalid {info.field_name} {value!r}: {exc}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}: use an IANA name such as Europe/Paris or UTC") from None
        return value

    @property
    def kind(self) -> str:
        """cron, interval or rrule: the one this schedule gives."""
        return next(k for k in SCHEDULE_KINDS if getattr(self, k) is not None)

    @property
    def value(self) -> str | int:
        return getattr(self, self.kind)

    def describe(self) -> str:
        """When it renders, in words: "0 9 * * 1-5 (Europe/Paris)", "every 3600 s (UTC)"."""
        when = f"every {self.value} s" if self.kind == "interval" else self.value
        return f"{when} ({self.timezone})"

    def settings(self) -> dict[str, Any]:
        """The schedule as a Prefect deployment states it (an item of prefect.yaml's `schedules:`)."""
        return {"timezone": self.timezone, "active": self.active, self.kind: self.value}


VarValue = str | int | float


class Review(Strict):
    """The review gates: approve the plan and its price before paying, then pick a take of each shot."""

    timeout: int = Field(DAY, ge=60, le=30 * DAY, description="Seconds a gate waits; then the run ends without spending")


class Storyboard(Strict):
    """A storyboard file, format version 1."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, title="shotflow storyboard")

    version: Literal[1] = Field(description="Format version; 1")
    title: str | None = Field(None, min_length=1)
    description: str | None = None
    schedule: Schedule | None = Field(None, description="Render on a schedule when deployed")
    vars: dict[str, VarValue] = Field(default_factory=dict, description="Values for {{ name }} placeholders")
    defaults: Defaults = Field(default_factory=Defaults)
    output: Output = Field(default_factory=Output)
    review: bool | Review = Field(
        False, description="true (or {timeout: SECONDS}): wait for approval before paying and for a pick of each shot's take"
    )
    shots: list[Shot] = Field(min_length=1, max_length=MAX_SHOTS)

    @field_validator("vars")
    @classmethod
    def _var_names(cls, value: dict) -> dict:
        for name in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"var name {name!r}: use letters, digits and _")
            if name in BUILTINS:
                raise ValueError(f"var name {name!r} is set by each run (the run's date and time)")
        return value


def json_schema() -> dict[str, Any]:
    schema = Storyboard.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def _where(located: Located, loc: tuple) -> tuple[str | None, str]:
    """The shot (its id, else its position) and the dotted field name of a path in the data."""
    shots = located.data.get("shots") if isinstance(located.data, dict) else None
    shot = None
    if len(loc) >= 2 and loc[0] == "shots" and isinstance(loc[1], int) and isinstance(shots, list):
        raw = shots[loc[1]] if loc[1] < len(shots) else None
        shot = str(raw.get("id")) if isinstance(raw, dict) and raw.get("id") is not None else f"#{loc[1] + 1}"
    rest = loc[2:] if shot else loc
    field = ".".join(str(x) if not isinstance(x, int) else f"[{x}]" for x in rest).replace(".[", "[") or "storyboard"
    return shot, field


def _bad_numbers(value: Any, loc: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """(path, what is wrong) for every number no field may hold, wherever it is (params and vars
    included): NaN, infinity, and whole numbers outside the signed 64-bit range."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _bad_numbers(item, loc + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _bad_numbers(item, loc + (i,))
    elif isinstance(value, float) and not math.isfinite(value):
        what = "NaN (not a number)" if math.isnan(value) else f"{'-' if value < 0 else ''}infinity"
        yield loc, f"{what} is not allowed: give a finite number"
    elif problem := int64_problem(value):
        yield loc, problem


def validation_problems(exc: ValidationError, located: Located, file: str, skip: frozenset = frozenset()) -> list[Problem]:
    """One Problem per pydantic error, skipping paths in `skip` (already reported otherwise)."""
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if any(loc[:n] in skip for n in range(1, len(loc) + 1)):
            continue
        shot, field = _where(located, loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown field '{loc[-1]}'"
        elif err["type"] == "missing":
            msg = f"'{loc[-1]}' is required"
        elif err["type"] == "string_pattern_mismatch" and loc[-1] == "id":
            msg = f"id {err['input']!r} is not safe as a file name: use letters, digits, - and _ (at most 64)"
        elif err["type"] == "literal_error":
            msg = f"{field}: {msg}, not {err['input']!r}"
        else:
            msg = f"{field}: {msg}"
        problems.append(Problem(file, located.line(loc), msg.replace("Value error, ", ""), shot))
    return problems


def duplicate_ids(located: Located, file: str) -> list[Problem]:
    """Shot ids used twice (case-insensitively: they name files), read from the raw data."""
    shots = located.data.get("shots") if isinstance(located.data, dict) else None
    problems: list[Problem] = []
    seen: dict[str, tuple[int, str]] = {}
    for i, raw in enumerate(shots if isinstance(shots, list) else []):
        shot_id = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(shot_id, str):
            continue
        if shot_id.lower() in seen:
            first_index, first_id = seen[shot_id.lower()]
            first_line = located.line(("shots", first_index, "id"))
            problems.append(
                Problem(
                    file,
                    located.line(("shots", i, "id")),
                    f"duplicate shot id (also at line {first_line} as '{first_id}')",
                    shot_id,
                )
            )
        else:
            seen[shot_id.lower()] = (i, shot_id)
    return problems


def parse_storyboard(located: Located, file: str) -> Storyboard:
    """Check the shape of a storyboard; every problem found, not just the first.

    Duplicate shot ids are reported here only alongside shape errors: otherwise validation
    reports them together with what it finds (see `duplicate_ids`)."""
    bad = dict(_bad_numbers(located.data))
    numbers = []
    for loc, what in bad.items():
        shot, field = _where(located, loc)
        numbers.append(Problem(file, located.line(loc), f"{field}: {what}", shot))
    try:
        board = Storyboard.model_validate(located.data)
    except ValidationError as exc:
        # a NaN or a huge number is said once, above, with its bound
        problems = numbers + validation_problems(exc, located, file, frozenset(bad)) + duplicate_ids(located, file)
        problems.sort(key=lambda p: p.line or 0)
        raise StoryboardError(problems) from None
    if numbers:
        raise StoryboardError(sorted(numbers, key=lambda p: p.line or 0))
    return board
