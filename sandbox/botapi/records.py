"""The things in the sandbox's world, as plain classes that render Bot API JSON.

Each `to_api()` returns exactly the object the Bot API documents (User, Chat,
Message, PhotoSize, Document, Voice, Video, Location, File, CallbackQuery),
so python-telegram-bot's `de_json` reads it as it reads Telegram's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.botapi.keyboards import callback_data_values, inline_keyboard

JSON = dict[str, Any]


@dataclass
class User:
    """A Telegram account: a simulated person, or the bot itself."""

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    is_bot: bool = False
    #: The user has blocked the bot: sends to them answer 403.
    blocked: bool = False
    #: The user has opened a private chat with the bot (else 403 on the first send).
    started: bool = True

    def to_api(self) -> JSON:
        """The Bot API User object."""
        data: JSON = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code"):
            value = getattr(self, key)
            if value:
                data[key] = value
        return data


@dataclass
class Chat:
    """A private chat (id = the user's id) or a group (negative id)."""

    id: int
    type: str
    title: str | None = None
    #: The other party of a private chat.
    user: User | None = None
    member_ids: set[int] = field(default_factory=set)
    #: False once the bot was removed from a group (sends answer 403).
    bot_is_member: bool = True
    #: Telegram's `chat_instance` for callback queries from this chat.
    instance: str = ""
    next_message_id: int = 1
    messages: dict[int, MessageRecord] = field(default_factory=dict)
    #: The last action announced with sendChatAction.
    last_action: str | None = None

    @property
    def is_group(self) -> bool:
        """True for groups and supergroups."""
        return self.type in ("group", "supergroup")

    def to_api(self) -> JSON:
        """The Bot API Chat object."""
        data: JSON = {"id": self.id, "type": self.type}
        if self.user is not None:
            data.update(
                {
                    key: value
                    for key, value in self.user.to_api().items()
                    if key in ("first_name", "last_name", "username")
                }
            )
        if self.title:
            data["title"] = self.title
        return data


@dataclass
class StoredFile:
    """A file the server holds: uploaded by the bot or sent by a user."""

    file_id: str
    file_unique_id: str
    kind: str
    data: bytes
    file_path: str
    file_name: str | None = None
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None
    duration: int | None = None

    @property
    def file_size(self) -> int:
        """Size in bytes."""
        return len(self.data)

    def to_api(self) -> JSON:
        """The PhotoSize, Document, Voice or Video object for this file."""
        data: JSON = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.file_size,
        }
        if self.kind in ("photo", "video"):
            data["width"] = self.width
            data["height"] = self.height
        if self.kind in ("voice", "video"):
            data["duration"] = self.duration or 0
        if self.kind in ("document", "video") and self.file_name:
            data["file_name"] = self.file_name
        if self.kind != "photo" and self.mime_type:
            data["mime_type"] = self.mime_type
        return data

    def to_file(self) -> JSON:
        """The Bot API File object that getFile returns."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.file_size,
            "file_path": self.file_path,
        }


@dataclass(frozen=True)
class MessageVersion:
    """One state of a message: as sent, then after each edit."""

    date: int
    text: str | None
    caption: str | None
    parse_mode: str | None
    reply_markup: JSON | None


@dataclass
class MessageRecord:
    """A message in a chat, from a user or from the bot.

    `text` and `caption` are kept as given (with their markup); `plain_text`
    and `plain_caption` are what Telegram shows, with `entities`.
    """

    chat: Chat
    message_id: int
    sender: User
    date: int
    text: str | None = None
    parse_mode: str | None = None
    plain_text: str | None = None
    entities: list[JSON] = field(default_factory=list)
    caption: str | None = None
    plain_caption: str | None = None
    caption_entities: list[JSON] = field(default_factory=list)
    reply_markup: JSON | None = None
    reply_to: MessageRecord | None = None
    photo: list[StoredFile] = field(default_factory=list)
    document: StoredFile | None = None
    voice: StoredFile | None = None
    video: StoredFile | None = None
    location: JSON | None = None
    link_preview_options: JSON | None = None
    disable_notification: bool = False
    protect_content: bool = False
    edit_date: int | None = None
    deleted: bool = False
    #: The world's revision when this message last changed (for the web chat).
    revision: int = 0
    versions: list[MessageVersion] = field(default_factory=list)

    @property
    def from_bot(self) -> bool:
        """True for messages the bot sent."""
        return self.sender.is_bot

    @property
    def edits(self) -> list[MessageVersion]:
        """The states after each edit, oldest first (empty if never edited)."""
        return self.versions[1:]

    @property
    def buttons(self) -> list[str]:
        """The callback_data of every inline button, in reading order."""
        return callback_data_values(self.reply_markup)

    @property
    def button_texts(self) -> list[str]:
        """The text of every inline button, in reading order."""
        keyboard = inline_keyboard(self.reply_markup)
        if keyboard is None:
            return []
        return [button["text"] for row in keyboard["inline_keyboard"] for button in row]

    def snapshot(self) -> MessageVersion:
        """The current state, for the edit history."""
        return MessageVersion(
            self.edit_date or self.date,
            self.text,
            self.caption,
            self.parse_mode,
            self.reply_markup,
        )

    def to_api(self, with_reply: bool = True) -> JSON:
        """The Bot API Message object (a replied-to message carries no reply of its own)."""
        data: JSON = {
            "message_id": self.message_id,
            "from": self.sender.to_api(),
            "chat": self.chat.to_api(),
            "date": self.date,
        }
        if self.edit_date is not None:
            data["edit_date"] = self.edit_date
        if with_reply and self.reply_to is not None:
            data["reply_to_message"] = self.reply_to.to_api(with_reply=False)
        if self.plain_text is not None:
            data["text"] = self.plain_text
            if self.entities:
                data["entities"] = self.entities
            if self.link_preview_options:
                data["link_preview_options"] = self.link_preview_options
        if self.photo:
            data["photo"] = [size.to_api() for size in self.photo]
        for kind in ("document", "voice", "video"):
            stored = getattr(self, kind)
            if stored is not None:
                data[kind] = stored.to_api()
        if self.location is not None:
            data["location"] = self.location
        if self.plain_caption:
            data["caption"] = self.plain_caption
            if self.caption_entities:
                data["caption_entities"] = self.caption_entities
        if self.protect_content:
            data["has_protected_content"] = True
        keyboard = inline_keyboard(self.reply_markup)
        if keyboard is not None:
            data["reply_markup"] = keyboard
        return data


@dataclass
class CallbackQueryRecord:
    """A press on an inline button, and the bot's answer once it comes."""

    id: str
    user: User
    message: MessageRecord
    data: str
    #: time.monotonic() when pressed; the answer must come within the window.
    pressed_at: float
    answered: bool = False
    answer_text: str | None = None
    show_alert: bool = False
    answer_url: str | None = None

    def to_api(self) -> JSON:
        """The Bot API CallbackQuery object."""
        return {
            "id": self.id,
            "from": self.user.to_api(),
            "message": self.message.to_api(),
            "chat_instance": self.message.chat.instance,
            "data": self.data,
        }


@dataclass
class WebhookConfig:
    """The webhook set with setWebhook, and how delivery to it is going."""

    url: str
    secret_token: str | None = None
    max_connections: int = 40
    last_error_date: int | None = None
    last_error_message: str | None = None
    delivered: int = 0
