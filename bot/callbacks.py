"""Our own compact callback data (≤ 64 bytes), re-checked on the server on every press.

Buttons must keep working in a three-week-old message after restarts, so the
data carries everything needed — verb, item number, the item version the
button was drawn for, an argument — and nothing lives in memory. A forged
press decodes to something the domain then refuses; garbage decodes to None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Telegram's limit on callback_data, in bytes.
MAX_BYTES = 64

#: Verbs on buttons → the domain action or bot view they stand for.
VERBS = {
    "ack": "acknowledge",
    "sub": "submit",
    "ver": "verify",
    "rej": "reject",
    "xa": "extend_approve",
    "xd": "extend_deny",
    "itm": "details",
    "pg": "page",
    # The conversations' own (bot/conversations/): a guided /new's answer, "submit anyway".
    "nw": "new_flow",
    "sb": "submit_flow",
}
_ACTION_VERBS = {action: verb for verb, action in VERBS.items()}
_PATTERN = re.compile(r"^([a-z]{2,3}):(\d{1,12}):(\d{1,9})(?::([A-Za-z0-9_.\-]{1,30}))?$")


@dataclass(frozen=True)
class Press:
    """A decoded button press. For `page`, `number` is the page and `arg` the view."""

    action: str
    number: int
    version: int = 0
    arg: str = ""


def encode(action: str, number: int, version: int = 0, arg: str = "") -> str:
    """The callback data for a button; raises ValueError past Telegram's 64 bytes."""
    data = f"{_ACTION_VERBS[action]}:{number}:{version}" + (f":{arg}" if arg else "")
    if len(data.encode()) > MAX_BYTES or not _PATTERN.match(data):
        raise ValueError(f"callback data {data!r} does not fit")
    return data


def decode(data: str | None) -> Press | None:
    """The press a button stands for, or None for anything we did not draw."""
    match = _PATTERN.match(data or "")
    if match is None or match.group(1) not in VERBS:
        return None
    verb, number, version, arg = match.groups()
    return Press(VERBS[verb], int(number), int(version), arg or "")
