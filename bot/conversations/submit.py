"""Submitting a rectification: /submit N [report], the evidence, then /done.

/submit N (or the Submit button on an item card) opens the ``submit`` flow;
what the member sends next is collected INTO THE DRAFT; /done attaches it all
and submits in one transaction; /cancel drops it with nothing attached.
/done with no evidence at all asks once, with a button, whether to submit
without (SPEC §7: evidence is asked for once, and results matter more than
screenshots — the verifier judges a bare submission).
"""

from __future__ import annotations

from sqlmodel import Session
from telegram import Update

from bot import callbacks
from bot.arguments import command_text, first_word, item_number
from bot.cards import Card
from bot.conversations.evidence import Entry, add_entry, archive_all, checked_entry
from bot.conversations.flows import (
    SUBMIT,
    Flow,
    current_flow,
    explain,
    flow_of,
    locked_draft,
    new_nonce,
    refuse_if_gathering,
)
from bot.conversations.turns import in_turn
from bot.guard import Who, button, command, reply
from bot.replies import card_for, drop_buttons, send
from bot.services import Context
from models.drafts import clear_draft, draft_data, start_draft, update_draft
from models.ledger import InputRefused, act, attach_evidence, get_item, view_of
from models.permissions import Actor, check
from models.states import Action, Refused, next_status
from models.tables import Item
from models.texts import t


def may_submit(session: Session, actor: Actor, item: Item) -> None:
    """Refuse unless the actor may submit the item now (permission and status)."""
    check(actor, Action.SUBMIT, view_of(session, item))
    next_status(item.status, Action.SUBMIT)


async def start_submission(
    context: Context, who: Who, number: int, report: Entry | None, version: int = 0
) -> int:
    """Open (or continue) the submit flow for #number; the evidence gathered so far.

    Refuses at once whoever may not submit the item; `version`, from a Submit
    button, refuses a button drawn for an older state of the item.
    """

    def work(session: Session) -> int:
        draft = locked_draft(session, who.member_id)
        item = get_item(session, number)
        if version and version != item.version:
            raise InputRefused("stale", {"number": number})
        if draft is not None and draft.flow == SUBMIT and draft.item_number == number:
            data = draft_data(draft)
        else:
            refuse_if_gathering(draft)
            may_submit(session, who.actor, item)
            data = {"nonce": new_nonce(), "evidence": []}
            draft = start_draft(session, who.member_id, SUBMIT, item_number=number, data=data)
        if report is not None:
            add_entry(data, report)
        update_draft(session, draft, data=data)
        return len(data["evidence"])

    return await context.services.db(work)


async def say_submission_open(
    update: Update, context: Context, who: Who, number: int, count: int
) -> None:
    text = t(who.lang, "submit_open", number=number)
    if count:
        text = f"{text}\n{t(who.lang, 'submit_got', number=number, count=count)}"
    await send(update, context, who, Card(text))


@in_turn
@command(explain=explain)
async def submit(update: Update, context: Context, who: Who) -> None:
    """Submit #N's rectification: `/submit N [report]`, then evidence, then /done."""
    first, report = first_word(command_text(update))
    if not first:
        await reply(update, t(who.lang, "submit_usage"))
        return
    number = item_number(first)
    entry = None
    if report and update.effective_message is not None:
        mid = update.effective_message.message_id
        entry = checked_entry(Entry("text", mid, text=report))
    count = await start_submission(context, who, number, entry)
    await say_submission_open(update, context, who, number, count)


async def gather_for_submission(
    update: Update, context: Context, who: Who, flow: Flow, entry: Entry
) -> None:
    """Keep one piece of evidence in the submit draft and say how many there are."""
    entry = checked_entry(entry)

    def work(session: Session) -> int | None:
        draft = locked_draft(session, who.member_id)
        if draft is None or draft.flow != SUBMIT or draft.item_number != flow.number:
            return None
        data = draft_data(draft)
        add_entry(data, entry)
        update_draft(session, draft, data=data)
        return len(data["evidence"])

    count = await context.services.db(work)
    if count is None:
        await reply(update, t(who.lang, "button_stale"))
        return
    await send(
        update, context, who, Card(t(who.lang, "submit_got", number=flow.number, count=count))
    )


async def finish_submission(
    update: Update, context: Context, who: Who, flow: Flow, *, anyway: bool = False
) -> bool:
    """Attach the draft's evidence and submit, in one transaction; then show the card.

    With no evidence, and unless `anyway`, asks once whether to submit without
    it and returns False.
    """
    services = context.services
    number = flow.number
    assert number is not None
    entries = flow.entries
    if not entries and not anyway:
        nonce = int(flow.data.get("nonce", 0))
        go = (
            t(who.lang, "btn_submit_anyway"),
            callbacks.encode("submit_flow", number, nonce, "go"),
        )
        await send(update, context, who, Card(t(who.lang, "submit_empty", number=number), ((go,),)))
        return False
    archived = await archive_all(context, entries)

    def work(session: Session) -> Card | None:
        now = flow_of(locked_draft(session, who.member_id))
        if now is None or now.name != SUBMIT or now.number != number:
            return None
        if now.data.get("nonce") != flow.data.get("nonce"):
            return None
        gathered = now.entries  # what the row holds now is what gets attached
        for entry in gathered:
            attach_evidence(
                session, who.actor, number, entry.evidence(archived.get(entry.message_id))
            )
        item = act(session, who.actor, number, Action.SUBMIT)
        clear_draft(session, who.member_id)
        intro = t(who.lang, "submitted", number=number, count=len(gathered))
        return card_for(session, services.facts(session), who, item, intro)

    card = await services.db(work)
    if card is None:
        await reply(update, t(who.lang, "button_stale"))
        return False
    await send(update, context, who, card)
    return True


# -- buttons -------------------------------------------------------------------------------------


@in_turn
@button(explain=explain)
async def press_submit(update: Update, context: Context, who: Who, press: callbacks.Press) -> None:
    """Take the Submit button on a card: open the submit flow, as /submit N would."""
    query = update.callback_query
    assert query is not None
    # A refusal propagates before the answer, so the press is answered exactly once.
    count = await start_submission(context, who, press.number, None, version=press.version or -1)
    await query.answer(t(who.lang, "submit_opened", number=press.number))
    await say_submission_open(update, context, who, press.number, count)


@in_turn
@button(explain=explain)
async def press_submit_anyway(
    update: Update, context: Context, who: Who, press: callbacks.Press
) -> None:
    """Submit without evidence: the one time the bot asks (SPEC §7), answered yes."""
    query = update.callback_query
    assert query is not None
    flow = await current_flow(context, who)
    if (
        press.arg != "go"
        or flow is None
        or flow.name != SUBMIT
        or flow.number != press.number
        or flow.data.get("nonce") != press.version
    ):
        await query.answer(t(who.lang, "button_stale"))
        await drop_buttons(update)
        return
    await query.answer()
    await drop_buttons(update)
    try:
        await finish_submission(update, context, who, flow, anyway=True)
    except Refused as refused:
        await reply(update, explain(who.lang, refused))
