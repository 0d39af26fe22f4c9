"""Who is asking, and what the room may see.

Every command handler is wrapped by `command`: it looks the Telegram user up
in the directory (an unbound user gets a short polite refusal and no data),
keeps personal commands out of group chats (a button continues in private),
and turns a domain refusal into one sentence in the reader's language. A command
whose reply is one read (`reading`: /my, /item, /ledger) runs that read in the
look-up's transaction, so the update costs one transaction, not two.
Button presses are wrapped by `button`, the same checks for callback queries:
the refusal is the query's answer, and nothing else changes. Both render a
refusal with `texts.refusal` unless given their own `explain` (the
conversations name the field or the scope, bot/conversations/flows.py).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import bindparam, exists, select
from sqlmodel import Session, col
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ChatType

from bot.callbacks import Press, decode
from bot.services import Context
from models.holidays import VERSION_COLUMN, note_version
from models.people import actor_of
from models.permissions import Actor
from models.states import Refused
from models.tables import GroupMember, Member, Org
from models.texts import refusal, t

#: The deep-link payload of "continue in private" buttons.
CONTINUE_PAYLOAD = "continue"
#: Telegram's limit on the text of a callback query's answer, in characters.
ANSWER_MAX = 200


@dataclass(frozen=True)
class Who:
    """The bound member behind an update."""

    member_id: int
    code: str
    name: str
    org_name: str
    lang: str
    actor: Actor


R = TypeVar("R")

Handler = Callable[[Update, Context, Who], Awaitable[None]]
#: A command's read: what the reply shows, from the session, for the member asking.
Read = Callable[[Session, Update, Context, Who], R]
#: A command that answers with what its read returned.
ReadHandler = Callable[[Update, Context, Who, R], Awaitable[None]]
#: What python-telegram-bot's handlers take: a coroutine function of (update, context).
Callback = Callable[[Update, Context], Coroutine[Any, Any, None]]
#: A refusal as one sentence in a language (texts.refusal, or a module's own).
Explain = Callable[[str, Refused], str]


#: The bound member behind a Telegram user, as plain columns: built once, since
#: every update asks it, and run on the session's connection, past the ORM: the
#: guard changes nothing, so it needs no ORM objects. Whether the member is in
#: any inspection group comes along, so most members' scopes need no second
#: statement, and so does the holidays' version token, so the working-day
#: calendar needs no read of its own.
_BOUND_MEMBER = (
    select(
        col(Member.id),
        col(Member.code),
        col(Member.name),
        col(Member.language),
        col(Member.roles),
        col(Org.name),
        col(Org.path),
        exists().where(col(GroupMember.member_id) == col(Member.id)).label("in_groups"),
        VERSION_COLUMN,
    )
    .join(Org, col(Org.id) == col(Member.org_id))
    .where(col(Member.telegram_user_id) == bindparam("telegram_user_id"))
)


def lookup(session: Session, telegram_user_id: int, default_lang: str) -> Who | None:
    """The bound member for a Telegram user, or None."""
    connection = session.connection()
    found = connection.execute(_BOUND_MEMBER, {"telegram_user_id": telegram_user_id}).first()
    if found is None:
        return None
    member_id, code, name, language, roles, org_name, org_path, in_groups, holidays = found
    note_version(session, holidays)
    assert member_id is not None  # a stored member has its id; this tells mypy
    return Who(
        member_id=member_id,
        code=code,
        name=name,
        org_name=org_name,
        lang=language or default_lang,
        actor=actor_of(session, member_id, roles, org_path, in_groups=bool(in_groups)),
    )


async def who_is(context: Context, telegram_user_id: int) -> Who | None:
    """The bound member for a Telegram user, or None; one read-only transaction of its own."""
    default = context.services.settings.LANGUAGE
    return await context.services.db(
        lambda session: lookup(session, telegram_user_id, default), read_only=True
    )


def guess_lang(update: Update, default: str) -> str:
    """For people we do not know yet: Telegram's language if it is English, else the default."""
    user = update.effective_user
    code = (user.language_code or "") if user else ""
    return "en" if code.startswith("en") else default


async def reply(update: Update, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    """Answer in the chat the update came from."""
    message = update.effective_message
    if message is not None:
        await message.reply_text(text, reply_markup=markup, do_quote=False)


def is_group(update: Update) -> bool:
    chat = update.effective_chat
    return chat is not None and chat.type in (ChatType.GROUP, ChatType.SUPERGROUP)


async def continue_in_private(update: Update, context: Context, lang: str) -> None:
    """In a group, answer with a button that opens the private chat, and nothing else."""
    username = context.bot.username
    link = f"https://t.me/{username}?start={CONTINUE_PAYLOAD}"
    markup = InlineKeyboardMarkup([[InlineKeyboardButton(t(lang, "private_button"), url=link)]])
    await reply(update, t(lang, "private_only"), markup)


def command(
    *, in_groups: bool = False, explain: Explain = refusal
) -> Callable[[Handler], Callback]:
    """Wrap a handler: bound members only; private chats only unless `in_groups`.

    A `Refused` raised inside is answered with `explain(lang, refused)`.
    """

    def wrap(handler: Handler) -> Callback:
        async def answer(update: Update, context: Context, who: Who, _: None) -> None:
            await handler(update, context, who)

        return functools.wraps(handler)(_guarded(None, answer, in_groups, explain))

    return wrap


def reading(
    read: Read[R], *, in_groups: bool = False, explain: Explain = refusal
) -> Callable[[ReadHandler[R]], Callback]:
    """Wrap a command like `command`, with its read run in the look-up's transaction.

    The handler gets what `read(session, update, context, who)` returned; a
    `Refused` raised by the read or the handler is answered with
    `explain(lang, refused)`. The read must not write: the reply is sent after
    its transaction committed.
    """

    def wrap(handler: ReadHandler[R]) -> Callback:
        return functools.wraps(handler)(_guarded(read, handler, in_groups, explain))

    return wrap


def _guarded(
    read: Read[R] | None, handler: ReadHandler[R], in_groups: bool, explain: Explain
) -> Callback:
    # `command` and `reading` in one: without a read the handler gets None.
    async def wrapped(update: Update, context: Context) -> None:
        user = update.effective_user
        if user is None:
            return
        default = context.services.settings.LANGUAGE
        allowed = in_groups or not is_group(update)

        def work(session: Session) -> tuple[Who | None, R | Refused | None]:
            who = lookup(session, user.id, default)
            if who is None or read is None or not allowed:
                return who, None
            try:
                return who, read(session, update, context, who)
            except Refused as refused:  # answered below; the look-up stands
                return who, refused

        who, result = await context.services.db(work, read_only=True)
        if who is None:
            if is_group(update):
                return  # strangers in a work chat get silence, not a lecture
            await reply(update, t(guess_lang(update, default), "unbound"))
            return
        if not allowed:
            await continue_in_private(update, context, who.lang)
            return
        try:
            if isinstance(result, Refused):
                raise result
            # With a read, a found member allowed here: what it returned.
            await handler(update, context, who, cast(R, result))
        except Refused as refused:
            await reply(update, explain(who.lang, refused))

    return wrapped


ButtonHandler = Callable[[Update, Context, Who, Press], Awaitable[None]]


async def answer(update: Update, text: str, *, alert: bool = False) -> None:
    """Answer the pressed button (once per press) with a toast, or an alert to dismiss."""
    query = update.callback_query
    if query is not None:
        clipped = text if len(text) <= ANSWER_MAX else text[: ANSWER_MAX - 1] + "…"
        await query.answer(clipped, show_alert=alert)


def button(
    *, in_groups: bool = False, explain: Explain = refusal
) -> Callable[[ButtonHandler], Callback]:
    """Wrap a button handler: bound members only, our own data only, refusals as the answer.

    The handler gets the decoded `Press` and answers the query itself when it
    succeeds. Everything refused here or raised inside as a `Refused` (a forged,
    stale or out-of-scope press) is answered with one sentence as an alert
    (`explain(lang, refused)`), and the pressed message is left as it was.
    Presses in group chats are refused unless `in_groups`: an item's buttons
    act for one person, lists and details are personal, and none of them is
    for the room.
    """

    def wrap(handler: ButtonHandler) -> Callback:
        @functools.wraps(handler)
        async def wrapped(update: Update, context: Context) -> None:
            user = update.effective_user
            if update.callback_query is None or user is None:
                return
            who = await who_is(context, user.id)
            if who is None:
                default = context.services.settings.LANGUAGE
                await answer(update, t(guess_lang(update, default), "unbound"), alert=True)
                return
            if is_group(update) and not in_groups:
                await answer(update, t(who.lang, "private_only"), alert=True)
                return
            press = decode(update.callback_query.data)
            if press is None:
                await answer(update, t(who.lang, "button_invalid"), alert=True)
                return
            try:
                await handler(update, context, who, press)
            except Refused as refused:
                await answer(update, explain(who.lang, refused), alert=True)

        return wrapped

    return wrap
