"""The fal key's hygiene: its one accepted shape, and the pieces of it that must never be shown.

`clean_key` strips what a paste or a `.env` file adds around a key (a trailing newline, spaces)
and refuses anything that is not `KEY_ID:KEY_SECRET` in printable ASCII, naming `FAL_KEY` and the
expected shape but never any character of the key itself. `secret_parts` lists the strings a
scrubber must remove from anything that leaves the process (messages, journals, logs, artifacts).
"""

from __future__ import annotations

from shotflow.errors import KeyShapeError

EXPECTED_SHAPE = "KEY_ID:KEY_SECRET"
# a part shorter than this is too common a string to scrub usefully (it would mangle messages)
MIN_SECRET_PART = 6


def _shape_problem(key: str) -> str | None:
    """What is wrong with the shape of a stripped key, in words that quote none of it."""
    if not key:
        return "it is empty"
    for ch in key:
        code = ord(ch)
        if code < 0x20 or code == 0x7F:
            return "it contains a control character (a line break or a tab?)"
        if code > 0x7E:
            return "it contains a character that is not printable ASCII"
        if ch == " ":
            return "it contains a space"
    colons = key.count(":")
    if colons == 0:
        return "it has no ':' between the key id and the secret"
    if colons > 1:
        return f"it has {colons} ':' characters, not one"
    key_id, _, secret = key.partition(":")
    if not key_id:
        return "the key id before ':' is empty"
    if not secret:
        return "the secret after ':' is empty"
    return None


def clean_key(raw: str) -> str:
    """The key without surrounding whitespace; KeyShapeError if it is not `KEY_ID:KEY_SECRET`.

    The error names FAL_KEY and the expected shape and never echoes any part of the key."""
    if not isinstance(raw, str):
        raise KeyShapeError(f"FAL_KEY is not text: expected the shape {EXPECTED_SHAPE}")
    key = raw.strip()
    problem = _shape_problem(key)
    if problem:
        raise KeyShapeError(
            f"FAL_KEY is not a fal key: {problem}; expected the shape {EXPECTED_SHAPE} "
            f"(printable ASCII, no spaces; copy it again from fal's dashboard)"
        )
    return key


def secret_parts(key: str | None) -> tuple[str, ...]:
    """The strings to scrub from anything shown or written: the key itself (as given and
    stripped) and each ':'-part of at least MIN_SECRET_PART characters, longest first (so the whole key is
    replaced before its halves)."""
    if not key:
        return ()
    parts = {key, key.strip()} - {""}
    for piece in key.strip().split(":"):
        if len(piece) >= MIN_SECRET_PART:
            parts.add(piece)
    return tuple(sorted(parts, key=lambda p: (-len(p), p)))
