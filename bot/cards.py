"""Item cards: the text and buttons of every message about an item.

Rendered once here and used for replies, pushes and in-place edits alike
(DESIGN "Layers"). A card is plain data — text and rows of (label, callback
data) — so the bot turns it into python-telegram-bot markup and the delivery
jobs into Bot API JSON without a second renderer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bot import callbacks
from models.deadlines import light_emoji
from models.summaries import ItemSummary
from models.texts import clip, kind_word, level_word, severity_word, status_word, t

Button = tuple[str, str]


@dataclass(frozen=True)
class Card:
    text: str
    buttons: tuple[tuple[Button, ...], ...] = field(default=())
    #: (number, version) of the item an item card shows, from `item_card`; None for any
    #: other message. Only item cards are recorded for reply-to-attach and in-place edits.
    shows: tuple[int, int] | None = None

    def reply_markup(self) -> dict[str, Any] | None:
        """Bot API JSON for the buttons, or None when there are none."""
        if not self.buttons:
            return None
        return {
            "inline_keyboard": [
                [{"text": label, "callback_data": data} for label, data in row]
                for row in self.buttons
            ]
        }


def headline(lang: str, item: ItemSummary) -> str:
    """`#N 🔴 title`: the line that starts every message about an item."""
    emoji = light_emoji(item.light)
    return f"#{item.number} {emoji} {item.title}".replace("  ", " ")


def status_line(lang: str, item: ItemSummary) -> str:
    """Kind, org, status, due date and what the date means today."""
    parts = [kind_word(lang, item.kind), item.org_name, status_word(lang, item.status)]
    if item.due_date is None:
        parts.append(t(lang, "card_no_due"))
    else:
        parts.append(t(lang, "card_due", due=item.due_date.isoformat()))
        if item.days_overdue > 0:
            parts.append(t(lang, "card_overdue", days=item.days_overdue))
        elif item.days_left is not None and item.status not in ("closed", "cancelled"):
            parts.append(t(lang, "card_left", days=item.days_left))
    return " · ".join(parts)


def buttons_for(lang: str, item: ItemSummary) -> tuple[tuple[Button, ...], ...]:
    """The buttons for the actions the reader may take now, and a details button."""
    row: list[Button] = []
    for action in ("acknowledge", "submit", "verify", "reject"):
        if action in item.actions and not (action == "acknowledge" and item.status != "open"):
            row.append(
                (t(lang, f"btn_{action}"), callbacks.encode(action, item.number, item.version))
            )
    rows = [tuple(row)] if row else []
    if "extend_decide" in item.actions and item.pending_extension_by is not None:
        rows.append(
            (
                (
                    t(lang, "btn_extend_approve"),
                    callbacks.encode("extend_approve", item.number, item.version),
                ),
                (
                    t(lang, "btn_extend_deny"),
                    callbacks.encode("extend_deny", item.number, item.version),
                ),
            )
        )
    rows.append(((t(lang, "btn_details"), callbacks.encode("details", item.number, item.version)),))
    return tuple(rows)


def item_card(lang: str, item: ItemSummary, *, intro: str | None = None) -> Card:
    """The card for one item: optional intro line (what happened), headline, facts, buttons."""
    lines = [intro] if intro else []
    lines.append(headline(lang, item))
    lines.append(status_line(lang, item))
    facts = []
    if item.responsible_name:
        facts.append(t(lang, "card_responsible", name=item.responsible_name))
    facts.append(severity_word(lang, item.severity))
    if item.escalation_level:
        facts.append(t(lang, "card_level", level=level_word(lang, item.escalation_level)))
    if item.extensions:
        facts.append(t(lang, "card_extensions", count=item.extensions))
    if item.children_total:
        facts.append(
            t(lang, "card_children", closed=item.children_closed, total=item.children_total)
        )
    lines.append(" · ".join(facts))
    return Card(clip("\n".join(lines)), buttons_for(lang, item), (item.number, item.version))


def item_line(lang: str, item: ItemSummary) -> str:
    """One line of a list: `#N 🔴 title — status, due`."""
    due = item.due_date.isoformat() if item.due_date else "—"
    extra = f", {t(lang, 'card_overdue', days=item.days_overdue)}" if item.days_overdue else ""
    return f"{headline(lang, item)} — {status_word(lang, item.status)}, {due}{extra}"


def pager(
    lang: str, view: str, page: int, pages: int, arg: str = ""
) -> tuple[tuple[Button, ...], ...]:
    """Previous/next buttons for page `page` (0-based) of `pages`; none for one page."""
    if pages <= 1:
        return ()
    row: list[Button] = []
    view_arg = f"{view}.{arg}" if arg else view
    if page > 0:
        row.append((t(lang, "btn_prev"), callbacks.encode("page", page - 1, 0, view_arg)))
    row.append((f"{page + 1}/{pages}", callbacks.encode("page", page, 0, view_arg)))
    if page + 1 < pages:
        row.append((t(lang, "btn_next"), callbacks.encode("page", page + 1, 0, view_arg)))
    return (tuple(row),)


def list_card(
    lang: str, title: str, lines: Sequence[str], buttons: tuple[tuple[Button, ...], ...] = ()
) -> Card:
    return Card(clip("\n".join([title, *lines])), buttons)
