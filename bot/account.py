"""Binding and the person's own settings: /start, /whoami, /help, /lang, /digest."""

from __future__ import annotations

from collections.abc import Callable

from sqlmodel import Session
from telegram import Update
from telegram.ext import CommandHandler

from bot.commands import commands_for
from bot.guard import CONTINUE_PAYLOAD, Who, command, guess_lang, is_group, lookup, reply, who_is
from bot.services import Context, Handler
from models.invites import InviteRefused, redeem_invite
from models.tables import Member
from models.texts import role_word, t


async def start(update: Update, context: Context) -> None:
    """Bind with an invite code, or greet a member we know."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        return
    services = context.services
    default = services.settings.LANGUAGE
    payload = context.args[0] if context.args else ""
    if payload and payload != CONTINUE_PAYLOAD and chat.type == "private":

        def bind(session: Session) -> Who | None:
            redeem_invite(session, code=payload, telegram_user_id=user.id, chat_id=chat.id)
            session.flush()
            return lookup(session, user.id, default)

        try:
            who = await services.db(bind)
        except InviteRefused as refused:
            await reply(update, t(guess_lang(update, default), refused.code))
            return
        assert who is not None
        await reply(update, t(who.lang, "bound", name=who.name, org=who.org_name))
        return
    who = await who_is(context, user.id)
    if who is None:
        await reply(update, t(guess_lang(update, default), "unbound"))
        return
    await reply(update, t(who.lang, "greet", name=who.name))


@command()
async def whoami(update: Update, context: Context, who: Who) -> None:
    """Say who the directory says you are."""
    roles = "、".join(role_word(who.lang, role) for role in sorted(who.actor.roles))
    await reply(
        update, t(who.lang, "whoami", name=who.name, code=who.code, org=who.org_name, roles=roles)
    )


@command(in_groups=True)
async def help_command(update: Update, context: Context, who: Who) -> None:
    """List the commands the reader's roles allow."""
    lines = [t(who.lang, "help_header")]
    lines += [f"/{c.name} — {c.description(who.lang)}" for c in commands_for(who.actor.roles)]
    await reply(update, "\n".join(lines))


def _set_member(member_id: int, **values: object) -> Callable[[Session], None]:
    def work(session: Session) -> None:
        member = session.get(Member, member_id)
        assert member is not None
        for key, value in values.items():
            setattr(member, key, value)
        session.add(member)

    return work


@command()
async def lang(update: Update, context: Context, who: Who) -> None:
    """Choose zh or en for everything the bot says to you."""
    choice = (context.args or [""])[0].lower()
    if choice not in ("zh", "en"):
        await reply(update, t(who.lang, "lang_usage"))
        return
    await context.services.db(_set_member(who.member_id, language=choice))
    await reply(update, t(choice, "lang_set"))


@command()
async def digest(update: Update, context: Context, who: Who) -> None:
    """One daily digest instead of single pushes (escalations and rejections still come at once)."""
    choice = (context.args or [""])[0].lower()
    if choice not in ("on", "off"):
        await reply(update, t(who.lang, "digest_usage"))
        return
    await context.services.db(_set_member(who.member_id, digest=choice == "on"))
    await reply(update, t(who.lang, "digest_on" if choice == "on" else "digest_off"))


@command(in_groups=True)
async def unknown(update: Update, context: Context, who: Who) -> None:
    """A command we do not have: point at /help (strangers were refused by the guard)."""
    if is_group(update):
        return  # a work chat's other commands belong to other bots
    await reply(update, t(who.lang, "unknown_command"))


def handlers() -> list[Handler]:
    """Binding and personal settings."""
    return [
        CommandHandler("start", start),
        CommandHandler("help", help_command),
        CommandHandler("whoami", whoami),
        CommandHandler("lang", lang),
        CommandHandler("digest", digest),
    ]
