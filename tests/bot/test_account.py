"""SPEC §2 and §4: binding by invite, greeting, help by role, language."""

from __future__ import annotations

from sqlalchemy import Engine

from bot.services import BotApplication
from models.db import transaction
from models.invites import create_invite
from sandbox.botapi import SandboxClient
from tests.bot.conftest import member_in
from tests.bot.support import People


async def test_an_unbound_user_gets_a_polite_refusal_and_no_data(
    app: BotApplication, client: SandboxClient, people: People
) -> None:
    for text in ("/start", "/my", "/whoami", "/help"):
        sent = client.send_text(people.stranger, text)
        reply = await client.wait_for(people.stranger.id, after=sent)
        assert "邀请" in reply.text and "#" not in reply.text


async def test_an_invite_binds_the_account_once(
    app: BotApplication, client: SandboxClient, people: People, engine: Engine
) -> None:
    member_id = people.district.members["M006"]
    with transaction(engine) as session:
        code = create_invite(session, member_id=member_id, days=14).code
    newcomer = people["M006"]
    sent = client.send_text(newcomer, f"/start {code}")
    reply = await client.wait_for(newcomer.id, after=sent)
    assert "陈党员" in reply.text
    assert member_in(engine, member_id).telegram_user_id == newcomer.id
    again = client.send_text(people["M008"], f"/start {code}")
    refusal = await client.wait_for(people["M008"].id, after=again)
    assert "已被使用" in refusal.text


async def test_help_lists_only_what_the_roles_allow(
    app: BotApplication, client: SandboxClient, people: People
) -> None:
    sent = client.send_text(people["M005"], "/help")
    secretary = (await client.wait_for(people["M005"].id, after=sent)).text
    sent = client.send_text(people["M003"], "/help")
    inspector = (await client.wait_for(people["M003"].id, after=sent)).text
    assert "/submit" in secretary and "/verify" not in secretary
    assert "/verify" in inspector and "/spotcheck" in inspector


async def test_lang_switches_the_replies_to_english(
    app: BotApplication, client: SandboxClient, people: People
) -> None:
    sent = client.send_text(people["M005"], "/lang en")
    assert "English" in (await client.wait_for(people["M005"].id, after=sent)).text
    sent = client.send_text(people["M005"], "/whoami")
    reply = await client.wait_for(people["M005"].id, after=sent)
    assert "Roles:" in reply.text and "secretary" in reply.text


async def test_commands_are_registered_in_zh_and_en(
    app: BotApplication, client: SandboxClient, people: People
) -> None:
    zh = [command["description"] for command in client.commands(people["M005"])]
    assert "我的待办事项" in zh
