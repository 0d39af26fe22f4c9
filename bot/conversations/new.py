"""Logging an item by command: /new, /commit, /task, /duty.

`/new ORG | TITLE | DUE [| SEVERITY]` (and the three lists' commands with the
same form) creates the item at once, shows its card and opens the attach
window (bot/conversations/attach.py). `/new` alone starts the guided /new
(bot/conversations/guided.py).
"""

from __future__ import annotations

from sqlmodel import Session
from telegram import Update

from bot.arguments import command_text, typed_day
from bot.cards import Card
from bot.conversations import guided
from bot.conversations.attach import open_window
from bot.conversations.flows import explain, locked_draft, refuse_if_gathering
from bot.conversations.forms import (
    KIND_OF_COMMAND,
    may_create_somewhere,
    parse_form,
    parse_severity,
    resolve,
)
from bot.conversations.turns import in_turn
from bot.guard import Callback, Who, command, reply
from bot.replies import send
from bot.services import Context
from models.deadlines import default_due_date
from models.ledger import NewItem, create_item
from models.texts import t


async def create_at_once(
    update: Update, context: Context, who: Who, command_name: str, text: str
) -> None:
    """`/new ORG | TITLE | DUE [| SEVERITY]`: create, show the card, open the attach window."""
    form = parse_form(text)
    if form is None:
        await reply(update, t(who.lang, "create_usage", command=command_name))
        return
    kind = KIND_OF_COMMAND[command_name]
    services = context.services

    def work(session: Session) -> Card:
        refuse_if_gathering(locked_draft(session, who.member_id))
        may_create_somewhere(who.actor, kind)
        facts = services.facts(session)
        org = resolve(session, who.actor, form.org)
        severity = parse_severity(form.severity) if form.severity else "general"
        if form.due:
            due = typed_day(form.due, facts)
        else:
            due = default_due_date(facts.today, severity, facts.calendar)
        assert org.id is not None
        new = NewItem(kind=kind, org_id=org.id, title=form.title, severity=severity, due_date=due)
        item = create_item(session, who.actor, new, today=facts.today)
        return open_window(session, facts, who, item)

    await send(update, context, who, await services.db(work))


@in_turn
@command(explain=explain)
async def new(update: Update, context: Context, who: Who) -> None:
    """Log a finding: `/new ORG | TITLE | DUE` at once, or step by step with no arguments."""
    text = command_text(update)
    if text:
        await create_at_once(update, context, who, "new", text)
    else:
        await guided.begin(update, context, who)


def _list_command(command_name: str) -> Callback:
    @in_turn
    @command(explain=explain)
    async def add_to_list(update: Update, context: Context, who: Who) -> None:
        """Add to the three lists: `/commit|/task|/duty ORG | TITLE | DUE`."""
        text = command_text(update)
        if not text:
            await reply(update, t(who.lang, "create_usage", command=command_name))
            return
        await create_at_once(update, context, who, command_name, text)

    add_to_list.__name__ = add_to_list.__qualname__ = command_name
    return add_to_list


commit = _list_command("commit")
task = _list_command("task")
duty = _list_command("duty")
