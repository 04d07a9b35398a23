"""What fal's answers mean for a shot: transient (try again) or permanent, in words that name the
shot, the request and fal's reason, with every part of the key scrubbed out.

Also the messages of the money states that several modules raise: an uncertain submit, and why a
shot whose journal record is not live is not submitted again (without `--force`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable

import httpx
from fal_client import FalClientError, FalClientHTTPError

from shotflow.errors import GenerationError
from shotflow.generation.fal.key import secret_parts
from shotflow.money import usd

if TYPE_CHECKING:
    from shotflow.model import ShotPlan
    from shotflow.store.journal import JobRecord

# what can go wrong while talking to fal (status polls, result fetches, cancels), as
# GenerationError carries it
FAL_ERRORS = (FalClientError, httpx.HTTPError, ValueError, KeyError, TypeError)
# answers to a status poll or a result fetch worth asking again, which fal_client 1.x asks again
# itself (as do its ingress 502-504s: `retried_by_fal_client`); a submit has its own,
# `shotflow.generation.fal.submit.SUBMIT_NOT_TAKEN`
FAL_CLIENT_RETRY_CODES = (408, 409, 429)

Scrub = Callable[[str], str]


# a frame sent as a data URI, as fal may quote it back (a validation error's `input`)
DATA_URI = re.compile(r"data:[\w.+/-]*;base64,[A-Za-z0-9+/=]+")


class Scrubber:
    """Replaces the key, and each long enough part of it, with `[fal key]`, and any data URI fal
    quotes back (a frame we sent) with `data:...[N characters]`: neither reaches a message, the
    journal or a log."""

    def __init__(self, key: str | None):
        self._secrets = secret_parts(key)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[fal key]")
        return scrub_data_uris(text)


def scrub_data_uris(text: str) -> str:
    return DATA_URI.sub(lambda m: f"{m.group(0).split(',', 1)[0]},[{len(m.group(0))} characters]", text)


def status_code(exc: BaseException) -> int | None:
    return exc.status_code if isinstance(exc, FalClientHTTPError) else None


def retried_by_fal_client(exc: BaseException) -> bool:
    """Whether fal_client already tried this status poll, result fetch or cancel again itself (its
    10 tries) before raising `exc`, so no layer of ours retries it (shotflow.generation.retry).

    As fal_client 1.x decides it: transport errors and timeouts; 408, 409, 429; a 502-504 from
    fal's ingress (a page without `x-fal-request-id` that names nginx), unless it is a 504 for
    the request's own timeout."""
    if isinstance(exc, httpx.TransportError):
        return True
    if not isinstance(exc, FalClientHTTPError):
        return False
    headers = {name.lower() for name in exc.response_headers}
    if exc.status_code == 504 and "x-fal-request-timeout-type" in headers:
        return False
    if exc.status_code in (502, 503, 504) and "x-fal-request-id" not in headers:
        try:
            return "nginx" in exc.response.text
        except Exception:  # a streamed body that was never read
            return False
    return exc.status_code in FAL_CLIENT_RETRY_CODES


def classify(exc: BaseException, shot: str, endpoint: str, doing: str, *, scrub: Scrub = lambda text: text) -> GenerationError:
    """What a failed call to fal means for the shot: transient (retry) or permanent."""
    if isinstance(exc, FalClientHTTPError):
        return http_error(exc.status_code, exc.message, shot, endpoint, doing, scrub=scrub)
    if isinstance(exc, httpx.TimeoutException):
        return GenerationError(shot, f"timed out while {doing} ({endpoint})", transient=True)
    if isinstance(exc, httpx.HTTPError):
        return GenerationError(
            shot, f"could not reach fal while {doing}: {type(exc).__name__}: {scrub(str(exc))}", transient=True
        )
    if isinstance(exc, FalClientError):
        return GenerationError(shot, f"fal_client failed while {doing}: {scrub(str(exc))}", transient=True)
    return GenerationError(
        shot, f"unexpected answer from fal while {doing}: {type(exc).__name__}: {scrub(str(exc))}", transient=True
    )


def http_error(
    code: int, detail: Any, shot: str, endpoint: str, doing: str, *, scrub: Scrub = lambda text: text
) -> GenerationError:
    reason = scrub(fal_reason(detail))
    if code in (401, 403):
        return GenerationError(shot, f"fal rejected the API key ({code}: {reason}) while {doing}; check FAL_KEY", transient=False)
    if code == 404 and doing == "submitting":
        return GenerationError(shot, f"fal has no endpoint '{endpoint}' (404: {reason}); check the model name", transient=False)
    if code == 422:
        return GenerationError(shot, f"fal refused the request to {endpoint} (422): {reason}", transient=False)
    transient = code in FAL_CLIENT_RETRY_CODES or code >= 500
    return GenerationError(shot, f"fal answered {code} while {doing} ({endpoint}): {reason}", transient=transient)


def fal_reason(detail: Any) -> str:
    """fal's `detail`, readable: a 422's list of {loc, msg, type} becomes `field: msg [type]; ...`."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                text = f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", ""))
                if item.get("type"):
                    text += f" [{item['type']}]"
                parts.append(text)
            else:
                parts.append(str(item))
        return "; ".join(parts) or "no reason given"
    if isinstance(detail, dict):
        return fal_reason([detail])
    return str(detail).strip() or "no reason given"


def price(cost: Any) -> str:
    """'about $1.40' or 'at an unknown price' for a shot's estimated cost."""
    return "at an unknown price" if cost is None else f"about {usd(cost)}"


def forcing(shot: ShotPlan, does: str = "buys a new one") -> str:
    """What `--force SHOT` does, at its price: "`--force a` buys a new one (about $1.40)". A shot
    with takes is forced whole (every take): the way to one more take is `shotflow reroll`."""
    if shot.takes == 1:
        return f"`--force {shot.id}` {does} ({price(shot.cost)})"
    every = None if shot.cost is None else shot.cost * shot.takes
    return (
        f"`shotflow reroll STORYBOARD {shot.id}` buys one more take instead ({price(shot.cost)}); `--force {shot.id}` "
        f"generates all {shot.takes} takes again ({price(every)})"
    )


def stopped_at(shot: ShotPlan, message: str) -> GenerationError:
    """A shot stopped at a request fal took (or may have): trying again cannot help, the user decides."""
    return GenerationError(shot.label, message, transient=False)


def uncertain_of(record: JobRecord, shot: ShotPlan) -> GenerationError:
    """The shot is blocked: its submit may have reached fal and nobody knows (or kept) its id, or
    its record is in a state this version does not know."""
    again = forcing(shot, "submits it again and pays again")
    if not record.known:
        return stopped_at(
            shot,
            f"uncertain: its journal record is in state '{record.state}', which this version of shotflow does not "
            f"know (written by a newer one?), request {record.request_id or 'unknown'}; fal may have billed it. "
            f"It is not submitted again automatically; {again}",
        )
    sent_at = record.intended_at or record.updated_at
    sent = f"sent at {sent_at}" if sent_at else "sent at an unknown time"
    because = f" ({record.error})" if record.error else ""
    return stopped_at(
        shot,
        f"uncertain: its submit ({sent}) may have reached fal{because}, and fal may have billed it. It is not "
        f"submitted again automatically; check fal's dashboard, then {again}",
    )


def blocked_error(shot: ShotPlan, record: JobRecord) -> GenerationError:
    """Why a shot whose journal record is not live is not submitted (without force)."""
    rid = record.request_id or "-"
    if record.state in ("intended", "uncertain") or not record.known:
        return uncertain_of(record, shot)
    if record.state in ("refused", "failed"):
        billed = " and paid for again" if record.state == "failed" else ""
        return stopped_at(
            shot,
            f"{record.error} (remembered from fal request {rid}; the same request would be refused again{billed}: "
            f"change the shot, or {forcing(shot, 'sends it again')})",
        )
    if record.state == "lost":
        return stopped_at(
            shot, f"fal request {rid} was paid for but is lost ({record.error}); only {forcing(shot, 'buys it again')}"
        )
    if record.state == "quarantined":
        return quarantined_error(shot, rid, f" ({record.quarantine_reason}) and is kept aside at {record.quarantine_path}")
    return stopped_at(shot, f"fal request {rid} is {record.state}; {forcing(shot)}")


def quarantined_error(shot: ShotPlan, request_id: str | None, where: str) -> GenerationError:
    """A paid clip that failed verification and is kept aside (`where`: why, and where it is)."""
    return stopped_at(
        shot,
        f"the clip of fal request {request_id} (paid for) failed verification{where}: `shotflow accept {shot.id}"
        f"{f' STORYBOARD --take {shot.take}' if shot.takes > 1 else ''}` uses it, {forcing(shot)}",
    )
