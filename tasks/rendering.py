"""What a push says: one message for the rows a delivery job claimed.

Item stages are rendered now, from the item's fresh summary for that reader
(its light, status and the buttons the reader may press today), never from
what was true when the row was written. One row about one item is that item's
card (bot.cards.item_card) with an intro line saying what happened; several
rows for one person are bundled (SPEC §5) into one message: a header, then per
item its intro lines and its list line, with a details button per item. Rows of
other stages carry their text (data["text"], a string or {"zh": …, "en": …}).
A message stays within Telegram's 4,096 characters: rows that do not fit are
left for the next message, never cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlmodel import Session, col, select

from bot import callbacks
from bot.cards import Card, item_card, item_line
from models.delivery import DIGEST, Recipient, is_urgent, notification_data
from models.people import actor_for, actors_for
from models.permissions import Actor
from models.summaries import Facts, ItemSummary, summarize_for, summarize_many
from models.tables import Item, Notification, Org
from models.texts import MESSAGE_MAX, clip, t

#: Details buttons per keyboard row in a bundled message.
BUTTONS_PER_ROW = 3


@dataclass(frozen=True)
class Push:
    """The message for a claim, and what became of each claimed row."""

    #: The text to send; None when the rows have nothing to say (an empty digest).
    text: str | None
    reply_markup: dict[str, Any] | None
    #: Rows the message carries (sent with it).
    included: tuple[int, ...]
    #: Claimed rows that did not fit; they go in the next message.
    left_out: tuple[int, ...] = ()
    #: Rows that cannot be rendered (no text, no item), with why.
    broken: tuple[tuple[int, str], ...] = ()
    #: (item number, version) when the message is one item's card: remembered
    #: so replies attach to the item and changes edit it in place.
    card: tuple[int, int] | None = None


def text_for(lang: str, value: object) -> str | None:
    """data["text"] in `lang`: a string as is, a {"zh", "en"} mapping by language."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, dict):
        for key in (lang, "zh", "en", *value):
            found = value.get(key)
            if isinstance(found, str) and found:
                return found
    return None


def intro(lang: str, row: Notification, summary: ItemSummary | None) -> str:
    """The line that says what happened to the item, for the row's stage."""
    data = notification_data(row)
    stage = row.stage
    days = summary.days_overdue if summary else 0
    if stage.startswith("remind-"):
        return t(lang, "push_remind", days=stage.removeprefix("remind-"))
    if stage in ("escalate-1", "escalate-2"):
        return t(lang, "push_" + stage.replace("-", "_"), days=days)
    if stage == "extension_requested":
        due = summary.pending_extension_due if summary else None
        return t(lang, "push_extension_requested", due=_day(due or data.get("to")))
    if stage == "extension_decided":
        key = "push_extension_approved" if data.get("approved") else "push_extension_denied"
        return t(lang, key, due=_day(data.get("to")))
    if stage in ("assigned", "overdue", "submitted", "verified"):
        return t(lang, f"push_{stage}")
    if stage in ("rejected", "reopened", "cancelled"):
        return t(lang, f"push_{stage}", reason=data.get("reason") or "—")
    return t(lang, "push_update")


def _day(value: object) -> str:
    if isinstance(value, date):
        return value.isoformat()
    return str(value or "—")


def render(
    session: Session, rows: Sequence[Notification], recipient: Recipient, facts: Facts
) -> Push:
    """The one message for `rows` (the first row is the job's own and always goes)."""
    return render_many(session, [(rows, recipient)], facts)[0]


def render_many(
    session: Session,
    messages: Sequence[tuple[Sequence[Notification], Recipient]],
    facts: Facts,
) -> list[Push]:
    """`render` of several recipients' messages, with a fixed number of queries
    whatever their count (a delivery job's claims of a fan-out)."""
    numbers = sorted(
        {row.item_number for rows, _ in messages for row in rows if row.item_number is not None}
    )
    items: dict[int, Item] = {
        item.number: item
        for item in session.exec(select(Item).where(col(Item.number).in_(numbers))).all()
        if item.number is not None
    }
    # Held, so the session's identity map (weak references) keeps them for the
    # summaries' permission views (view_of).
    _held = session.exec(
        select(Org).where(col(Org.id).in_({i.org_id for i in items.values()}))
    ).all()
    readers = actors_for(
        session, sorted({r.member_id for _, r in messages if r.member_id is not None})
    )
    wanted: list[tuple[Item, Actor | None]] = []
    numbers_of: list[list[int]] = []
    for rows, recipient in messages:
        reader = readers.get(recipient.member_id) if recipient.member_id else None
        mine = sorted(
            {n for n in (row.item_number for row in rows) if n is not None and n in items}
        )
        numbers_of.append(mine)
        wanted += [(items[number], reader) for number in mine]
    summaries = summarize_for(session, wanted, facts)
    pushes, start = [], 0
    for (rows, recipient), mine in zip(messages, numbers_of, strict=True):
        own = dict(zip(mine, summaries[start : start + len(mine)], strict=True))
        start += len(mine)
        pushes.append(_compose(rows, recipient, own))
    return pushes


def _compose(
    rows: Sequence[Notification], recipient: Recipient, summaries: dict[int, ItemSummary]
) -> Push:
    lang = recipient.lang

    # Urgent first, then in the order they were owed; the own row leads its group.
    ordered = [rows[0], *sorted(rows[1:], key=lambda r: (not is_urgent(r.stage), r.id or 0))]
    entries: list[tuple[int | None, list[Notification]]] = []  # (item, rows) or (None, [row])
    broken: list[tuple[int, str]] = []
    silent: list[int] = []
    by_item: dict[int, list[Notification]] = {}
    for row in ordered:
        assert row.id is not None
        if row.item_number is not None and row.item_number in summaries:
            if row.item_number not in by_item:
                by_item[row.item_number] = []
                entries.append((row.item_number, by_item[row.item_number]))
            by_item[row.item_number].append(row)
        elif text_for(lang, notification_data(row).get("text")):
            entries.append((None, [row]))
        elif row.stage == DIGEST:
            silent.append(row.id)  # the digest's own row: a header at most
        else:
            broken.append((row.id, "nothing to render: no item and no text"))

    def lines_of(number: int | None, group: list[Notification]) -> list[str]:
        if number is None:
            return [text_for(lang, notification_data(group[0]).get("text")) or ""]
        summary = summaries[number]
        extra = [text_for(lang, notification_data(r).get("text")) for r in group]
        return [intro(lang, r, summary) for r in group] + [e for e in extra if e]

    if not entries:
        return Push(None, None, tuple(silent), broken=tuple(broken))

    # One item, nothing else: the item's card, remembered for replies and edits.
    if len(entries) == 1 and entries[0][0] is not None:
        number, group = entries[0]
        assert number is not None
        summary = summaries[number]
        card = item_card(lang, summary, intro="\n".join(lines_of(number, group)))
        return Push(
            card.text,
            card.reply_markup(),
            tuple(r.id for r in group if r.id is not None) + tuple(silent),
            broken=tuple(broken),
            card=(summary.number, summary.version),
        )
    if len(entries) == 1:
        group = entries[0][1]
        return Push(
            clip(lines_of(None, group)[0]),
            None,
            tuple(r.id for r in group if r.id is not None) + tuple(silent),
            broken=tuple(broken),
        )

    digest = recipient.digest and any(not is_urgent(r.stage) for r in rows)
    count = sum(len(group) for _, group in entries)
    header = t(lang, "push_digest_header" if digest else "push_bundle_header", count=count)
    blocks: list[str] = []
    included: list[int] = list(silent)
    left_out: list[int] = []
    buttons: list[tuple[str, str]] = []
    length = len(header)
    for index, (number, group) in enumerate(entries):
        lines = lines_of(number, group)
        if number is not None:
            lines.append(item_line(lang, summaries[number]))
        block = "\n".join(lines)
        if index and length + 2 + len(block) > MESSAGE_MAX:
            left_out += [r.id for _, g in entries[index:] for r in g if r.id is not None]
            break
        blocks.append(block)
        length += 2 + len(block)
        included += [r.id for r in group if r.id is not None]
        if number is not None:
            summary = summaries[number]
            buttons.append(
                (
                    t(lang, "push_item_button", number=number),
                    callbacks.encode("details", number, summary.version),
                )
            )
    if left_out:
        # The header counted every row; say how many this message really carries.
        header = t(
            lang,
            "push_digest_header" if digest else "push_bundle_header",
            count=count - len(left_out),
        )
    rows_of_buttons = tuple(
        tuple(buttons[i : i + BUTTONS_PER_ROW]) for i in range(0, len(buttons), BUTTONS_PER_ROW)
    )
    card = Card(clip("\n\n".join([header, *blocks])), rows_of_buttons)
    return Push(
        card.text,
        card.reply_markup(),
        tuple(included),
        left_out=tuple(left_out),
        broken=tuple(broken),
    )


def card_for(session: Session, item: Item, member_id: int | None, lang: str, facts: Facts) -> Card:
    """An item's card as `member_id` (None: a chat) sees it now; for in-place edits."""
    reader = actor_for(session, member_id) if member_id else None
    summary = summarize_many(session, [item], facts, reader=reader)[0]
    return item_card(lang, summary)
