"""The user side of the sandbox: people who write to the bot, and what they see.

Tests and the web chat act through a `SandboxClient`: make users and groups,
send text, photos, documents, voice, video and locations, press inline
buttons, block the bot; each action becomes the Update Telegram would send,
with increasing update_id and per-chat message_id. Then read what the bot sent
(current text, keyboard, edit history, files) or wait for it.

The client works on the server's `World` directly and is safe to use from any
thread or event loop; its waits wake as soon as the bot acts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sandbox.botapi.botinfo import visible_commands
from sandbox.botapi.entities import detect_entities
from sandbox.botapi.files import DEFAULT_IMAGE_SIZE, image_size
from sandbox.botapi.records import (
    JSON,
    CallbackQueryRecord,
    Chat,
    MessageRecord,
    StoredFile,
    User,
)
from sandbox.botapi.state import World

#: How long the waits wait unless told otherwise.
DEFAULT_TIMEOUT = 5.0  # seconds
#: Characters of each bot message quoted when a wait times out.
QUOTE_CHARS = 80

UserRef = User | int
ChatRef = Chat | int
MessageRef = MessageRecord | int
Predicate = Callable[[MessageRecord], bool] | str | None
#: What a wait returns once its probe finds it.
T = TypeVar("T")


class SandboxClient:
    """Simulated users and chats talking to the bot through one `World`."""

    def __init__(self, world: World) -> None:
        self.world = world

    @property
    def bot(self) -> User:
        """The bot's own account."""
        return self.world.bot

    # -- people and chats ------------------------------------------------------

    def user(
        self,
        id: int,
        first_name: str,
        username: str | None = None,
        language_code: str | None = "zh",
        *,
        last_name: str | None = None,
        started: bool = True,
    ) -> User:
        """A user with a private chat with the bot (chat id = user id).

        `started=False`: the user never opened the chat, so the bot's sends get
        403 "bot can't initiate conversation with a user" until they write.
        """
        return self.world.add_user(
            id,
            first_name,
            last_name=last_name,
            username=username,
            language_code=language_code,
            started=started,
        )

    def group(
        self,
        id: int,
        title: str,
        members: Iterable[UserRef] = (),
        *,
        type: str = "group",
    ) -> Chat:
        """A group (negative id, type "group" or "supergroup") with the bot in it."""
        member_ids = {self._user(member).id for member in members}
        return self.world.add_group(id, title, member_ids, type)

    def chat(self, chat: ChatRef) -> Chat:
        """The chat with this id."""
        return chat if isinstance(chat, Chat) else self._chat(chat)

    def block(self, user: UserRef) -> None:
        """The user blocks the bot: sends to them get 403 "bot was blocked by the user"."""
        with self.world.lock:
            member = self._user(user)
            if not member.blocked:
                member.blocked = True
                self._my_chat_member(member, "member", "kicked")

    def unblock(self, user: UserRef) -> None:
        """The user restarts the bot after blocking it."""
        with self.world.lock:
            member = self._user(user)
            if member.blocked:
                member.blocked = False
                self._my_chat_member(member, "kicked", "member")

    def remove_bot(self, chat: ChatRef) -> None:
        """The bot is removed from a group: sends there get 403."""
        with self.world.lock:
            group = self.chat(chat)
            group.bot_is_member = False
        self.world.changes.bump()

    def _my_chat_member(self, user: User, old: str, new: str) -> None:
        bot = self.world.bot.to_api()
        old_member: JSON = {"status": old, "user": bot}
        new_member: JSON = {"status": new, "user": bot}
        for member in (old_member, new_member):
            if member["status"] == "kicked":
                member["until_date"] = 0
        self.world.push_update(
            "my_chat_member",
            {
                "chat": self.world.chats[user.id].to_api(),
                "from": user.to_api(),
                "date": self.world.now(),
                "old_chat_member": old_member,
                "new_chat_member": new_member,
            },
        )

    # -- what users do ------------------------------------------------------------

    def send_text(
        self,
        user: UserRef,
        text: str,
        chat: ChatRef | None = None,
        reply_to: MessageRef | None = None,
    ) -> MessageRecord:
        """The user sends text; commands (also /cmd@bot) get a bot_command entity."""
        return self._send(
            user, chat, reply_to, text=text, plain_text=text, entities=detect_entities(text)
        )

    def send_photo(
        self,
        user: UserRef,
        image: bytes,
        caption: str | None = None,
        chat: ChatRef | None = None,
        reply_to: MessageRef | None = None,
    ) -> MessageRecord:
        """The user sends a photo; it arrives as a list of PhotoSize, smallest first."""
        width, height = image_size(image) or DEFAULT_IMAGE_SIZE
        sizes = self.world.store_photo(image, width, height)
        return self._send(user, chat, reply_to, photo=sizes, **_caption(caption))

    def send_document(
        self,
        user: UserRef,
        data: bytes,
        file_name: str,
        mime_type: str | None = None,
        caption: str | None = None,
        chat: ChatRef | None = None,
        reply_to: MessageRef | None = None,
    ) -> MessageRecord:
        """The user sends a file, keeping its name and MIME type."""
        stored = self.world.store_file("document", data, file_name=file_name, mime_type=mime_type)
        return self._send(user, chat, reply_to, document=stored, **_caption(caption))

    def send_voice(
        self,
        user: UserRef,
        data: bytes,
        duration: int = 1,
        chat: ChatRef | None = None,
        reply_to: MessageRef | None = None,
    ) -> MessageRecord:
        """The user sends a voice note (OGG/Opus, as the apps record them)."""
        stored = self.world.store_file("voice", data, mime_type="audio/ogg", duration=duration)
        return self._send(user, chat, reply_to, voice=stored)

    def send_video(
        self,
        user: UserRef,
        data: bytes,
        duration: int = 1,
        width: int = 640,
        height: int = 360,
        caption: str | None = None,
        chat: ChatRef | None = None,
        reply_to: MessageRef | None = None,
    ) -> MessageRecord:
        """The user sends a video (MP4)."""
        stored = self.world.store_file(
            "video", data, mime_type="video/mp4", duration=duration, width=width, height=height
        )
        return self._send(user, chat, reply_to, video=stored, **_caption(caption))

    def send_location(
        self,
        user: UserRef,
        latitude: float,
        longitude: float,
        chat: ChatRef | None = None,
        reply_to: MessageRef | None = None,
    ) -> MessageRecord:
        """The user shares a location."""
        return self._send(
            user, chat, reply_to, location={"latitude": latitude, "longitude": longitude}
        )

    def edit_text(self, user: UserRef, message: MessageRef, text: str) -> MessageRecord:
        """The user edits a text message of theirs (an edited_message update)."""
        with self.world.lock:
            sender = self._user(user)
            record = self._message(message, None)
            if record.sender is not sender or record.plain_text is None:
                raise ValueError("a user can edit only their own text messages")
            record.text = record.plain_text = text
            record.entities = detect_entities(text)
            record.edit_date = self.world.now()
            record.versions.append(record.snapshot())
            self.world.touch(record)
            if self._reaches_bot(record):
                self.world.push_update("edited_message", record.to_api())
        return record

    def press(
        self,
        user: UserRef,
        message: MessageRef,
        callback_data: str,
        *,
        chat: ChatRef | None = None,
        forged: bool = False,
    ) -> CallbackQueryRecord:
        """The user presses the inline button with `callback_data` on the bot's message.

        The bot must answer (answerCallbackQuery) within the server's window.
        `forged=True` sends data no button carries, as a tampered client could.
        """
        with self.world.lock:
            presser = self._user(user)
            record = self._message(message, chat)
            if not record.from_bot:
                raise ValueError("only the bot's messages carry inline buttons")
            if not forged and callback_data not in record.buttons:
                raise ValueError(f"no button {callback_data!r} on message {record.message_id}")
            return self.world.add_callback_query(presser, record, callback_data)

    def _send(
        self,
        user: UserRef,
        chat: ChatRef | None,
        reply_to: MessageRef | None,
        **content: Any,
    ) -> MessageRecord:
        with self.world.lock:
            sender = self._user(user)
            target = self.chat(chat) if chat is not None else self._chat(sender.id)
            if target.user is not None:
                if target.user is not sender:
                    raise ValueError("a private chat has only its user and the bot")
                self.unblock(sender)
                sender.started = True
            else:
                target.member_ids.add(sender.id)
            replied = self._message(reply_to, target) if reply_to is not None else None
            record = self.world.add_message(target, sender, reply_to=replied, **content)
            if self._reaches_bot(record):
                self.world.push_update("message", record.to_api())
        return record

    def _reaches_bot(self, record: MessageRecord) -> bool:
        # In groups a bot in privacy mode sees only commands and replies to itself.
        if not record.chat.is_group or not self.world.privacy_mode:
            return True
        if record.reply_to is not None and record.reply_to.from_bot:
            return True
        entities = record.entities or record.caption_entities
        return any(entity["type"] == "bot_command" and entity["offset"] == 0 for entity in entities)

    # -- what users see -------------------------------------------------------------

    def messages(self, chat: ChatRef, include_deleted: bool = False) -> list[MessageRecord]:
        """What the bot sent in `chat`, oldest first, each in its current state."""
        with self.world.lock:
            return [
                record
                for record in self.chat(chat).messages.values()
                if record.from_bot and (include_deleted or not record.deleted)
            ]

    def history(self, chat: ChatRef) -> list[MessageRecord]:
        """Every message in `chat` (users' and the bot's), oldest first."""
        with self.world.lock:
            return list(self.chat(chat).messages.values())

    def last(self, chat: ChatRef) -> MessageRecord | None:
        """The bot's latest message in `chat`, or None."""
        sent = self.messages(chat)
        return sent[-1] if sent else None

    def commands(self, user: UserRef, chat: ChatRef | None = None) -> list[JSON]:
        """The command menu `user` sees in `chat` (default: their private chat)."""
        with self.world.lock:
            member = self._user(user)
            target = self.chat(chat) if chat is not None else self._chat(member.id)
            return visible_commands(self.world, target, member)

    def download(self, file: StoredFile | str) -> bytes:
        """The bytes of a file by its file_id (as a user's app would fetch them)."""
        if isinstance(file, StoredFile):
            return file.data
        with self.world.lock:
            if file not in self.world.files:
                raise KeyError(f"no file {file!r}")
            return self.world.files[file].data

    # -- waiting for the bot ------------------------------------------------------------

    async def wait_for(
        self,
        chat: ChatRef,
        predicate: Predicate = None,
        *,
        after: MessageRef | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> MessageRecord:
        """The bot's first message in `chat` that matches, once there is one.

        Parameters:
            predicate: a function of the message, a substring of its text or
                caption, or None for any message.
            after: only messages with a higher message_id count.

        Raises:
            TimeoutError: with what the chat holds, if none matches in time.
        """
        match = self._matcher(chat, predicate, after)
        return await self._until(match, timeout, lambda: self._describe(chat, "a match"))

    async def wait_for_count(
        self, chat: ChatRef, count: int, *, timeout: float = DEFAULT_TIMEOUT
    ) -> list[MessageRecord]:
        """The bot's messages in `chat`, once there are at least `count`."""

        def enough() -> list[MessageRecord] | None:
            sent = self.messages(chat)
            return sent if len(sent) >= count else None

        return await self._until(enough, timeout, lambda: self._describe(chat, f"{count} messages"))

    async def wait_for_answer(
        self, query: CallbackQueryRecord, *, timeout: float = DEFAULT_TIMEOUT
    ) -> CallbackQueryRecord:
        """The callback query, once the bot has answered it."""
        return await self._until(
            lambda: query if query.answered else None,
            timeout,
            lambda: f"callback query {query.data!r} was not answered",
        )

    def wait_for_blocking(
        self,
        chat: ChatRef,
        predicate: Predicate = None,
        *,
        after: MessageRef | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> MessageRecord:
        """`wait_for` for synchronous callers (the server runs in another thread)."""
        match = self._matcher(chat, predicate, after)
        deadline = time.monotonic() + timeout
        while True:
            version = self.world.changes.version
            found = match()
            if found is not None:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(self._describe(chat, "a match"))
            self.world.changes.wait_blocking(version, remaining)

    async def _until(
        self, probe: Callable[[], T | None], timeout: float, describe: Callable[[], str]
    ) -> T:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            version = self.world.changes.version
            found = probe()
            if found is not None:
                return found
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(describe())
            await self.world.changes.wait(version, remaining)

    def _matcher(
        self, chat: ChatRef, predicate: Predicate, after: MessageRef | None
    ) -> Callable[[], MessageRecord | None]:
        floor = after.message_id if isinstance(after, MessageRecord) else (after or 0)

        def matches(record: MessageRecord) -> bool:
            if predicate is None:
                return True
            if isinstance(predicate, str):
                return predicate in _visible_text(record)
            return predicate(record)

        def find() -> MessageRecord | None:
            for record in self.messages(chat):
                if record.message_id > floor and matches(record):
                    return record
            return None

        return find

    def _describe(self, chat: ChatRef, wanted: str) -> str:
        sent = self.messages(chat)
        quoted = "; ".join(
            f"#{record.message_id} {_visible_text(record)[:QUOTE_CHARS]!r}" for record in sent
        )
        return (
            f"no {wanted} from the bot in chat {self.chat(chat).id}; it sent: {quoted or 'nothing'}"
        )

    # -- look-ups -------------------------------------------------------------------------

    def _user(self, user: UserRef) -> User:
        if isinstance(user, User):
            return user
        if user not in self.world.users:
            raise KeyError(f"no user {user}; create it with client.user(...)")
        return self.world.users[user]

    def _chat(self, chat_id: int) -> Chat:
        if chat_id not in self.world.chats:
            raise KeyError(f"no chat {chat_id}")
        return self.world.chats[chat_id]

    def _message(self, message: MessageRef, chat: ChatRef | None) -> MessageRecord:
        if isinstance(message, MessageRecord):
            return message
        if chat is None:
            raise ValueError("a message id needs its chat")
        record = self.world.find_message(self.chat(chat), message)
        if record is None:
            raise KeyError(f"no message {message} in chat {self.chat(chat).id}")
        return record


def _caption(caption: str | None) -> dict[str, Any]:
    if caption is None:
        return {}
    return {
        "caption": caption,
        "plain_caption": caption,
        "caption_entities": detect_entities(caption),
    }


def _visible_text(record: MessageRecord) -> str:
    return record.plain_text or record.plain_caption or ""
