"""One set of rules for learner ids, topic ids and event times, for serving and the data stage.

A learner or topic the pipeline trains on must be one that serving accepts in a request, so both
read these rules: ``serving.schemas`` builds its pydantic field types from them and
``data.validate`` applies :func:`id_problem` to every distinct id of an event table. Bounds come
from :mod:`serving.limits`. Pure Python (serving imports it without pandas).
"""

from __future__ import annotations

import re
from typing import Final, Literal

from serving import limits

IdKind = Literal["user_id", "topic_id"]

# C0 and C1 control characters (and DEL): never part of an id or a prompt word.
CONTROL_CHARS: Final = r"\x00-\x1f\x7f-\x9f"
# Invisible and bidirectional formatting characters: a zero-width space makes two ids that look
# the same differ, a right-to-left override makes an echoed id read backwards (soft hyphen,
# Arabic letter mark, Mongolian vowel separator, zero-width space/joiners and direction marks,
# line/paragraph separators and bidi embeddings/overrides, word joiner and invisible operators,
# bidi isolates, deprecated format characters, byte-order mark, interlinear annotations).
INVISIBLE_CHARS: Final = (
    r"\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
)
# An id: at least one character, none of them a control or invisible formatting character.
ID_PATTERN: Final = rf"^[^{CONTROL_CHARS}{INVISIBLE_CHARS}]+$"
_CONTROL = re.compile(rf"[{CONTROL_CHARS}]")
_INVISIBLE = re.compile(rf"[{INVISIBLE_CHARS}]")

MAX_LEN: Final[dict[str, int]] = {
    "user_id": limits.MAX_USER_ID_LEN,
    "topic_id": limits.MAX_TOPIC_LEN,
}
# Only topic ids have reserved names (internal pseudo-topics such as the global prior).
RESERVED_PREFIX: Final[dict[str, str | None]] = {
    "user_id": None,
    "topic_id": limits.RESERVED_TOPIC_PREFIX,
}
TIMESTAMP_MIN, TIMESTAMP_MAX = limits.TIMESTAMP_RANGE  # 2000-01-01 .. 2100-01-01 UTC


def id_rule_text(kind: IdKind) -> str:
    """What an id of this kind may be, for error messages (``allowed: ...``)."""
    text = f"1-{MAX_LEN[kind]} characters without control or invisible formatting characters"
    prefix = RESERVED_PREFIX[kind]
    if prefix:
        text += f", not starting with {prefix!r} (reserved)"
    return text


def id_problem(value: str, kind: IdKind) -> str | None:
    """Why ``value`` is not an acceptable id of this kind, or None when it is."""
    if not value:
        return "empty"
    if len(value) > MAX_LEN[kind]:
        return f"longer than {MAX_LEN[kind]} characters"
    if _CONTROL.search(value):
        return "contains a control character"
    found = _INVISIBLE.search(value)
    if found:
        return f"contains an invisible formatting character (U+{ord(found.group()):04X})"
    prefix = RESERVED_PREFIX[kind]
    if prefix and value.startswith(prefix):
        return f"starts with the reserved prefix {prefix!r}"
    return None


def check_id(value: str, kind: IdKind) -> str:
    """Pydantic AfterValidator body: return the id or raise ValueError saying why not."""
    problem = id_problem(value, kind)
    if problem:
        raise ValueError(f"{kind} {problem}; allowed: {id_rule_text(kind)}")
    return value


def timestamp_rule_text() -> str:
    """The accepted event-time range, for error messages."""
    return f"integer seconds in [{TIMESTAMP_MIN}, {TIMESTAMP_MAX}] (2000-01-01 .. 2100-01-01 UTC)"
