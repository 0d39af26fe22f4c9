"""The item state machine of SPEC §3, as plain functions over plain strings.

Statuses: open → in_progress → submitted → closed, and cancelled beside them.
Every action a user can take on an item goes through `next_status`, including
the ones that leave the status alone (evidence, extensions, splitting,
delegation), so one table decides what an item in a given status accepts and a
forged or stale button is refused the same way as a typed command.

Refusals carry a machine-readable `code` and `params`; the zh/en sentences the
user reads live in the message catalogue, keyed by the code.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from models.limits import REASON_MAX


class Status(StrEnum):
    """The five statuses of SPEC §3; the same words as `models.roles.STATUSES`."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    SUBMITTED = "submitted"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class Action(StrEnum):
    """Everything a person can do to an item, besides looking at it."""

    ACKNOWLEDGE = "acknowledge"
    PLAN = "plan"
    NOTE = "note"
    SUBMIT = "submit"
    VERIFY = "verify"
    REJECT = "reject"
    CANCEL = "cancel"
    REOPEN = "reopen"
    # Status-neutral: allowed or refused by status, never moving it.
    ATTACH = "attach"
    EXTEND_REQUEST = "extend_request"
    EXTEND_DECIDE = "extend_decide"
    SPLIT = "split"
    DELEGATE = "delegate"


_OPEN, _IN_PROGRESS, _SUBMITTED, _CLOSED, _CANCELLED = (
    Status.OPEN,
    Status.IN_PROGRESS,
    Status.SUBMITTED,
    Status.CLOSED,
    Status.CANCELLED,
)

_STATUSES = frozenset(status.value for status in Status)
_ACTIONS = frozenset(action.value for action in Action)

#: (status, action) → new status, for the actions that move an item (SPEC §3).
TRANSITIONS: Mapping[tuple[str, str], str] = MappingProxyType(
    {
        (_OPEN, Action.ACKNOWLEDGE): _IN_PROGRESS,
        (_OPEN, Action.PLAN): _IN_PROGRESS,
        (_OPEN, Action.NOTE): _IN_PROGRESS,
        (_IN_PROGRESS, Action.PLAN): _IN_PROGRESS,
        (_IN_PROGRESS, Action.NOTE): _IN_PROGRESS,
        (_OPEN, Action.SUBMIT): _SUBMITTED,
        (_IN_PROGRESS, Action.SUBMIT): _SUBMITTED,
        (_SUBMITTED, Action.VERIFY): _CLOSED,
        (_SUBMITTED, Action.REJECT): _IN_PROGRESS,
        (_OPEN, Action.CANCEL): _CANCELLED,
        (_IN_PROGRESS, Action.CANCEL): _CANCELLED,
        (_SUBMITTED, Action.CANCEL): _CANCELLED,
        (_CLOSED, Action.REOPEN): _IN_PROGRESS,
    }
)

#: Status-neutral actions → the statuses that accept them. Finished items take
#: nothing but a reopen: their record is what was verified (or withdrawn), and
#: a look-back that finds a relapse reopens first, then works on the item.
#: A submitted item waits for its verdict, so it is not re-planned, split or
#: handed to someone else, but it still takes evidence (the verifier's own
#: photos) and a decision on an extension asked for before it was submitted.
NEUTRAL: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        Action.ATTACH: frozenset({_OPEN, _IN_PROGRESS, _SUBMITTED}),
        Action.EXTEND_REQUEST: frozenset({_OPEN, _IN_PROGRESS}),
        Action.EXTEND_DECIDE: frozenset({_OPEN, _IN_PROGRESS, _SUBMITTED}),
        Action.SPLIT: frozenset({_OPEN, _IN_PROGRESS}),
        Action.DELEGATE: frozenset({_OPEN, _IN_PROGRESS}),
    }
)

#: Actions that need a reason (SPEC §3): the person on the other end must learn why.
REASON_REQUIRED: frozenset[str] = frozenset({Action.REJECT, Action.CANCEL, Action.REOPEN})

# Codes of TransitionRefused, for the catalogue.
UNKNOWN_STATUS = "unknown_status"
UNKNOWN_ACTION = "unknown_action"
ALREADY_ACKNOWLEDGED = "already_acknowledged"
ALREADY_SUBMITTED = "already_submitted"
ALREADY_CLOSED = "already_closed"
ALREADY_CANCELLED = "already_cancelled"
NOT_SUBMITTED = "not_submitted"
NOT_CLOSED = "not_closed"
REASON_MISSING = "reason_required"
REASON_TOO_LONG = "reason_too_long"

#: English fallbacks, used only when the catalogue has no text for a code.
_FALLBACK = {
    UNKNOWN_STATUS: "Unknown status {status!r}.",
    UNKNOWN_ACTION: "Unknown action {action!r}.",
    ALREADY_ACKNOWLEDGED: "The item is already acknowledged.",
    ALREADY_SUBMITTED: "The item is submitted and awaits verification.",
    ALREADY_CLOSED: "The item is closed.",
    ALREADY_CANCELLED: "The item is cancelled.",
    NOT_SUBMITTED: "The item has not been submitted.",
    NOT_CLOSED: "Only a closed item can be reopened.",
    REASON_MISSING: "A reason is required to {action}.",
    REASON_TOO_LONG: "The reason is {length} characters; at most {max} are allowed.",
}


class Refused(Exception):
    """Base of every refusal the domain raises.

    `code` keys the zh/en sentence in the catalogue, `params` fill it in, and
    `str(exc)` is an English fallback for logs and for a code the catalogue
    lacks. Subclasses list their fallbacks in `FALLBACK`.
    """

    FALLBACK: Mapping[str, str] = MappingProxyType({})

    def __init__(self, code: str, params: Mapping[str, Any] | None = None) -> None:
        self.code = code
        # A copy, so the raiser's dict can't change the refusal afterwards.
        self.params: dict[str, Any] = dict(params or {})
        template = self.FALLBACK.get(code, code)
        try:
            message = template.format(**self.params)
        except (KeyError, IndexError, ValueError):
            # A fallback must never turn a refusal into a crash.
            message = template
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild from code and params (not from the message), e.g. across processes.
        return (type(self), (self.code, self.params))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.params!r})"


class TransitionRefused(Refused):
    """The item's status does not allow the action, or its reason is missing or too long.

    `params` always hold `status` and `action`; `reason_too_long` adds
    `length` and `max`.
    """

    FALLBACK = MappingProxyType(_FALLBACK)


def _status_refusal(status: str, action: str) -> str:
    # Say what is in the way, from the item's side: that is what the user can act on.
    if status == _CLOSED:
        return ALREADY_CLOSED
    if status == _CANCELLED:
        return ALREADY_CANCELLED
    if action == Action.REOPEN:
        return NOT_CLOSED
    if action in (Action.VERIFY, Action.REJECT):
        return NOT_SUBMITTED
    if status == _SUBMITTED:
        return ALREADY_SUBMITTED
    # Only acknowledge on an in_progress item is left.
    return ALREADY_ACKNOWLEDGED


def actions_allowed_in(status: str) -> frozenset[Action]:
    """The actions an item in `status` accepts, reasons aside.

    Raises TransitionRefused("unknown_status") for a status outside `Status`.
    """
    if status not in _STATUSES:
        raise TransitionRefused(UNKNOWN_STATUS, {"status": status, "action": ""})
    moving = {action for (source, action) in TRANSITIONS if source == status}
    neutral = {action for action, sources in NEUTRAL.items() if status in sources}
    return frozenset(Action(action) for action in moving | neutral)


def clean_reason(action: str, reason: str | None) -> str | None:
    """The reason as it should be stored: stripped, or None when blank.

    Guarantees the result is at most REASON_MAX characters, and present when
    the action needs one (`requires_reason`). Raises TransitionRefused
    ("reason_required" or "reason_too_long"); `params` carry `status` as "".
    """
    return _checked_reason("", action, reason)


def _checked_reason(status: str, action: str, reason: str | None) -> str | None:
    # Whitespace-only is "no reason": a blank line must not pass as 整改不到位.
    text = reason.strip() if reason is not None else ""
    if len(text) > REASON_MAX:
        raise TransitionRefused(
            REASON_TOO_LONG,
            {"status": status, "action": action, "length": len(text), "max": REASON_MAX},
        )
    if not text:
        if action in REASON_REQUIRED:
            raise TransitionRefused(REASON_MISSING, {"status": status, "action": action})
        return None
    return text


def next_status(status: str, action: str, reason: str | None = None) -> str:
    """The status an item in `status` has after `action`.

    Guarantees the result is one of `Status`, that it differs from `status`
    only for the transitions in `TRANSITIONS`, and that `closed` is reached
    only by verifying a submitted item. Status-neutral actions (`NEUTRAL`)
    return `status` unchanged where they are allowed.

    The status is checked before the reason, so a refusal names the more
    fundamental problem. A reason is stripped before it is judged; blank
    counts as missing; more than REASON_MAX characters is refused even where
    a reason is optional.

    Raises TransitionRefused with `code` one of: unknown_status,
    unknown_action, already_acknowledged, already_submitted, already_closed,
    already_cancelled, not_submitted, not_closed, reason_required,
    reason_too_long.
    """
    if status not in _STATUSES:
        raise TransitionRefused(UNKNOWN_STATUS, {"status": status, "action": action})
    if action not in _ACTIONS:
        raise TransitionRefused(UNKNOWN_ACTION, {"status": status, "action": action})
    target = TRANSITIONS.get((status, action))
    if target is None:
        if status not in NEUTRAL.get(action, frozenset()):
            raise TransitionRefused(
                _status_refusal(status, action), {"status": status, "action": action}
            )
        target = status
    _checked_reason(status, action, reason)
    return str(target)


def requires_reason(action: str) -> bool:
    """True for the actions that are refused without a reason: reject, cancel, reopen."""
    return action in REASON_REQUIRED


def counts_relapse(action: str) -> bool:
    """True when a successful `action` adds one to the item's relapses (回潮).

    Only a reopen does: a closed item that had to be reopened came back.
    """
    return action == Action.REOPEN


def counts_rejection(action: str) -> bool:
    """True when a successful `action` adds one to the item's rejections (整改不到位)."""
    return action == Action.REJECT


__all__ = [
    "NEUTRAL",
    "REASON_REQUIRED",
    "TRANSITIONS",
    "Action",
    "Refused",
    "Status",
    "TransitionRefused",
    "actions_allowed_in",
    "clean_reason",
    "counts_rejection",
    "counts_relapse",
    "next_status",
    "requires_reason",
]
