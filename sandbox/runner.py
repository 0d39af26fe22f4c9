"""`closeout sandbox`: the whole product in one process, without Telegram.

    Sandbox(data_dir, port=8080).start()

1. the database: `sandbox.db` in the data folder, created fresh (or kept),
   migrated, and loaded with the demo district (sandbox.demo), its ledger
   dated for today;
2. the product's clock: a SandboxClock given to models.clock.set_clock,
   resumed where a kept sandbox left it;
3. the local Bot API server (sandbox.botapi) on loopback, with Telegram's
   limits but a burst per chat, so the bot's replies to one person are not
   throttled; every bound member is a user there, and the demo's work chats
   are groups;
4. the follow-ups on the embedded defaults (no Redis, as `closeout run`):
   the actors on the in-process broker with a worker in this process, and the
   calendar and the pump kept by a sandbox.timeline.Timeline, which can move
   the clock and replay what the skipped time owed; the morning's sweep runs
   once at start;
5. the bot (bot.app.build_application), polling the local server, handing
   what each transaction owes to the delivery jobs;
6. the web chat (sandbox.web) at http://127.0.0.1:PORT.

QUIET_HOURS is empty, so nothing waits for the morning; the other settings
come from the environment as usual (TIMEZONE, LANGUAGE, WARN_DAYS, the ladder).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import Engine
from sqlmodel import Session

from models import clock as product_clock
from models.db import make_engine, transaction, upgrade
from models.delivery import owed_by
from models.holidays import load_calendar
from models.tables import Meta
from models.workdays import WorkCalendar
from sandbox.botapi import BotApiServer, Limits, running_server
from sandbox.clock import SandboxClock
from sandbox.demo import DATED_LEDGER, Cast, bulletin_chats, load_demo, read_cast, read_groups
from sandbox.timeline import Timeline
from sandbox.web.server import make_app
from settings import Settings, load_settings
from tasks.scheduler import Entry

if TYPE_CHECKING:
    import dramatiq

    from bot.services import BotApplication
    from tasks import Runtime

log = logging.getLogger(__name__)

#: The page's port unless told otherwise.
DEFAULT_PORT = 8080
#: Where everything listens: this machine only.
LOOPBACK = "127.0.0.1"
#: The database file in the data folder.
DATABASE_FILE = "sandbox.db"
#: Telegram's limits, but up to this many messages at once in one chat (then
#: Telegram's one a second again), so a reply and the pushes of a move pass.
PER_CHAT_BURST = 20  # messages
#: Worker threads of the in-process job worker.
JOB_THREADS = 4
#: Longest wait for the deliveries a firing owed before time moves on.
SETTLE_TIMEOUT = 15.0  # seconds
#: A pending row that may go this soon counts as owed now (a chat's flood window
#: defers by a second or so).
SETTLE_HORIZON = timedelta(seconds=5)
#: Seconds between two looks while settling.
SETTLE_POLL = 0.05  # seconds
#: Seconds a getUpdates call of the bot waits for an update.
POLL_TIMEOUT = 10  # seconds
#: Seconds the web server lets open requests (long polls) finish on stop.
SHUTDOWN_TIMEOUT = 1.0  # seconds
#: Meta key remembering the clock of a kept sandbox.
CLOCK_KEY = "sandbox.clock"
#: The delivery jobs' queue (tasks.delivery.QUEUE), which settling waits on.
DELIVERY_QUEUE = "delivery"


@dataclass(frozen=True)
class Addresses:
    """Where the running sandbox answers."""

    page: str
    bot_api: str
    database: Path
    ledger: Path


class Sandbox:
    """The demo, the local Bot API server, the bot, the follow-ups and the web chat.

    Parameters:
        data_dir: where `sandbox.db` and the dated ledger go.
        port: the web chat's port (0: a free one, see `addresses.page`).
        keep: keep an existing `sandbox.db` (and its clock) instead of starting fresh.
        threads: worker threads of the job worker.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = DEFAULT_PORT,
        keep: bool = False,
        threads: int = JOB_THREADS,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.keep = keep
        self.threads = threads
        self.database = self.data_dir / DATABASE_FILE
        self.kept = False
        self.clock: SandboxClock | None = None
        self.botapi: BotApiServer | None = None
        self.settings: Settings | None = None
        self.engine: Engine | None = None
        self.cast: Cast | None = None
        self.timeline: Timeline | None = None
        self._application: BotApplication | None = None
        self._stop_polling = asyncio.Event()
        self._polling: asyncio.Task[None] | None = None
        self._jobs: dramatiq.Worker | None = None
        self._runtime: Runtime | None = None
        self._web: web.AppRunner | None = None
        self._threads = ExitStack()  # the Bot API server's thread

    @property
    def addresses(self) -> Addresses:
        assert self.botapi is not None
        return Addresses(
            page=f"http://{LOOPBACK}:{self.port}",
            bot_api=self.botapi.base_url,
            database=self.database,
            ledger=self.data_dir / DATED_LEDGER,
        )

    async def start(self) -> None:
        """Start everything; raises OSError when the port is taken, SettingsError on a bad
        setting in the environment (nothing is left running then)."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        if self.port:
            _check_free(self.port)  # say so now, not after the demo is loaded
        url = f"sqlite:///{self.database}"
        # The environment's other settings apply (TIMEZONE, LANGUAGE, WARN_DAYS, the
        # ladder); a bad one stops us here, before anything is deleted or started.
        settings = load_settings(
            DATABASE_URL=url,
            REDIS_URL="",
            QUIET_HOURS="",
            WEBHOOK_URL="",
            EVIDENCE_DIR="",
            BULLETIN_CHATS=bulletin_chats(read_groups()),
        )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.kept = self.keep and self.database.exists()
        if not self.kept:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.database}{suffix}").unlink(missing_ok=True)
        await asyncio.to_thread(upgrade, url)
        engine = self.engine = make_engine(url)

        clock = self.clock = SandboxClock(_remembered_clock(engine) if self.kept else None)
        product_clock.set_clock(clock)

        # On a loop of its own, so nothing the bot or the jobs do can keep it from answering.
        botapi = self.botapi = self._threads.enter_context(
            running_server(
                host=LOOPBACK, limits=Limits(per_chat_burst=PER_CHAT_BURST), clock=clock.unix
            )
        )
        settings = self.settings = settings.model_copy(
            update={
                "BOT_TOKEN": botapi.token,
                "BOT_USERNAME": botapi.world.bot.username,
                "TELEGRAM_API_URL": botapi.base_url,
                "TELEGRAM_FILE_URL": botapi.file_url,
            }
        )

        if self.kept:
            cast = read_cast(engine)
        else:
            today = product_clock.today(settings.zone)
            cast = await asyncio.to_thread(
                load_demo, engine, today=today, out_dir=self.data_dir, zone=settings.zone
            )
        self.cast = cast
        for person in cast.people:
            botapi.client.user(person.user_id, person.name, language_code=person.language)
        for group in cast.groups:
            members = [cast.person(code).user_id for code in group.member_codes]
            botapi.client.group(group.chat_id, group.title, members, type="supergroup")

        await asyncio.to_thread(self._start_followups, settings, engine, clock)
        await self._start_bot(settings, engine)
        await self._start_web()

    def _start_followups(self, settings: Settings, engine: Engine, clock: SandboxClock) -> None:
        # The actors and a worker in this process; the calendar and the pump in the timeline.
        from tasks import load_actors
        from tasks.broker import start_embedded_worker

        rt = self._runtime = load_actors(settings, engine=engine)
        from tasks.delivery import pump_once  # an actor module: after load_actors

        broker = rt.broker
        assert isinstance(broker, StubBroker)  # REDIS_URL is unset: the embedded default
        self._jobs = start_embedded_worker(broker, threads=self.threads)

        def fire(entry: Entry) -> None:
            broker.get_actor(entry.actor_name)(*entry.args, **entry.kwargs)

        def settle() -> None:
            if not settle_deliveries(broker, engine, timeout=SETTLE_TIMEOUT):
                log.info("sandbox: deliveries still on their way after %.0f s", SETTLE_TIMEOUT)

        def pump() -> None:
            # Rows nobody enqueued (a bulletin's, an import's) go at once.
            pump_once(rt, fresh_grace=timedelta(0))

        def calendar() -> WorkCalendar:
            with Session(engine) as session:
                return load_calendar(session)

        # The in-memory queue starts empty: every row still pending is owed a job now.
        pump_once(rt, grace=timedelta(0), fresh_grace=timedelta(0))
        self.timeline = Timeline(
            clock,
            settings.zone,
            fire=fire,
            settle=settle,
            pump=pump,
            calendar=calendar,
            on_moved=lambda moment: _remember_clock(engine, moment),
        )
        if not self.kept:
            self.timeline.run_now("sweep")  # the morning's reminders and escalations
        self.timeline.start()

    async def _start_bot(self, settings: Settings, engine: Engine) -> None:
        from bot.app import build_application
        from bot.polling import Poller
        from tasks.delivery import enqueue_changes

        application = build_application(settings, engine)
        application.bot_data.enqueue = enqueue_changes
        await application.initialize()
        self._application = application
        # serve_polling calls post_init between initialize and start; so do we.
        assert application.post_init is not None
        await application.post_init(application)
        await application.start()
        self._stop_polling.clear()
        self._polling = asyncio.create_task(
            Poller(application, timeout=POLL_TIMEOUT).run(self._stop_polling)
        )

    async def _start_web(self) -> None:
        assert self.botapi is not None and self.cast is not None and self.timeline is not None
        app = make_app(self.botapi.client, self.cast, self.timeline)
        runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT, access_log=None)
        await runner.setup()
        self._web = runner
        site = web.TCPSite(runner, LOOPBACK, self.port)
        await site.start()
        self.port = runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop everything that started, newest first; the clock is remembered."""
        if self._web is not None:
            await self._web.cleanup()
            self._web = None
        application = self._application
        if application is not None:
            self._application = None
            if self._polling is not None:
                self._stop_polling.set()
                await self._polling
                self._polling = None
            if application.running:
                await application.stop()
            await application.shutdown()
        if self.timeline is not None:
            await asyncio.to_thread(self.timeline.stop)
        if self._jobs is not None:
            await asyncio.to_thread(self._jobs.stop, 5_000)
            self._jobs = None
        if self._runtime is not None:
            self._runtime.broker.close()
            self._runtime.telegram.close()
            self._runtime = None
        await asyncio.to_thread(self._threads.close)
        if self.engine is not None:
            if self.clock is not None:
                _remember_clock(self.engine, self.clock())
            self.engine.dispose()
        product_clock.set_clock(None)


def _check_free(port: int) -> None:
    # Raises OSError (address in use) as binding the page's server would.
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp does
        probe.bind((LOOPBACK, port))


def settle_deliveries(broker: StubBroker, engine: Engine, *, timeout: float) -> bool:
    """Wait until what is owed by now has left: the delivery queue is empty and no
    pending row may go within SETTLE_HORIZON. False if that took over `timeout` s.

    Not `broker.join`: it also waits for the jobs the queue holds for later (a
    lease's end, a retry_after, a job enqueued for a row another job then sent),
    and each of those waits out its delay in real time, however far the clock
    has moved.
    """
    deliveries = broker.queues[DELIVERY_QUEUE]
    deadline = time.monotonic() + timeout

    def busy() -> bool:
        if deliveries.unfinished_tasks:
            return True
        with transaction(engine, read_only=True) as session:
            return owed_by(session, product_clock.now() + SETTLE_HORIZON)

    while busy():
        if time.monotonic() > deadline:
            return False
        time.sleep(SETTLE_POLL)
    return True


def _remembered_clock(engine: Engine) -> datetime | None:
    with Session(engine) as session:
        row = session.get(Meta, CLOCK_KEY)
    return datetime.fromisoformat(row.value) if row else None


def _remember_clock(engine: Engine, moment: datetime) -> None:
    with transaction(engine) as session:
        row = session.get(Meta, CLOCK_KEY) or Meta(key=CLOCK_KEY, value="")
        row.value = moment.isoformat()
        session.add(row)
