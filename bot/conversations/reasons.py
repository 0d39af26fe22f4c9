"""Reasons asked for by buttons: the member's next text is the reason.

An action button that needs a reason (Reject, bot/actions.py) opens the
``reason`` flow with `ask_reason`, holding the action and the version of the
item the button was drawn for; the next text acts with that reason, checked
against that version, and shows the item's fresh card.
"""

from __future__ import annotations

from sqlmodel import Session
from telegram import Update

from bot.cards import Card
from bot.conversations.flows import (
    REASON,
    Flow,
    explain,
    locked_draft,
    refuse_if_gathering,
)
from bot.guard import Who, reply
from bot.replies import card_for, send
from bot.services import Context
from models.drafts import clear_draft, start_draft
from models.ledger import act
from models.states import Refused
from models.texts import TEXTS, t

#: Refusals a reason draft survives: the member may simply send a better reason.
REASON_RETRY = frozenset({"reason_required", "reason_too_long", "too_long"})


def ask_reason(session: Session, member_id: int, number: int, action: str, version: int) -> None:
    """Make the member's next text the reason for `action` on #number at `version`.

    Raises FlowRefused (bot/conversations/flows.py) while a /submit or a guided
    /new holds gathered material: the member finishes or cancels that first.
    """
    refuse_if_gathering(locked_draft(session, member_id))
    data = {"action": action, "version": version}
    start_draft(session, member_id, REASON, item_number=number, data=data)


def reason_intro(lang: str, action: str, number: int, reason: str) -> str:
    """What happened, above the card, after an action with a reason."""
    # The action commands' own words where they have them (bot/actions.py), so
    # `/reject N REASON` and the Reject button read the same.
    key = f"did_{action}"
    if key not in TEXTS:
        key = "reason_done"
    return t(lang, key, number=number, reason=reason)


async def give_reason(update: Update, context: Context, who: Who, flow: Flow, text: str) -> None:
    """The reason an action button asked for: act with it, then show the card."""
    services = context.services
    action = str(flow.data.get("action", ""))
    button_version = flow.data.get("version")
    number = flow.number
    assert number is not None

    def work(session: Session) -> Card | None:
        draft = locked_draft(session, who.member_id)
        if draft is None or draft.flow != REASON or draft.item_number != number:
            return None
        item = act(session, who.actor, number, action, reason=text, version=button_version)
        clear_draft(session, who.member_id)
        intro = reason_intro(who.lang, action, number, text.strip())
        return card_for(session, services.facts(session), who, item, intro)

    try:
        card = await services.db(work)
    except Refused as refused:
        if refused.code in REASON_RETRY:
            await reply(update, f"{explain(who.lang, refused)}\n{t(who.lang, 'reason_again')}")
            return
        await services.db(lambda session: clear_draft(session, who.member_id))
        await reply(update, explain(who.lang, refused))
        return
    if card is None:
        await reply(update, t(who.lang, "button_stale"))
        return
    await send(update, context, who, card)
