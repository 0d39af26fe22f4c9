"""The sandbox's world in memory: users, chats, messages, files and the update queue.

One `World` per server. Everything that changes it holds `lock` (the server
may run in a background thread while a test acts as a user from another), and
every change bumps `changes`, which wakes long polls, the webhook pusher and
tests waiting for the bot.
"""

from __future__ import annotations

import mimetypes
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from sandbox.botapi.changes import Changes
from sandbox.botapi.errors import bad_request
from sandbox.botapi.files import (
    DEFAULT_EXTENSIONS,
    FILE_FOLDERS,
    image_mime,
    new_file_id,
    new_file_unique_id,
    photo_sizes,
)
from sandbox.botapi.records import (
    JSON,
    CallbackQueryRecord,
    Chat,
    MessageRecord,
    StoredFile,
    User,
    WebhookConfig,
)

#: Update types delivered when allowed_updates is empty or was never given.
DEFAULT_UPDATE_TYPES = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)
#: The bot's id when the token does not start with one.
DEFAULT_BOT_ID = 7000000001


def unix_now() -> int:
    """The current time in Unix seconds, as message dates are."""
    return int(time.time())


def bot_id_from_token(token: str) -> int:
    """The bot's user id: the number before the colon of its token."""
    head = token.split(":", 1)[0]
    return int(head) if head.isdigit() else DEFAULT_BOT_ID


class World:
    """Everything the server knows. Mutate only through its methods, under `lock`."""

    def __init__(
        self,
        token: str,
        bot_username: str,
        bot_name: str,
        callback_answer_window: float,
        privacy_mode: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lock = threading.RLock()
        #: Where message dates come from (Unix seconds): the system's time, or
        #: the sandbox's product clock, so messages carry the day they arrive on.
        self.clock = clock
        self.changes = Changes()
        self.token = token
        self.bot = User(
            id=bot_id_from_token(token), first_name=bot_name, username=bot_username, is_bot=True
        )
        #: Seconds within which answerCallbackQuery must follow a press.
        self.callback_answer_window = callback_answer_window
        #: Bots' privacy mode: in groups only commands and replies to the bot arrive.
        self.privacy_mode = privacy_mode
        self.users: dict[int, User] = {}
        self.chats: dict[int, Chat] = {}
        self.files: dict[str, StoredFile] = {}
        self.files_by_path: dict[str, StoredFile] = {}
        #: Every size of a photo, by the file_id of any of its sizes.
        self.photo_sets: dict[str, list[StoredFile]] = {}
        self.pending: deque[JSON] = deque()
        self.next_update_id = 1
        self.allowed_updates: frozenset[str] = DEFAULT_UPDATE_TYPES
        self.webhook: WebhookConfig | None = None
        #: Commands by (canonical scope, language code).
        self.commands: dict[tuple[str, str], list[JSON]] = {}
        #: Menu buttons by chat id (None: the default for all private chats).
        self.menu_buttons: dict[int | None, JSON] = {}
        self.callback_queries: dict[str, CallbackQueryRecord] = {}
        #: Bumped by every getUpdates, so an older long poll knows it was superseded.
        self.poll_generation = 0
        #: Bumped by every message change, for the web chat's "since" queries.
        self.revision = 0
        self.closed = False

    def now(self) -> int:
        """The world's current time in Unix seconds, as message dates are."""
        return int(self.clock())

    # -- people and chats ---------------------------------------------------

    def add_user(
        self,
        user_id: int,
        first_name: str,
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "zh",
        started: bool = True,
    ) -> User:
        """Create (or update) a user and their private chat with the bot."""
        if user_id <= 0:
            raise ValueError("user ids are positive")
        with self.lock:
            user = self.users.get(user_id)
            if user is None:
                user = User(user_id, first_name)
                self.users[user_id] = user
            user.first_name = first_name
            user.last_name = last_name
            user.username = username
            user.language_code = language_code
            user.started = started
            if user_id not in self.chats:
                self.chats[user_id] = Chat(
                    user_id, "private", user=user, instance=self._new_instance()
                )
        self.changes.bump()
        return user

    def add_group(
        self, chat_id: int, title: str, member_ids: set[int], chat_type: str = "group"
    ) -> Chat:
        """Create (or update) a group the bot is a member of."""
        if chat_id >= 0:
            raise ValueError("group chat ids are negative")
        if chat_type not in ("group", "supergroup"):
            raise ValueError("a group's type is 'group' or 'supergroup'")
        with self.lock:
            chat = self.chats.get(chat_id)
            if chat is None:
                chat = Chat(chat_id, chat_type, title=title, instance=self._new_instance())
                self.chats[chat_id] = chat
            chat.title = title
            chat.type = chat_type
            chat.member_ids |= member_ids
        self.changes.bump()
        return chat

    def _new_instance(self) -> str:
        return str(secrets.randbits(62))

    def find_chat(self, chat_id: int | str) -> Chat:
        """The chat with this id (or @username of a user's private chat).

        Raises:
            ApiError: 400 `chat not found`.
        """
        with self.lock:
            if isinstance(chat_id, str) and chat_id.startswith("@"):
                for chat in self.chats.values():
                    if chat.user is not None and chat.user.username == chat_id[1:]:
                        return chat
            elif isinstance(chat_id, int) and chat_id in self.chats:
                return self.chats[chat_id]
        raise bad_request("chat not found")

    # -- messages -----------------------------------------------------------

    def add_message(self, chat: Chat, sender: User, **fields: Any) -> MessageRecord:
        """Append a message to `chat` with the next message id."""
        with self.lock:
            record = MessageRecord(
                chat=chat, message_id=chat.next_message_id, sender=sender, date=self.now(), **fields
            )
            chat.next_message_id += 1
            chat.messages[record.message_id] = record
            record.versions.append(record.snapshot())
            self._touch(record)
        self.changes.bump()
        return record

    def touch(self, record: MessageRecord) -> None:
        """Note that `record` changed (edited, deleted)."""
        with self.lock:
            self._touch(record)
        self.changes.bump()

    def _touch(self, record: MessageRecord) -> None:
        self.revision += 1
        record.revision = self.revision

    def find_message(self, chat: Chat, message_id: int) -> MessageRecord | None:
        """The chat's message with this id, unless unknown or deleted."""
        record = chat.messages.get(message_id)
        if record is None or record.deleted:
            return None
        return record

    # -- files ---------------------------------------------------------------

    def store_file(
        self,
        kind: str,
        data: bytes,
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
        width: int | None = None,
        height: int | None = None,
        duration: int | None = None,
    ) -> StoredFile:
        """Keep `data` as a new file of `kind` with fresh ids and a file_path."""
        if mime_type is None and file_name:
            mime_type = mimetypes.guess_type(file_name)[0]
        extension = PurePosixPath(file_name or "").suffix or DEFAULT_EXTENSIONS.get(kind, "")
        with self.lock:
            number = len(self.files)
            stored = StoredFile(
                file_id=new_file_id(kind),
                file_unique_id=new_file_unique_id(),
                kind=kind,
                data=data,
                file_path=f"{FILE_FOLDERS.get(kind, 'documents')}/file_{number}{extension}",
                file_name=file_name,
                mime_type=mime_type,
                width=width,
                height=height,
                duration=duration,
            )
            self.files[stored.file_id] = stored
            self.files_by_path[stored.file_path] = stored
        return stored

    def store_photo(self, data: bytes, width: int, height: int) -> list[StoredFile]:
        """Keep a photo as Telegram does: one file per size, smallest first."""
        mime = image_mime(data) or "image/jpeg"
        with self.lock:
            sizes = [
                self.store_file("photo", data, mime_type=mime, width=size_width, height=size_height)
                for size_width, size_height in photo_sizes(width, height)
            ]
            for size in sizes:
                self.photo_sets[size.file_id] = sizes
        return sizes

    # -- updates --------------------------------------------------------------

    def push_update(self, kind: str, payload: JSON) -> int:
        """Queue an update of `kind` (e.g. "message") with the next update_id."""
        with self.lock:
            update_id = self.next_update_id
            self.next_update_id += 1
            self.pending.append({"update_id": update_id, kind: payload})
        self.changes.bump()
        return update_id

    def confirm_updates(self, offset: int) -> None:
        """Forget updates before `offset`; a negative offset keeps only the last -offset."""
        with self.lock:
            if offset < 0:
                while len(self.pending) > -offset:
                    self.pending.popleft()
                return
            while self.pending and self.pending[0]["update_id"] < offset:
                self.pending.popleft()

    def next_updates(self, limit: int) -> list[JSON]:
        """Up to `limit` pending updates of the allowed types (others are dropped)."""
        with self.lock:
            kept: deque[JSON] = deque()
            for update in self.pending:
                if update_type(update) in self.allowed_updates:
                    kept.append(update)
            self.pending = kept
            return list(kept)[:limit]

    def drop_pending(self) -> None:
        """Forget every pending update (drop_pending_updates)."""
        with self.lock:
            self.pending.clear()
        self.changes.bump()

    def set_allowed_updates(self, types: list[str] | None) -> None:
        """Change which update types are delivered (None or empty: the default set)."""
        with self.lock:
            self.allowed_updates = frozenset(types) if types else DEFAULT_UPDATE_TYPES

    # -- callback queries -------------------------------------------------------

    def add_callback_query(
        self, user: User, message: MessageRecord, data: str
    ) -> CallbackQueryRecord:
        """Record a button press and queue its callback_query update."""
        with self.lock:
            query = CallbackQueryRecord(
                id=str(secrets.randbits(63)),
                user=user,
                message=message,
                data=data,
                pressed_at=time.monotonic(),
            )
            self.callback_queries[query.id] = query
            self.push_update("callback_query", query.to_api())
        return query

    def close(self) -> None:
        """Wake every waiter for good: the server is stopping."""
        with self.lock:
            self.closed = True
        self.changes.bump()


def update_type(update: JSON) -> str:
    """The kind of an update: its one key besides update_id."""
    return next(key for key in update if key != "update_id")
