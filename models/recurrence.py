"""Recurring responsibilities (SPEC §3): each occurrence of an RRULE becomes a task.

A responsibility (kind "responsibility") may carry an RFC 5545 RRULE, e.g.
theme party day (主题党日) on the first Friday of each month,
`FREQ=MONTHLY;BYDAY=1FR`. The rule counts from the responsibility's created
date in the deployment's zone (DTSTART); occurrences are whole days.

`recur` creates one task item per occurrence from today up to
`RECUR_AHEAD_DAYS` ahead: same org, responsible person, category and
severity, the occurrence date in the title, due on the occurrence date,
source "self_check" (the unit's own standing duty, not an inspection
finding). Each task has the external reference `rrule-<number>-<YYYYMMDD>`,
unique, so a second run creates nothing and two concurrent runs create each
occurrence once.

The task is linked to its responsibility by that reference, not by
`parent_number`: `models.ledger` closes a parent once all its children are
closed (for split items, 分解下发), which would close a standing responsibility
as soon as its first occurrence was verified.

Rules are validated when they are set (`set_rrule`, `check_rrule`): a rule
that does not parse, carries its own DTSTART, or recurs more often than
daily is refused with `InputRefused` code "bad_rrule" and nothing is written.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from models import clock
from models.audit import append_event
from models.ledger import InputRefused, NewItem, create_item, get_item, view_of
from models.limits import TITLE_MAX
from models.permissions import Actor, check
from models.roles import FINISHED
from models.states import Action
from models.tables import Item
from models.texts import t

log = logging.getLogger(__name__)

#: Days ahead (from today, local) for which occurrences are created as tasks.
RECUR_AHEAD_DAYS = 7
#: Frequencies a responsibility may recur at: a task more often than daily is noise (SPEC §7).
ALLOWED_FREQUENCIES = frozenset({"YEARLY", "MONTHLY", "WEEKLY", "DAILY"})
#: Characters in a stored rule (the column's limit).
RRULE_MAX = 500
#: The kind that may recur, and the kind each occurrence becomes.
RECURRING_KIND, OCCURRENCE_KIND = "responsibility", "task"
#: Source of an occurrence: the unit's own standing duty.
OCCURRENCE_SOURCE = "self_check"
#: Event action written when a rule is set or cleared.
SET_RRULE_ACTION = "set_rrule"

BAD_RRULE = "bad_rrule"
NOT_A_RESPONSIBILITY = "not_a_responsibility"

_FREQ = re.compile(r"(?:^|;)FREQ=([A-Z]+)(?:;|$)")


class RecurrenceRefused(InputRefused):
    """A rule that cannot be used, or an item that cannot recur; nothing was written."""

    FALLBACK = MappingProxyType(
        {
            **InputRefused.FALLBACK,
            BAD_RRULE: "Cannot use the recurrence rule {rule!r}: {reason}.",
            NOT_A_RESPONSIBILITY: "Only responsibilities recur; #{number} is not one.",
        }
    )


def occurrence_ref(number: int, day: date) -> str:
    """The external reference of the task for the occurrence of #number on `day`."""
    return f"rrule-{number}-{day:%Y%m%d}"


def _start(dtstart: date) -> datetime:
    return datetime.combine(dtstart, time())


def _parse(rule: str, dtstart: date) -> rrule:
    parsed = rrulestr(rule, dtstart=_start(dtstart))
    if not isinstance(parsed, rrule):
        raise ValueError("one RRULE only")
    next(iter(parsed), None)  # some rules only fail when iterated (UNTIL against DTSTART)
    return parsed


def check_rrule(rule: str, *, dtstart: date | None = None) -> str:
    """The rule, normalised (no "RRULE:" prefix, upper case), or RecurrenceRefused "bad_rrule".

    Accepted: one RFC 5545 RRULE, at most daily, without its own DTSTART
    (the responsibility's created date is the start), at most `RRULE_MAX`
    characters. `dtstart` is only used to try the rule.
    """
    text = rule.strip()
    if text.upper().startswith("RRULE:"):
        text = text[len("RRULE:") :]
    text = text.strip().upper()

    def refuse(reason: str) -> RecurrenceRefused:
        return RecurrenceRefused(BAD_RRULE, {"rule": rule.strip()[:100], "reason": reason})

    if not text:
        raise refuse("empty")
    if len(text) > RRULE_MAX:
        raise refuse(f"longer than {RRULE_MAX} characters")
    if any(mark in text for mark in ("\n", "\r", "DTSTART", "RRULE:", "EXDATE", "RDATE")):
        raise refuse("one RRULE only, without DTSTART")
    frequency = _FREQ.search(text)
    if frequency is None:
        raise refuse("FREQ is required")
    if frequency.group(1) not in ALLOWED_FREQUENCIES:
        raise refuse("at most daily")
    try:
        _parse(text, dtstart or clock.now().date())
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise refuse(str(exc) or type(exc).__name__) from None
    return text


def occurrences(rule: str, dtstart: date, first: date, last: date) -> list[date]:
    """The days from `first` to `last` (both included) on which the rule recurs."""
    parsed = _parse(rule, dtstart)
    return [
        moment.date()
        for moment in parsed.between(_start(first), _start(last), inc=True)
        if first <= moment.date() <= last
    ]


def set_rrule(session: Session, actor: Actor, number: int, rule: str | None) -> Item:
    """Set (or, with None/"", clear) the RRULE of responsibility #number.

    Who may plan the item (its roadmap and timetable) may set its rule.
    Raises RecurrenceRefused ("bad_rrule", "not_a_responsibility"),
    InputRefused ("unknown_item") or PermissionRefused; nothing is written then.
    """
    item = get_item(session, number, lock=True)
    if item.kind != RECURRING_KIND:
        raise RecurrenceRefused(NOT_A_RESPONSIBILITY, {"number": number})
    check(actor, Action.PLAN, view_of(session, item))
    normalised = (
        check_rrule(rule, dtstart=item.created_at.date()) if rule and rule.strip() else None
    )
    if normalised == item.rrule:
        return item
    before = item.rrule
    item.rrule = normalised
    item.version += 1
    session.add(item)
    append_event(
        session,
        action=SET_RRULE_ACTION,
        item_number=item.number,
        actor_id=actor.member_id,
        from_status=item.status,
        to_status=item.status,
        data={"rrule": normalised, "from": before},
    )
    return item


@dataclass
class RecurReport:
    """What `recur` did: tasks created as (responsibility, occurrence day, task number)."""

    today: date
    responsibilities: int = 0
    created: list[tuple[int, date, int]] = field(default_factory=list)
    bad_rules: list[int] = field(default_factory=list)


def _occurrence_title(title: str, day: date, language: str) -> str:
    full = t(language, "occurrence_title", title=title, day=day.isoformat())
    if len(full) <= TITLE_MAX:
        return full
    room = TITLE_MAX - (len(full) - len(title)) - 1
    return t(language, "occurrence_title", title=title[:room] + "…", day=day.isoformat())


def recur(
    session: Session,
    *,
    today: date,
    zone: ZoneInfo,
    language: str = "zh",
    ahead_days: int = RECUR_AHEAD_DAYS,
) -> RecurReport:
    """Create the task of every occurrence from `today` to `today + ahead_days`, once.

    In the caller's transaction: each task through `models.ledger.create_item`
    (event, "assigned" notifications). A stored rule that no longer parses is
    logged and skipped. Running it again creates nothing.
    """
    report = RecurReport(today=today)
    last = today + timedelta(days=ahead_days)
    duties = session.exec(
        select(Item)
        .where(
            Item.kind == RECURRING_KIND,
            col(Item.rrule).is_not(None),
            col(Item.status).not_in(FINISHED),
        )
        .order_by(col(Item.number))
    ).all()
    report.responsibilities = len(duties)
    wanted: list[tuple[Item, date, str]] = []
    for duty in duties:
        assert duty.number is not None and duty.rrule is not None
        dtstart = clock.local(duty.created_at, zone).date()
        try:
            days = occurrences(duty.rrule, dtstart, today, last)
        except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
            log.warning(
                "responsibility #%s: cannot use its RRULE %r: %s", duty.number, duty.rrule, exc
            )
            report.bad_rules.append(duty.number)
            continue
        wanted.extend((duty, day, occurrence_ref(duty.number, day)) for day in days)
    refs = [ref for _, _, ref in wanted]
    existing = set(session.exec(select(Item.external_ref).where(col(Item.external_ref).in_(refs))))
    for duty, day, ref in wanted:
        if ref in existing:
            continue
        assert duty.number is not None
        try:
            with session.begin_nested():
                task = create_item(
                    session,
                    None,
                    NewItem(
                        kind=OCCURRENCE_KIND,
                        org_id=duty.org_id,
                        title=_occurrence_title(duty.title, day, language),
                        description=duty.description,
                        category=duty.category,
                        severity=duty.severity,
                        source=OCCURRENCE_SOURCE,
                        due_date=day,
                        responsible_id=duty.responsible_id,
                        external_ref=ref,
                    ),
                )
        except IntegrityError:
            # Another run created this occurrence first (the reference is unique).
            continue
        assert task.number is not None
        report.created.append((duty.number, day, task.number))
    return report
