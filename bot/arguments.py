"""What people type after a command: the words, an item number, a date.

Pure functions, shared by every command family, so `/item 12`, `/submit ＃12`
and `/verify #12` read a number the same way, and `/new`'s DUE, `/plan`'s
date and `/extend`'s date the same way. A wrong shape raises InputRefused,
which the guard turns into one sentence.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from telegram import Update

from models.ledger import InputRefused
from models.sheets import parse_date
from models.summaries import Facts

#: How far ahead a typed date may lie, in years. Further is a typo, and would
#: make every working-day count on the item walk that many years of calendar.
DATE_HORIZON_YEARS = 10
#: Characters of a wrong argument quoted back in a refusal.
VALUE_SHOWN = 40
#: A date typed as this many digits at most is "N working days"; longer is a date (20260310).
WORKDAY_DIGITS = 3

_NUMBER = re.compile(r"[#＃]?(\d{1,9})")
_WORKDAYS = re.compile(rf"(\d{{1,{WORKDAY_DIGITS}}})\s*(?:个?工作日|天|d|days?)?", re.IGNORECASE)


def arguments(text: str | None) -> str:
    """What follows the command word (`/reject@bot 12 原因` → `12 原因`), line breaks kept.

    The raw text, not `context.args`, which would lose the spacing around `|`.
    """
    parts = (text or "").split(maxsplit=1)
    return parts[1].strip() if len(parts) > 1 else ""


def command_text(update: Update) -> str:
    """The `arguments` of the command message an update carries."""
    message = update.effective_message
    return arguments(message.text if message else None)


def first_word(text: str) -> tuple[str, str]:
    """The first word of `text` and the rest, stripped; ("", "") for blank text."""
    parts = text.split(maxsplit=1)
    if not parts:
        return "", ""
    return parts[0], parts[1].strip() if len(parts) > 1 else ""


def item_number(word: str) -> int:
    """The item number in `12`, `#12` or `＃１２`; InputRefused("bad_number") otherwise."""
    word = word.strip()
    match = _NUMBER.fullmatch(word)
    if match is None:
        raise InputRefused("bad_number", {"value": word[:VALUE_SHOWN]})
    return int(match.group(1))


def looks_like_day(word: str) -> bool:
    """Whether `typed_day` could read `word` (a count of working days or a date)."""
    if _WORKDAYS.fullmatch(word):
        return True
    try:
        parse_date(word)
    except ValueError:
        return False
    return True


def typed_day(text: str, facts: Facts) -> date:
    """The date a person typed: a date in the forms people type (models.sheets.parse_date),
    or N working days from today (`5`, `5天`, `5个工作日`, `5 days`).

    Raises InputRefused: `bad_date`, `due_in_past`, or `date_too_far` (past
    DATE_HORIZON_YEARS).
    """
    text = text.strip()
    workdays = _WORKDAYS.fullmatch(text)
    if workdays:
        day = facts.calendar.add_workdays(facts.today, int(workdays.group(1)))
    else:
        try:
            day = parse_date(text)
        except ValueError:
            raise InputRefused("bad_date", {"value": text[:VALUE_SHOWN]}) from None
    if day < facts.today:
        raise InputRefused("due_in_past", {"due": day.isoformat()})
    if day > facts.today + timedelta(days=366 * DATE_HORIZON_YEARS):
        raise InputRefused("date_too_far", {"due": day.isoformat(), "years": DATE_HORIZON_YEARS})
    return day
