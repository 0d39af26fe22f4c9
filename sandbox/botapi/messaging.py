"""Bot API methods that send, change and remove messages, and getFile.

Each handler takes the call's `Context` and `Params`, runs under the world's
lock, and returns the `result` of the Bot API answer or raises `ApiError`.
"""

from __future__ import annotations

import time
from typing import Any

from sandbox.botapi.context import Context
from sandbox.botapi.entities import format_text, utf16_len
from sandbox.botapi.errors import bad_request, forbidden
from sandbox.botapi.files import image_size
from sandbox.botapi.keyboards import check_reply_markup, inline_keyboard
from sandbox.botapi.params import Params, Upload
from sandbox.botapi.records import JSON, Chat, MessageRecord, StoredFile
from sandbox.botapi.state import World

#: Longest message text, after its markup is parsed.
MAX_TEXT = 4096  # UTF-16 code units
#: Longest media caption, after its markup is parsed.
MAX_CAPTION = 1024  # UTF-16 code units
#: Longest text of a callback query answer.
MAX_ANSWER_TEXT = 200  # characters
#: Largest file getFile lets a bot download.
MAX_DOWNLOAD = 20 * 1024 * 1024  # bytes
#: Largest photo a bot may upload.
MAX_PHOTO_UPLOAD = 10 * 1024 * 1024  # bytes
#: Actions sendChatAction accepts.
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"


def writable_chat(world: World, params: Params) -> Chat:
    """The chat of `chat_id`, if the bot may write there.

    Raises:
        ApiError: 400 chat not found; 403 blocked, never started, or removed from the group.
    """
    chat = world.find_chat(params.chat_id())
    if chat.user is not None:
        if chat.user.blocked:
            raise forbidden("bot was blocked by the user")
        if not chat.user.started:
            raise forbidden("bot can't initiate conversation with a user")
    elif not chat.bot_is_member:
        kind = "supergroup chat" if chat.type == "supergroup" else "group chat"
        raise forbidden(f"bot was kicked from the {kind}")
    return chat


def _formatted(
    text: str | None, parse_mode: str | None, limit: int, what: str
) -> tuple[str | None, list[JSON]]:
    # Plain text and entities, or 400 when the text is too long.
    if text is None:
        return None, []
    plain, entities = format_text(text, parse_mode)
    if utf16_len(plain) > limit:
        raise bad_request(f"{what} is too long")
    return plain, entities


def _reply_target(world: World, chat: Chat, params: Params) -> MessageRecord | None:
    # The message this one replies to (reply_parameters or legacy reply_to_message_id).
    reply = params.json("reply_parameters")
    if reply is None and "reply_to_message_id" in params:
        reply = {
            "message_id": params.integer("reply_to_message_id"),
            "allow_sending_without_reply": params.flag("allow_sending_without_reply"),
        }
    if reply is None:
        return None
    if not isinstance(reply, dict) or "message_id" not in reply:
        raise bad_request("can't parse reply parameters JSON object")
    target_chat = chat
    if reply.get("chat_id") not in (None, chat.id):
        target_chat = world.find_chat(reply["chat_id"])
    target = world.find_message(target_chat, int(reply["message_id"]))
    if target is None:
        if reply.get("allow_sending_without_reply"):
            return None
        raise bad_request("message to be replied not found")
    return target


def _admit(ctx: Context, params: Params, chat: Chat) -> dict[str, Any]:
    # Check what every send shares, then take a slot from the flood limiter.
    reply_to = _reply_target(ctx.world, chat, params)
    markup = check_reply_markup(params.json("reply_markup"))
    ctx.limiter.acquire(chat.id, chat.is_group)
    return {
        "reply_to": reply_to,
        "reply_markup": markup,
        "disable_notification": params.flag("disable_notification"),
        "protect_content": params.flag("protect_content"),
    }


def _post(ctx: Context, chat: Chat, admitted: dict[str, Any], **content: Any) -> JSON:
    record = ctx.world.add_message(chat, ctx.world.bot, **admitted, **content)
    return record.to_api()


def send_message(ctx: Context, params: Params) -> JSON:
    """sendMessage: text with an optional parse mode, keyboard and reply."""
    chat = writable_chat(ctx.world, params)
    text = params.text("text")
    if text is None:
        raise bad_request("message text is empty")
    parse_mode = params.text("parse_mode")
    plain, entities = _formatted(text, parse_mode, MAX_TEXT, "message")
    if not (plain or "").strip():
        raise bad_request("message text is empty")
    admitted = _admit(ctx, params, chat)
    return _post(
        ctx,
        chat,
        admitted,
        text=text,
        parse_mode=parse_mode,
        plain_text=plain,
        entities=entities,
        link_preview_options=params.json("link_preview_options"),
    )


def _caption(params: Params) -> dict[str, Any]:
    caption = params.text("caption")
    parse_mode = params.text("parse_mode")
    plain, entities = _formatted(caption, parse_mode, MAX_CAPTION, "message caption")
    return {
        "caption": caption,
        "parse_mode": parse_mode,
        "plain_caption": plain,
        "caption_entities": entities,
    }


def _existing_file(world: World, value: str, kind: str) -> StoredFile:
    # A file the server already holds, by file_id, of the kind the method sends.
    stored = world.files.get(value)
    if stored is None:
        raise bad_request("wrong file identifier/HTTP URL specified")
    if stored.kind != kind:
        raise bad_request(f"can't use file of type {stored.kind.title()} as {kind.title()}")
    return stored


def send_photo(ctx: Context, params: Params) -> JSON:
    """sendPhoto: an uploaded image (stored in several sizes) or a photo's file_id."""
    world = ctx.world
    chat = writable_chat(world, params)
    photo = params.input_file("photo")
    if photo is None:
        raise bad_request("there is no photo in the request")
    caption = _caption(params)
    if isinstance(photo, Upload):
        if len(photo.data) > MAX_PHOTO_UPLOAD:
            raise bad_request("PHOTO_INVALID_DIMENSIONS")
        size = image_size(photo.data)
        if size is None:
            raise bad_request("IMAGE_PROCESS_FAILED")
        admitted = _admit(ctx, params, chat)
        sizes = world.store_photo(photo.data, *size)
    else:
        sizes = world.photo_sets[_existing_file(world, photo, "photo").file_id]
        admitted = _admit(ctx, params, chat)
    return _post(ctx, chat, admitted, photo=sizes, **caption)


def send_document(ctx: Context, params: Params) -> JSON:
    """sendDocument: an uploaded file (name and type kept) or a document's file_id."""
    world = ctx.world
    chat = writable_chat(world, params)
    document = params.input_file("document")
    if document is None:
        raise bad_request("there is no document in the request")
    caption = _caption(params)
    if isinstance(document, Upload):
        if not document.data:
            raise bad_request("file must be non-empty")
        admitted = _admit(ctx, params, chat)
        stored = world.store_file(
            "document",
            document.data,
            file_name=document.filename or "document",
            mime_type=document.content_type,
        )
    else:
        stored = _existing_file(world, document, "document")
        admitted = _admit(ctx, params, chat)
    return _post(ctx, chat, admitted, document=stored, **caption)


def send_chat_action(ctx: Context, params: Params) -> bool:
    """sendChatAction: remember the announced action."""
    chat = writable_chat(ctx.world, params)
    action = params.text("action", required=True)
    if action not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    chat.last_action = action
    return True


def _bot_message(ctx: Context, params: Params, missing: str) -> MessageRecord:
    # The bot's own message that an edit targets.
    if "inline_message_id" in params:
        raise bad_request(missing)
    chat = writable_chat(ctx.world, params)
    record = ctx.world.find_message(chat, params.integer("message_id", required=True) or 0)
    if record is None:
        raise bad_request(missing)
    if not record.from_bot:
        raise bad_request("message can't be edited")
    return record


def _markup_equal(left: JSON | None, right: JSON | None) -> bool:
    return inline_keyboard(left) == inline_keyboard(right)


def _apply_edit(ctx: Context, record: MessageRecord, **changes: Any) -> JSON:
    for key, value in changes.items():
        setattr(record, key, value)
    record.edit_date = ctx.world.now()
    record.versions.append(record.snapshot())
    ctx.world.touch(record)
    return record.to_api()


def edit_message_text(ctx: Context, params: Params) -> JSON:
    """editMessageText: new text; the keyboard is replaced (removed if not given)."""
    record = _bot_message(ctx, params, "message to edit not found")
    if record.plain_text is None:
        raise bad_request("there is no text in the message to edit")
    text = params.text("text")
    if text is None:
        raise bad_request("message text is empty")
    parse_mode = params.text("parse_mode")
    plain, entities = _formatted(text, parse_mode, MAX_TEXT, "message")
    if not (plain or "").strip():
        raise bad_request("message text is empty")
    markup = check_reply_markup(params.json("reply_markup"))
    if (
        plain == record.plain_text
        and entities == record.entities
        and _markup_equal(markup, record.reply_markup)
    ):
        raise bad_request(NOT_MODIFIED)
    return _apply_edit(
        ctx,
        record,
        text=text,
        parse_mode=parse_mode,
        plain_text=plain,
        entities=entities,
        reply_markup=markup,
        link_preview_options=params.json("link_preview_options"),
    )


def edit_message_caption(ctx: Context, params: Params) -> JSON:
    """editMessageCaption: a new caption for a media message."""
    record = _bot_message(ctx, params, "message to edit not found")
    if record.plain_text is not None:
        raise bad_request("there is no caption in the message to edit")
    caption = _caption(params)
    markup = check_reply_markup(params.json("reply_markup"))
    if (
        caption["plain_caption"] == record.plain_caption
        and caption["caption_entities"] == record.caption_entities
        and _markup_equal(markup, record.reply_markup)
    ):
        raise bad_request(NOT_MODIFIED)
    return _apply_edit(ctx, record, reply_markup=markup, **caption)


def edit_message_reply_markup(ctx: Context, params: Params) -> JSON:
    """editMessageReplyMarkup: a new inline keyboard (removed if not given)."""
    record = _bot_message(ctx, params, "message to edit not found")
    markup = check_reply_markup(params.json("reply_markup"))
    if _markup_equal(markup, record.reply_markup):
        raise bad_request(NOT_MODIFIED)
    return _apply_edit(ctx, record, reply_markup=markup)


def delete_message(ctx: Context, params: Params) -> bool:
    """deleteMessage: the bot's messages anywhere, users' messages in private chats."""
    chat = ctx.world.find_chat(params.chat_id())
    record = ctx.world.find_message(chat, params.integer("message_id", required=True) or 0)
    if record is None:
        raise bad_request("message to delete not found")
    if chat.is_group and not record.from_bot:
        raise bad_request("message can't be deleted")
    record.deleted = True
    ctx.world.touch(record)
    return True


def answer_callback_query(ctx: Context, params: Params) -> bool:
    """answerCallbackQuery: once per press, within the answer window."""
    query_id = params.text("callback_query_id", required=True) or ""
    query = ctx.world.callback_queries.get(query_id)
    if (
        query is None
        or query.answered
        or time.monotonic() - query.pressed_at > ctx.world.callback_answer_window
    ):
        raise bad_request(QUERY_TOO_OLD)
    text = params.text("text")
    if text is not None and len(text) > MAX_ANSWER_TEXT:
        raise bad_request("MESSAGE_TOO_LONG")
    query.answered = True
    query.answer_text = text
    query.show_alert = params.flag("show_alert")
    query.answer_url = params.text("url")
    ctx.world.changes.bump()
    return True


def get_file(ctx: Context, params: Params) -> JSON:
    """getFile: the file's path on the file server (up to 20 MB)."""
    file_id = params.text("file_id", required=True) or ""
    stored = ctx.world.files.get(file_id)
    if stored is None:
        raise bad_request("wrong file_id or the file is temporarily unavailable")
    if stored.file_size > MAX_DOWNLOAD:
        raise bad_request("file is too big")
    return stored.to_file()
