"""Polling that confirms an update only once it has been handled.

python-telegram-bot's Updater asks getUpdates for the next offset as soon as
it has queued a batch, before any handler ran: a process killed (SIGKILL, the
OOM killer, a power cut) while /done downloads its evidence has confirmed the
/done to Telegram already, and nobody handles it. This loop asks getUpdates
with the offset of the oldest update still in hand, so Telegram keeps every
update that was not handled to the end and gives it to the next process.

One chat's (and one person's) updates are handled one after another, in
update_id order; updates of other chats and people run alongside. Telegram
sends back, on every getUpdates, the updates at or after the offset, so those
still in hand come again and are skipped here (`Inbox.take`), before they are
parsed: in a burst each update comes back several times, and turning it into
PTB's objects each time was the largest cost after the database. While any
are in hand the loop asks again every `BUSY_POLL_INTERVAL` instead of
long-polling, and not at all while they fill a whole batch (`Inbox.full`:
nothing new could come).

Duplicates are bounded: an update is handled twice only if the process died
while it was in hand (fetched, not yet finished, or finished but not yet
confirmed by the next getUpdates). What is in hand is at most one getUpdates
batch (`BATCH_LIMIT`): the updates in hand are always among the oldest
`BATCH_LIMIT` not confirmed, since newer updates only come after them. A repeat
is harmless — evidence is kept once per message (bot/conversations/evidence.py
`add_entry`), the actions check the item's state first.

SIGINT, SIGTERM or SIGABRT stop the fetching, give the updates in hand
`STOP_GRACE` to finish, confirm the finished ones and exit normally; what did
not finish in time is left unconfirmed for the next process. The webhook (if
any) is deleted at start, keeping its pending updates, as PTB's run_polling does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from telegram import Update
from telegram.error import EndPointNotFound, Forbidden, InvalidToken, RetryAfter, TelegramError
from telegram.warnings import PTBDeprecationWarning, PTBUserWarning

from bot.lifecycle import STOP_GRACE, running, stop_event
from bot.services import BotApplication

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long one getUpdates waits on the server for an update (Telegram's long poll).
POLL_TIMEOUT = 10  # seconds
#: Most updates one getUpdates returns (Telegram's maximum): the most ever in hand.
BATCH_LIMIT = 100
#: Pause between getUpdates calls while updates are in hand (each such call
#: returns at once, with the unfinished updates again).
BUSY_POLL_INTERVAL = 0.2  # seconds
#: First wait after a failed getUpdates (network error, 5xx, 409); doubled on each
#: failure in a row up to `MAX_BACKOFF`.
FIRST_BACKOFF = 1.0  # seconds
#: Longest wait between two failed getUpdates.
MAX_BACKOFF = 30.0  # seconds
#: Seconds a getUpdates answer may take beyond its long poll (PTB's default read timeout).
READ_MARGIN = 5.0

# getUpdates is asked through do_api_request, for the raw updates (parsed only
# when new); PTB warns on every such call that Bot.get_updates exists.
warnings.filterwarnings("ignore", r"Please use 'Bot\.getUpdates'", PTBUserWarning)


@dataclass
class Inbox:
    """The updates fetched and not yet finished, and which offset confirms the rest.

    `offset()` is what getUpdates gets: the oldest update in hand, or the one
    after the newest fetched when nothing is in hand.
    """

    #: The update_id the next new update has at least (all below were taken).
    next_id: int | None = None
    in_hand: set[int] = field(default_factory=set)
    #: Set whenever nothing is in hand.
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()

    def offset(self) -> int | None:
        if self.in_hand:
            return min(self.in_hand)
        return self.next_id

    def full(self) -> bool:
        """Whether a getUpdates now could bring only updates taken already.

        Telegram answers with the `BATCH_LIMIT` oldest from the offset on, and
        update ids follow each other: while the ids from the oldest in hand to
        the newest taken fill a batch, asking again costs CPU and brings nothing.
        """
        offset = self.offset()
        return (
            offset is not None and self.next_id is not None and self.next_id - offset >= BATCH_LIMIT
        )

    def take(self, update_ids: Iterable[int]) -> list[int]:
        """The update ids not seen before, in order, now counted in hand."""
        fresh = sorted(i for i in update_ids if self.next_id is None or i >= self.next_id)
        for update_id in fresh:
            self.in_hand.add(update_id)
            self.next_id = update_id + 1
        if self.in_hand:
            self.idle.clear()
        return fresh

    def finish(self, update_id: int) -> None:
        self.in_hand.discard(update_id)
        if not self.in_hand:
            self.idle.set()


def keys_of(update: Update) -> list[tuple[str, int]]:
    """What the update must keep its order within: its chat and its sender."""
    keys = []
    if update.effective_chat is not None:
        keys.append(("chat", update.effective_chat.id))
    if update.effective_user is not None:
        keys.append(("user", update.effective_user.id))
    return keys


class Poller:
    """The fetch loop and the handling tasks of one application (initialised and started)."""

    def __init__(self, application: BotApplication, *, timeout: int = POLL_TIMEOUT) -> None:
        self.application = application
        self.timeout = timeout
        self.inbox = Inbox()
        self.tasks: set[asyncio.Task[None]] = set()
        #: The last update started for each chat or person, which the next one waits for.
        self.last: dict[tuple[str, int], asyncio.Task[None]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and handle until `stop` is set; then finish what is in hand (up to STOP_GRACE)."""
        fetching = asyncio.create_task(self._fetch(stop))
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({fetching, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            fetching.cancel()
            stopping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fetching
        if fetching.done() and not fetching.cancelled() and fetching.exception() is not None:
            await self._drain()
            raise fetching.exception()  # type: ignore[misc]
        log.info("stopping: finishing the %d updates in hand", len(self.inbox.in_hand))
        await self._drain()
        await self._confirm()

    async def _fetch(self, stop: asyncio.Event) -> None:
        bot = self.application.bot
        await self._retrying(stop, lambda: bot.delete_webhook(drop_pending_updates=False))
        log.info("polling for updates")
        while not stop.is_set():
            if not self.inbox.idle.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.inbox.idle.wait(), BUSY_POLL_INTERVAL)
                if self.inbox.full():
                    continue
            found = await self._retrying(stop, self._get_updates)
            raw = {update["update_id"]: update for update in found}
            for update_id in self.inbox.take(raw):
                self._start(Update.de_json(raw[update_id], bot))

    async def _get_updates(self) -> list[dict[str, Any]]:
        """The raw updates from the offset on (JSON objects, not yet parsed)."""
        # The offset and the long poll are read at each try: a retry after a
        # back-off confirms what finished meanwhile.
        timeout = self.timeout if self.inbox.idle.is_set() else 0
        found: list[dict[str, Any]] = await self.application.bot.do_api_request(
            "getUpdates",
            api_kwargs={"offset": self.inbox.offset(), "limit": BATCH_LIMIT, "timeout": timeout},
            read_timeout=timeout + READ_MARGIN,
        )
        return found

    async def _retrying(self, stop: asyncio.Event, call: Callable[[], Awaitable[T]]) -> T:
        """`call()`'s result, calling again after network errors, 5xx, 409 and 429."""
        backoff = FIRST_BACKOFF
        while True:
            try:
                return await call()
            except (InvalidToken, EndPointNotFound, Forbidden):
                # No retry makes a wrong token right (do_api_request calls the
                # 404 of a token revoked while running EndPointNotFound).
                raise
            except RetryAfter as exc:
                with warnings.catch_warnings():  # int or timedelta, by PTB_TIMEDELTA
                    warnings.simplefilter("ignore", PTBDeprecationWarning)
                    wait = seconds(exc.retry_after)
                log.warning("Telegram asks to wait %.0f s before polling again", wait)
            except TelegramError as exc:  # NetworkError (5xx, time-outs), Conflict, BadRequest
                wait = backoff
                backoff = min(backoff * 2, MAX_BACKOFF)
                log.warning("polling failed (%s); trying again in %.0f s", exc, wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            if stop.is_set():
                raise asyncio.CancelledError

    def _start(self, update: Update) -> None:
        # Each update waits for the one before it in its chat and from its sender.
        before = [self.last[key] for key in keys_of(update) if key in self.last]
        task = asyncio.create_task(self._handle(update, before))
        for key in keys_of(update):
            self.last[key] = task
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _handle(self, update: Update, before: list[asyncio.Task[None]]) -> None:
        if before:
            await asyncio.wait(before)
        try:
            # Handler errors go to the application's error handler, not here.
            await self.application.process_update(update)
        except Exception:
            # Confirmed all the same: one update failing again in every process
            # would hold the offset, and with it every chat, for good.
            log.exception("update %d could not be processed", update.update_id)
        self.inbox.finish(update.update_id)
        for key in keys_of(update):
            if self.last.get(key) is asyncio.current_task():
                del self.last[key]

    async def _drain(self) -> None:
        """Wait up to STOP_GRACE for the updates in hand; cancel the rest (left unconfirmed)."""
        if not self.tasks:
            return
        _, late = await asyncio.wait(set(self.tasks), timeout=STOP_GRACE)
        for task in late:
            task.cancel()
        if late:
            log.warning("left %d unfinished updates for the next process", len(late))
            await asyncio.wait(late)

    async def _confirm(self) -> None:
        """Tell Telegram what was handled, so the next process starts after it."""
        offset = self.inbox.offset()
        if offset is None:
            return
        try:
            await self.application.bot.get_updates(offset=offset, limit=1, timeout=0)
        except TelegramError as exc:  # the next process handles them again: harmless
            log.warning("could not confirm the handled updates: %s", exc)


def seconds(value: int | float | timedelta) -> float:
    """A PTB time period (int seconds or timedelta, by PTB's setting) in seconds."""
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def serve_polling(application: BotApplication) -> None:
    """Poll for the bot until SIGINT, SIGTERM or SIGABRT."""
    asyncio.run(_serve(application))


async def _serve(application: BotApplication) -> None:
    stop = stop_event()
    async with running(application):
        await Poller(application).run(stop)
