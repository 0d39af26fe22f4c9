"""The real python-telegram-bot sends, edits and deletes messages on the sandbox server."""

from __future__ import annotations

import pytest
import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import BadRequest, EndPointNotFound, InvalidToken

from sandbox.botapi import BotApiServer, SandboxClient, User, tiny_png
from tests.sandbox.support import ALICE_ID, make_bot, message_of, returned_message


def card_keyboard(item: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("验收销号", callback_data=f"verify:{item}:1"),
                InlineKeyboardButton("退回", callback_data=f"reject:{item}:1"),
            ],
            [InlineKeyboardButton("详情", url="https://t.me/closeout_sandbox_bot?start=item1")],
        ]
    )


async def test_get_me_answers_the_configured_bot(bot: telegram.Bot) -> None:
    me = await bot.get_me()
    assert me.username == "closeout_sandbox_bot"
    assert me.is_bot
    assert bot.username == "closeout_sandbox_bot"


async def test_a_wrong_token_raises_invalid_token(server: BotApiServer) -> None:
    with pytest.raises(InvalidToken):
        await make_bot(server, "123:wrong").get_me()


async def test_an_unknown_method_is_not_found(bot: telegram.Bot) -> None:
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("sendTelepathy")


async def test_send_message_keeps_html_text_and_keyboard(
    bot: telegram.Bot, client: SandboxClient, alice: User
) -> None:
    sent = await bot.send_message(
        ALICE_ID,
        "<b>#1</b> 🔴 待整改 &lt;食堂&gt;",
        parse_mode=ParseMode.HTML,
        reply_markup=card_keyboard(1),
        disable_notification=True,
    )

    assert sent.text == "#1 🔴 待整改 <食堂>"
    assert sent.entities[0].type == "bold" and sent.entities[0].length == 2
    assert sent.reply_markup == card_keyboard(1)
    [record] = client.messages(ALICE_ID)
    assert record.text == "<b>#1</b> 🔴 待整改 &lt;食堂&gt;"
    assert record.parse_mode == "HTML"
    assert record.buttons == ["verify:1:1", "reject:1:1"]
    assert record.disable_notification


async def test_message_ids_increase_per_chat(
    bot: telegram.Bot, client: SandboxClient, alice: User, bob: User
) -> None:
    first = await bot.send_message(ALICE_ID, "one")
    client.send_text(alice, "hello")
    second = await bot.send_message(ALICE_ID, "two")
    other = await bot.send_message(bob.id, "one")

    assert (first.message_id, second.message_id, other.message_id) == (1, 3, 1)


async def test_edit_message_text_keeps_the_history(
    bot: telegram.Bot, client: SandboxClient, alice: User
) -> None:
    sent = await bot.send_message(ALICE_ID, "#1 待整改", reply_markup=card_keyboard(1))

    result = await bot.edit_message_text("#1 已销号", chat_id=ALICE_ID, message_id=sent.message_id)
    edited = returned_message(result)

    assert edited.text == "#1 已销号"
    assert edited.edit_date is not None
    assert edited.reply_markup is None  # an edit without reply_markup removes the keyboard
    record = client.last(ALICE_ID)
    assert record is not None
    assert [version.text for version in record.versions] == ["#1 待整改", "#1 已销号"]
    assert len(record.edits) == 1


async def test_an_edit_that_changes_nothing_is_refused(bot: telegram.Bot, alice: User) -> None:
    sent = await bot.send_message(ALICE_ID, "#1 待整改", reply_markup=card_keyboard(1))

    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text(
            "#1 待整改", chat_id=ALICE_ID, message_id=sent.message_id, reply_markup=card_keyboard(1)
        )


async def test_edit_reply_markup_replaces_the_buttons(
    bot: telegram.Bot, client: SandboxClient, alice: User
) -> None:
    sent = await bot.send_message(ALICE_ID, "#1", reply_markup=card_keyboard(1))

    await bot.edit_message_reply_markup(ALICE_ID, sent.message_id, reply_markup=card_keyboard(2))

    record = client.last(ALICE_ID)
    assert record is not None and record.buttons == ["verify:2:1", "reject:2:1"]
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_reply_markup(
            ALICE_ID, sent.message_id, reply_markup=card_keyboard(2)
        )


async def test_editing_a_missing_message_is_refused(bot: telegram.Bot, alice: User) -> None:
    with pytest.raises(BadRequest, match="(?i)message to edit not found"):
        await bot.edit_message_text("x", chat_id=ALICE_ID, message_id=99)


async def test_callback_data_over_64_bytes_is_refused(bot: telegram.Bot, alice: User) -> None:
    too_long = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="销" * 22)]])

    with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(ALICE_ID, "#1", reply_markup=too_long)


async def test_text_over_4096_characters_is_refused(bot: telegram.Bot, alice: User) -> None:
    await bot.send_message(ALICE_ID, "问" * 4096)

    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(ALICE_ID, "问" * 4097)


async def test_html_with_an_unsupported_tag_is_refused(bot: telegram.Bot, alice: User) -> None:
    with pytest.raises(BadRequest, match='(?i)can\'t parse entities: Unsupported start tag "br"'):
        await bot.send_message(ALICE_ID, "a<br>b", parse_mode=ParseMode.HTML)


async def test_an_unknown_chat_is_not_found(bot: telegram.Bot) -> None:
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message(424242, "hi")


async def test_reply_parameters_point_at_the_replied_message(
    bot: telegram.Bot, client: SandboxClient, alice: User
) -> None:
    question = client.send_text(alice, "#1 怎么整改?")

    answer = await bot.send_message(ALICE_ID, "见路线图", reply_to_message_id=question.message_id)

    assert answer.reply_to_message is not None
    assert answer.reply_to_message.text == "#1 怎么整改?"
    with pytest.raises(BadRequest, match="(?i)message to be replied not found"):
        await bot.send_message(ALICE_ID, "x", reply_to_message_id=999)


async def test_a_document_uploads_and_downloads_back(
    bot: telegram.Bot, client: SandboxClient, alice: User
) -> None:
    content = "整改报告\n".encode() * 100

    sent = await bot.send_document(ALICE_ID, content, filename="约谈函询.docx", caption="#7")

    document = sent.document
    assert document is not None
    assert document.file_name == "约谈函询.docx"
    assert document.mime_type == (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    )
    assert document.file_size == len(content)
    file = await bot.get_file(document.file_id)
    assert bytes(await file.download_as_bytearray()) == content
    again = await bot.send_document(ALICE_ID, document.file_id)
    assert again.document is not None
    assert again.document.file_unique_id == document.file_unique_id
    record = client.last(ALICE_ID)
    assert record is not None and record.document is not None
    assert record.document.data == content


async def test_a_photo_arrives_in_several_sizes(
    bot: telegram.Bot, client: SandboxClient, alice: User
) -> None:
    image = tiny_png(1600, 1200)

    sent = await bot.send_photo(ALICE_ID, image, caption="<b>周报</b>", parse_mode="HTML")

    assert [(size.width, size.height) for size in sent.photo][-1] == (1600, 1200)
    assert len(sent.photo) > 1
    assert sent.caption == "周报"
    largest = await bot.get_file(sent.photo[-1].file_id)
    assert bytes(await largest.download_as_bytearray()) == image
    resent = await bot.send_photo(ALICE_ID, sent.photo[-1].file_id)
    assert resent.photo[-1].file_unique_id == sent.photo[-1].file_unique_id


async def test_a_photo_that_is_not_an_image_is_refused(bot: telegram.Bot, alice: User) -> None:
    with pytest.raises(BadRequest, match="(?i)IMAGE_PROCESS_FAILED"):
        await bot.send_photo(ALICE_ID, b"not an image at all")


async def test_files_users_send_can_be_fetched_by_the_bot(
    bot: telegram.Bot, client: SandboxClient, alice: User
) -> None:
    client.send_document(alice, b"%PDF-1.7 evidence", "现场照片说明.pdf", "application/pdf")
    client.send_voice(alice, b"OggS voice", duration=3)

    updates = await bot.get_updates()

    document = message_of(updates[0]).document
    assert document is not None
    assert document.file_name == "现场照片说明.pdf" and document.mime_type == "application/pdf"
    file = await bot.get_file(document.file_id)
    assert bytes(await file.download_as_bytearray()) == b"%PDF-1.7 evidence"
    voice = message_of(updates[1]).voice
    assert voice is not None
    stored_voice = client.history(ALICE_ID)[1].voice
    assert stored_voice is not None and stored_voice.duration == 3
    assert bytes(await (await bot.get_file(voice.file_id)).download_as_bytearray()) == (
        b"OggS voice"
    )


async def test_delete_message_removes_it_from_the_chat(
    bot: telegram.Bot, client: SandboxClient, alice: User
) -> None:
    sent = await bot.send_message(ALICE_ID, "temporary")

    assert await bot.delete_message(ALICE_ID, sent.message_id)

    assert client.messages(ALICE_ID) == []
    assert client.messages(ALICE_ID, include_deleted=True)[0].deleted
    with pytest.raises(BadRequest, match="(?i)message to delete not found"):
        await bot.delete_message(ALICE_ID, sent.message_id)


async def test_chat_action_and_get_chat(
    bot: telegram.Bot, client: SandboxClient, alice: User
) -> None:
    assert await bot.send_chat_action(ALICE_ID, "upload_document")
    assert client.chat(ALICE_ID).last_action == "upload_document"
    with pytest.raises(BadRequest, match="(?i)wrong parameter action"):
        await bot.send_chat_action(ALICE_ID, "dancing")

    chat = await bot.get_chat(ALICE_ID)

    assert chat.type == "private" and chat.first_name == "张三" and chat.username == "zhangsan"


async def test_commands_are_kept_per_scope_and_language(
    bot: telegram.Bot, client: SandboxClient, alice: User, bob: User
) -> None:
    zh = [("my", "我的事项"), ("help", "帮助")]
    en = [("my", "My items"), ("help", "Help")]
    group = client.group(-1001, "督查一组", [alice, bob])
    group_scope = telegram.BotCommandScopeChat(group.id)

    assert await bot.set_my_commands(zh, language_code="zh")
    assert await bot.set_my_commands(en)
    assert await bot.set_my_commands([("ledger", "台账")], scope=group_scope)

    assert [c.description for c in await bot.get_my_commands(language_code="zh")] == [
        "我的事项",
        "帮助",
    ]
    assert [c.description for c in await bot.get_my_commands()] == ["My items", "Help"]
    assert await bot.get_my_commands(language_code="fr") == ()
    assert [c["description"] for c in client.commands(alice)] == ["我的事项", "帮助"]
    assert [c["description"] for c in client.commands(bob)] == ["My items", "Help"]
    assert [c["command"] for c in client.commands(alice, group)] == ["ledger"]
    assert await bot.delete_my_commands(language_code="zh")
    assert [c["description"] for c in client.commands(alice)] == ["My items", "Help"]


async def test_an_invalid_command_name_is_refused(bot: telegram.Bot) -> None:
    with pytest.raises(BadRequest, match="(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([("My-Items", "x")])


async def test_the_menu_button_is_stored(bot: telegram.Bot, alice: User) -> None:
    assert await bot.set_chat_menu_button(ALICE_ID, telegram.MenuButtonCommands())

    button = await bot.get_chat_menu_button(ALICE_ID)

    assert button.type == "commands"
