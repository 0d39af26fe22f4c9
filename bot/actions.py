"""One step on one item (SPEC §4): /verify, /reject, /plan, /note, /extend, /split,
and the buttons on item cards: acknowledge, verify, reject, approve or deny an extension.

A command parses its arguments (a wrong shape gets the command's usage line),
makes one change through `models.ledger` in one transaction, and answers with
the item's fresh card, recorded so that later changes can edit it in place.
A press is re-checked on the server with the version its button was drawn
for, answered once, and the pressed message is edited in place (SPEC §7);
a forged, stale or out-of-scope press is answered with the refusal and
changes nothing.

Dates are typed as people type them (`models.sheets.parse_date`: 2026-03-20,
2026/3/20, 2026.3.20, 2026年3月20日) or as a number N of working days from
today, as in `/new`'s DUE (bot/arguments.py); the reply names the date it came to.

An item the reader may not see at all is answered as unknown, exactly like a
number that does not exist, so guessing numbers reveals nothing (SPEC §1).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlmodel import Session
from telegram import Message, Update
from telegram.error import BadRequest
from telegram.ext import CallbackQueryHandler, CommandHandler, filters

from bot.arguments import command_text, first_word, item_number, looks_like_day, typed_day
from bot.callbacks import Press
from bot.cards import Card
from bot.conversations.reasons import ask_reason
from bot.guard import Who, answer, button, command, guess_lang, reply, who_is
from bot.replies import card_for, markup, record_sent, send
from bot.services import Context, Handler, Services
from models.ledger import (
    InputRefused,
    act,
    add_milestone,
    add_note,
    decide_extension,
    get_item,
    request_extension,
    split_item,
    view_of,
)
from models.orgs import resolve_org
from models.permissions import can_view, check
from models.states import Action, actions_allowed_in, next_status
from models.summaries import Facts
from models.tables import Item, Org
from models.texts import t

#: The button verbs this module answers (bot.callbacks); `sub`, `itm` and `pg`
#: belong to the conversations and the queries.
BUTTON_PATTERN = r"^(ack|ver|rej|xa|xd):"

_PIPE = re.compile(r"[|｜]")
_ORG_SEPARATORS = re.compile(r"[\s,，、;；]+")
_ALL = frozenset({"all", "全部"})
_NOT_MODIFIED = "message is not modified"


# --- reading the arguments (pure) ----------------------------------------------


def step_and_day(text: str) -> tuple[str, str] | None:
    """`STEP | DATE` split at its last bar; without a bar, a last word that looks like a date.

    None when either part is missing: the caller answers with the usage line.
    """
    bars = list(_PIPE.finditer(text))
    if bars:
        step, day = text[: bars[-1].start()].strip(), text[bars[-1].end() :].strip()
    else:
        words = text.rsplit(maxsplit=1)
        if len(words) != 2 or not looks_like_day(words[1]):
            return None
        step, day = words[0].strip(), words[1]
    return (step, day) if step and day else None


def split_targets(text: str) -> list[str] | None:
    """The org words of `/split N ORG…`; None for `all`; [] when the shape is wrong."""
    words = [word for word in _ORG_SEPARATORS.split(text) if word]
    if any(word.lower() in _ALL for word in words):
        return None if len(words) == 1 else []
    return words


# --- one change, one card ---------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """A change made: what to tell the reader, and the item's fresh card for them."""

    intro: str
    card: Card


Change = Callable[[Session, Facts, Item], tuple[Item, str]]
"""One change through the domain, given the item as the reader reached it:
the item as it is now, and the intro line saying what happened."""


def reachable(session: Session, who: Who, number: int, action: str) -> Item:
    """Item #number if the reader may see it and take `action`, judged by the domain.

    An item the reader may not see is `unknown_item`, as if it did not exist.
    Checking the permission before the arguments makes a refusal name the
    more fundamental problem; the ledger checks again as it writes.
    """
    item = get_item(session, number)
    view = view_of(session, item)
    if not can_view(who.actor, view):
        raise InputRefused("unknown_item", {"number": number})
    check(who.actor, action, view)
    return item


def _changed(
    services: Services, who: Who, number: int, action: str, change: Change
) -> Callable[[Session], Outcome]:
    def work(session: Session) -> Outcome:
        facts = services.facts(session)
        item, intro = change(session, facts, reachable(session, who, number, action))
        return Outcome(intro, card_for(session, facts, who, item, intro))

    return work


async def _reply_card(
    update: Update, context: Context, who: Who, number: int, action: str, change: Change
) -> None:
    # Make the change, answer with the fresh card (recorded by `send`).
    services = context.services
    outcome = await services.db(_changed(services, who, number, action, change))
    await send(update, context, who, outcome.card)


async def _usage(update: Update, who: Who, key: str) -> None:
    await reply(update, t(who.lang, key))


# --- commands -------------------------------------------------------------------------


@command()
async def verify(update: Update, context: Context, who: Who) -> None:
    """Close off a submitted item (销号)."""
    word, rest = first_word(command_text(update))
    if not word or rest:
        await _usage(update, who, "usage_verify")
        return
    number = item_number(word)

    def change(session: Session, facts: Facts, item: Item) -> tuple[Item, str]:
        return act(session, who.actor, number, Action.VERIFY), t(who.lang, "did_verify")

    await _reply_card(update, context, who, number, Action.VERIFY, change)


@command()
async def reject(update: Update, context: Context, who: Who) -> None:
    """Return a submitted item for rework, saying why (整改不到位)."""
    word, reason = first_word(command_text(update))
    if not word or not reason:
        await _usage(update, who, "usage_reject")
        return
    number = item_number(word)

    def change(session: Session, facts: Facts, item: Item) -> tuple[Item, str]:
        changed = act(session, who.actor, number, Action.REJECT, reason=reason)
        return changed, t(who.lang, "did_reject", reason=reason)

    await _reply_card(update, context, who, number, Action.REJECT, change)


@command()
async def plan(update: Update, context: Context, who: Who) -> None:
    """Add a step to the item's roadmap, with its date."""
    word, rest = first_word(command_text(update))
    parts = step_and_day(rest) if word else None
    if parts is None:
        await _usage(update, who, "usage_plan")
        return
    number = item_number(word)
    step, typed = parts

    def change(session: Session, facts: Facts, item: Item) -> tuple[Item, str]:
        due = typed_day(typed, facts)
        milestone = add_milestone(session, who.actor, number, step, due)
        intro = t(who.lang, "did_plan", step=milestone.title, due=due.isoformat())
        return get_item(session, number), intro

    await _reply_card(update, context, who, number, Action.PLAN, change)


@command()
async def note(update: Update, context: Context, who: Who) -> None:
    """Record a progress note on the item (optional, SPEC §7)."""
    word, text = first_word(command_text(update))
    if not word or not text:
        await _usage(update, who, "usage_note")
        return
    number = item_number(word)

    def change(session: Session, facts: Facts, item: Item) -> tuple[Item, str]:
        return add_note(session, who.actor, number, text), t(who.lang, "did_note")

    await _reply_card(update, context, who, number, Action.NOTE, change)


@command()
async def extend(update: Update, context: Context, who: Who) -> None:
    """Ask to move the item's due date; the approvers are told (延期)."""
    word, rest = first_word(command_text(update))
    typed, reason = first_word(rest)
    if not word or not typed or not reason:
        await _usage(update, who, "usage_extend")
        return
    number = item_number(word)

    def change(session: Session, facts: Facts, item: Item) -> tuple[Item, str]:
        due = typed_day(typed, facts)
        request_extension(session, who.actor, number, due, reason, today=facts.today)
        return get_item(session, number), t(who.lang, "did_extend", due=due.isoformat())

    await _reply_card(update, context, who, number, Action.EXTEND_REQUEST, change)


@command()
async def split(update: Update, context: Context, who: Who) -> None:
    """Hand the item down to orgs below it (分解下发), or to every branch below with `all`."""
    word, rest = first_word(command_text(update))
    targets = split_targets(rest) if word else []
    if targets == []:
        await _usage(update, who, "usage_split")
        return
    number = item_number(word)

    def change(session: Session, facts: Facts, item: Item) -> tuple[Item, str]:
        codes = None
        if targets is not None:
            below = (view_of(session, item).org_path,)
            codes = [resolve_org(session, target, below).code for target in targets]
        children = split_item(session, who.actor, number, codes)
        if not children:
            return get_item(session, number), t(who.lang, "did_split_none")
        named = []
        for child in children:
            org = session.get(Org, child.org_id)
            named.append(f"#{child.number} {org.name if org else ''}".strip())
        listed = t(who.lang, "list_separator").join(named)
        return get_item(session, number), t(who.lang, "did_split", children=listed)

    await _reply_card(update, context, who, number, Action.SPLIT, change)


# --- buttons --------------------------------------------------------------------------


async def _edit_card(
    update: Update, context: Context, who: Who, press: Press, action: str, change: Change
) -> None:
    # Make the change the press asks for, answer it, and redraw the pressed card in place.
    services = context.services
    outcome = await services.db(_changed(services, who, press.number, action, change))
    await answer(update, outcome.intro)
    query = update.callback_query
    assert query is not None and query.message is not None
    chat_id, message_id = query.message.chat.id, query.message.message_id
    shown: object = query.message
    try:
        shown = await context.bot.edit_message_text(
            outcome.card.text,
            chat_id=chat_id,
            message_id=message_id,
            reply_markup=markup(outcome.card),
        )
    except BadRequest as error:
        if _NOT_MODIFIED not in str(error).lower():
            # The reader no longer has it as text (deleted, a caption): draw it anew.
            shown = await context.bot.send_message(
                chat_id, outcome.card.text, reply_markup=markup(outcome.card)
            )
    if isinstance(shown, Message):
        await record_sent(services, shown, outcome.card, member_id=who.member_id)


async def acknowledge_button(update: Update, context: Context, who: Who, press: Press) -> None:
    """Acknowledge the item on the pressed card."""

    def change(session: Session, facts: Facts, item: Item) -> tuple[Item, str]:
        acked = act(session, who.actor, press.number, Action.ACKNOWLEDGE, version=press.version)
        return acked, t(who.lang, "did_acknowledge")

    await _edit_card(update, context, who, press, Action.ACKNOWLEDGE, change)


async def verify_button(update: Update, context: Context, who: Who, press: Press) -> None:
    """Verify and close off the item on the pressed card."""

    def change(session: Session, facts: Facts, item: Item) -> tuple[Item, str]:
        closed = act(session, who.actor, press.number, Action.VERIFY, version=press.version)
        return closed, t(who.lang, "did_verify")

    await _edit_card(update, context, who, press, Action.VERIFY, change)


async def approve_button(update: Update, context: Context, who: Who, press: Press) -> None:
    """Approve the pending extension of the item on the pressed card."""
    await _decide(update, context, who, press, approve=True)


async def deny_button(update: Update, context: Context, who: Who, press: Press) -> None:
    """Deny the pending extension of the item on the pressed card."""
    await _decide(update, context, who, press, approve=False)


async def _decide(
    update: Update, context: Context, who: Who, press: Press, *, approve: bool
) -> None:
    def change(session: Session, facts: Facts, item: Item) -> tuple[Item, str]:
        request = decide_extension(
            session, who.actor, press.number, approve=approve, version=press.version
        )
        if approve:
            intro = t(who.lang, "did_extend_approve", due=request.requested_due.isoformat())
        else:
            intro = t(who.lang, "did_extend_deny")
        return get_item(session, press.number), intro

    await _edit_card(update, context, who, press, Action.EXTEND_DECIDE, change)


async def reject_button(update: Update, context: Context, who: Who, press: Press) -> None:
    """Ask for the reason of a rejection: the presser's next message is it.

    The reason flow is the conversations' (bot/conversations/reasons.py): it is
    refused, and the open /submit or guided /new kept, while one holds material.
    """
    services = context.services
    number = press.number

    def work(session: Session) -> None:
        item = reachable(session, who, number, Action.REJECT)
        if item.version != press.version:
            raise InputRefused("stale", {"number": number})
        if Action.REJECT not in actions_allowed_in(item.status):
            next_status(item.status, Action.REJECT)  # raises the refusal naming the status
        ask_reason(session, who.member_id, number, Action.REJECT.value, press.version)

    await services.db(work)
    prompt = t(who.lang, "reason_prompt", number=number)
    await answer(update, prompt)
    query = update.callback_query
    assert query is not None and query.message is not None
    await context.bot.send_message(query.message.chat.id, prompt)


ButtonStep = Callable[[Update, Context, Who, Press], Awaitable[None]]

#: What each of our verbs does (bot.callbacks.VERBS names the actions).
BUTTONS: dict[str, ButtonStep] = {
    "acknowledge": acknowledge_button,
    "verify": verify_button,
    "reject": reject_button,
    "extend_approve": approve_button,
    "extend_deny": deny_button,
}


@button()
async def pressed(update: Update, context: Context, who: Who, press: Press) -> None:
    """Do what the pressed button says, if the item still stands as it was drawn."""
    step = BUTTONS.get(press.action)
    if step is None:
        await answer(update, t(who.lang, "button_invalid"), alert=True)
        return
    await step(update, context, who, press)


async def invalid_button(update: Update, context: Context) -> None:
    """Answer a press no handler took (data we never drew, or a forged one): not valid."""
    user = update.effective_user
    if update.callback_query is None:
        return
    lang = guess_lang(update, context.services.settings.LANGUAGE)
    if user is not None:
        who = await who_is(context, user.id)
        lang = who.lang if who is not None else lang
    await answer(update, t(lang, "button_invalid"), alert=True)


def handlers() -> list[Handler]:
    """The one-step action commands and the action buttons on item cards."""
    # New messages only: editing an old `/note 12 …` must not write a second note.
    fresh = filters.UpdateType.MESSAGE
    return [
        CommandHandler("verify", verify, filters=fresh),
        CommandHandler("reject", reject, filters=fresh),
        CommandHandler("plan", plan, filters=fresh),
        CommandHandler("note", note, filters=fresh),
        CommandHandler("extend", extend, filters=fresh),
        CommandHandler("split", split, filters=fresh),
        CallbackQueryHandler(pressed, pattern=BUTTON_PATTERN),
    ]
