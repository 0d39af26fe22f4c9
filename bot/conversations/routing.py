"""/done, /cancel and free messages: what they mean depends on the flow that is open.

Each reads the member's draft and hands over to the flow's own module; with
no flow open, a reply to an item's message attaches to that item
(bot/conversations/attach.py).
"""

from __future__ import annotations

from sqlmodel import Session
from telegram import Update

from bot.conversations import guided, reasons, submit
from bot.conversations.attach import attach_now, close_window, replied_item
from bot.conversations.evidence import entry_of
from bot.conversations.flows import (
    ATTACH,
    NEW,
    REASON,
    SUBMIT,
    Flow,
    current_flow,
    explain,
    flow_of,
    locked_draft,
)
from bot.conversations.turns import in_turn
from bot.guard import Who, command, reply
from bot.replies import send
from bot.services import Context
from models.drafts import clear_draft, get_draft
from models.texts import t


@in_turn
@command(explain=explain)
async def done(update: Update, context: Context, who: Who) -> None:
    """Finish the open step: submit the evidence, end the evidence step or the attach window."""
    flow = await current_flow(context, who)
    if flow is None:
        await reply(update, t(who.lang, "nothing_to_finish"))
    elif flow.name == SUBMIT:
        await submit.finish_submission(update, context, who, flow)
    elif flow.name == NEW:
        if flow.step == "evidence":
            await guided.answer_new(update, context, who, flow, guided.Answer(done=True))
        else:
            card = guided.ask_again(who.lang, flow, t(who.lang, "new_answer_first"))
            await send(update, context, who, card)
    elif flow.name == ATTACH:
        await close_window(update, context, who, flow)
    elif flow.name == REASON:
        await reply(update, t(who.lang, "reason_wanted"))
    else:
        await context.services.db(lambda session: clear_draft(session, who.member_id))
        await reply(update, t(who.lang, "nothing_to_finish"))


@in_turn
@command(explain=explain)
async def cancel(update: Update, context: Context, who: Who) -> None:
    """Close whatever flow is open; a submission is dropped with nothing attached."""

    def work(session: Session) -> Flow | None:
        flow = flow_of(locked_draft(session, who.member_id))
        if flow is not None:
            clear_draft(session, who.member_id)
        return flow

    flow = await context.services.db(work)
    if flow is None:
        await reply(update, t(who.lang, "nothing_to_cancel"))
    elif flow.name == SUBMIT:
        await reply(update, t(who.lang, "submit_cancelled", number=flow.number))
    else:
        await reply(update, t(who.lang, "cancelled"))


@in_turn
@command(explain=explain)
async def collect(update: Update, context: Context, who: Who) -> None:
    """Take a free message: the open flow's answer or evidence, or a reply to an item's message."""
    message = update.effective_message
    if message is None:
        return
    bot_id = context.bot.id

    def look(session: Session) -> tuple[Flow | None, int | None]:
        flow = flow_of(get_draft(session, who.member_id))
        return flow, replied_item(session, bot_id, message.reply_to_message)

    flow, replied_number = await context.services.db(look)
    entry = entry_of(message)
    if replied_number is not None and (flow is None or flow.name == ATTACH):
        await attach_now(update, context, who, replied_number, entry, window=False)
    elif flow is None:
        await reply(update, t(who.lang, "no_flow_hint"))
    elif flow.name == SUBMIT:
        await submit.gather_for_submission(update, context, who, flow, entry)
    elif flow.name == ATTACH:
        assert flow.number is not None
        await attach_now(update, context, who, flow.number, entry, window=True)
    elif flow.name == REASON:
        if entry.kind != "text":
            await reply(update, t(who.lang, "reason_wanted"))
        else:
            await reasons.give_reason(update, context, who, flow, entry.text or "")
    elif flow.name == NEW:
        await guided.take_message(update, context, who, flow, entry)
    else:
        await reply(update, t(who.lang, "no_flow_hint"))
