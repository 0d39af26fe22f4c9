"""`closeout bot` as real processes against the local Bot API server (SPEC §7,
DESIGN "Conversations"): the webhook refuses an update without its secret;
webhook processes behind a load balancer (tests/bot/processes.py) carry one
person's flows between them, keep that person's order, and leave an update
whose process died to Telegram's retry; a polling bot killed with SIGKILL in the
middle of /submit, or in the middle of /done's handling, loses nothing, keeps
one person's order, and a polling bot stopped with SIGTERM finishes the update
in hand and confirms it.

Each test runs on SQLite, then PostgreSQL; the processes and the test share the
database, and the people's chats on the local server show what the bot said.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from models import clock
from models.db import transaction
from models.ledger import NewItem, create_item, get_item
from models.people import actor_for
from models.tables import Draft, Evidence, Item, Notification
from sandbox.botapi import (
    BotApiServer,
    Limits,
    MessageRecord,
    SandboxClient,
    User,
    running_server,
    tiny_png,
)
from sandbox.botapi.records import WebhookConfig
from tests.bot.processes import (
    HOOK_PATH,
    LOOPBACK,
    SECRET,
    START_TIMEOUT,
    STOP_TIMEOUT,
    ZONE,
    Balancer,
    BotProcess,
    answer,
    free_port,
    post_update,
    running_balancer,
    say,
    start_bot,
    stop_all,
    tap,
    text_update,
    wait_for,
    wait_for_count,
    wait_listening,
)
from tests.bot.support import People

#: Days until a test item is due (so it is neither overdue nor due soon).
DUE_IN_DAYS = 30
#: How long the Bot API holds a call while the process making it is killed.
HUNG_CALL = 5.0  # seconds
#: Evidence messages one person sends at once, spread over two processes.
BURST = 8
#: update_id of the updates a test posts by hand, far beyond the server's own.
FORGED_UPDATE_ID = 900_000


@pytest.fixture
def botapi() -> Iterator[BotApiServer]:
    """The local Bot API server on a thread of its own: these tests block while they wait."""
    with running_server(limits=Limits(enabled=False)) as server:
        yield server


@pytest.fixture
def bots() -> Iterator[list[BotProcess]]:
    """The bot processes a test starts; any still running are stopped at the end."""
    started: list[BotProcess] = []
    yield started
    stop_all(started)


@pytest.fixture
def balancer() -> Iterator[Balancer]:
    """A load balancer on a free loopback port; WEBHOOK_URL points at it."""
    with running_balancer() as target:
        yield target


def behind(
    balancer: Balancer,
    bots: list[BotProcess],
    database_url: str,
    botapi: BotApiServer,
    tmp_path: Path,
    **settings: str,
) -> list[BotProcess]:
    """Two webhook processes, `a` and `b`, behind the balancer, once both listen."""
    for name in ("a", "b"):
        bots.append(
            start_bot(
                database_url,
                botapi,
                tmp_path / f"{name}.log",
                webhook_url=balancer.url,
                listen_port=free_port(),
                **settings,
            )
        )
    balancer.backends = bots
    for bot in bots:
        wait_listening(bot)
    return bots


def logged_item(engine: Engine, people: People) -> int:
    """An open finding at B01 (secretary M005) logged today by inspector M003."""
    district = people.district
    with transaction(engine) as session:
        today = clock.today(ZONE)
        item = create_item(
            session,
            actor_for(session, district.members["M003"]),
            NewItem(
                kind="problem",
                org_id=district.orgs["B01"],
                title="三会一课记录缺失",
                due_date=today + timedelta(days=DUE_IN_DAYS),
            ),
            today=today,
        )
        assert item.number is not None
        return item.number


def item_in(engine: Engine, number: int) -> Item:
    with Session(engine) as session:
        return get_item(session, number)


def evidence_of(engine: Engine, number: int) -> list[Evidence]:
    with Session(engine) as session:
        query = select(Evidence).where(Evidence.item_number == number).order_by(col(Evidence.id))
        return list(session.exec(query).all())


def told_of_submission(engine: Engine, number: int) -> set[int]:
    """The members the outbox owes a `submitted` push about the item."""
    with Session(engine) as session:
        query = select(Notification.recipient_id).where(
            Notification.item_number == number, Notification.stage == "submitted"
        )
        return {recipient for recipient in session.exec(query) if recipient is not None}


# -- the webhook's secret ----------------------------------------------------------------------


def test_the_webhook_refuses_an_update_without_the_right_secret_and_handles_it_with_it(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    client: SandboxClient,
    people: People,
    bots: list[BotProcess],
    tmp_path: Path,
) -> None:
    number = logged_item(engine, people)
    secretary = people["M005"]
    port = free_port()
    bot = start_bot(
        database_url,
        botapi,
        tmp_path / "bot.log",
        webhook_url=f"http://{LOOPBACK}:{port}{HOOK_PATH}",
        listen_port=port,
    )
    bots.append(bot)
    wait_listening(bot)
    # The local server posts what people send, with the secret the bot set.
    opened = say(client, secretary, f"/submit {number}", f"#{number}", bot)

    evidence = text_update(FORGED_UPDATE_ID, secretary, "已补齐2025年第四季度支委会记录")
    assert post_update(bot.hook_url(), evidence, secret=None) == 403
    assert post_update(bot.hook_url(), evidence, secret="not-" + SECRET) == 403
    assert post_update(bot.hook_url(), evidence, secret=SECRET) == 200

    # Counted once: the two refused posts never reached the open submission.
    answer(client, secretary, opened, "已收到 1 件", bot)
    card = say(client, secretary, "/done", "待验收", bot)
    assert "1 件" in card.text
    rows = evidence_of(engine, number)
    assert [(row.kind, row.text) for row in rows] == [("text", "已补齐2025年第四季度支委会记录")]
    assert item_in(engine, number).status == "submitted"


def test_the_webhook_listens_on_an_ipv6_address_written_in_brackets(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    client: SandboxClient,
    people: People,
    bots: list[BotProcess],
    tmp_path: Path,
) -> None:
    host = "::1"
    port = free_port(host)
    bot = start_bot(
        database_url,
        botapi,
        tmp_path / "bot.log",
        webhook_url=f"http://[{host}]:{port}{HOOK_PATH}",
        listen_port=port,
        listen_host=host,
    )
    bots.append(bot)
    wait_listening(bot)
    say(client, people["M005"], "/whoami", "角色", bot)


# -- two webhook processes ---------------------------------------------------------------------


def test_two_webhook_processes_behind_a_balancer_carry_one_submission_between_them(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    client: SandboxClient,
    people: People,
    bots: list[BotProcess],
    balancer: Balancer,
    tmp_path: Path,
) -> None:
    number = logged_item(engine, people)
    secretary = people["M005"]
    behind(balancer, bots, database_url, botapi, tmp_path)

    balancer.target = 0
    say(client, secretary, f"/submit {number}", f"#{number}", bots[0])
    balancer.target = 1
    photo = client.send_photo(secretary, tiny_png(8, 6))
    answer(client, secretary, photo, "已收到 1 件", bots[1])
    balancer.target = 0
    say(client, secretary, "整改说明：已补齐会议记录", "已收到 2 件", bots[0])
    balancer.target = 1
    card = say(client, secretary, "/done", "待验收", bots[1])

    assert [index for _, index in balancer.served] == [0, 1, 0, 1]
    assert f"#{number} 已提交" in card.text and "2 件" in card.text
    rows = evidence_of(engine, number)
    assert [row.kind for row in rows] == ["photo", "text"]
    assert rows[0].file_unique_id == photo.photo[-1].file_unique_id
    assert rows[1].text == "整改说明：已补齐会议记录"
    item = item_in(engine, number)
    assert item.status == "submitted"
    assert item.submitted_by_id == people.district.members["M005"]
    assert told_of_submission(engine, number) == {
        people.district.members["M003"],
        people.district.members["M004"],
    }


def test_a_guided_new_answered_by_turns_on_two_webhook_processes_ends_with_one_item(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    client: SandboxClient,
    people: People,
    bots: list[BotProcess],
    balancer: Balancer,
    tmp_path: Path,
) -> None:
    inspector = people["M003"]
    behind(balancer, bots, database_url, botapi, tmp_path)

    # Every update goes to the other process than the one before it; the
    # buttons pressed are answered by the process that did not send them.
    balancer.target = 0
    say(client, inspector, "/new", "1/7", bots[0])
    balancer.target = 1
    category = say(client, inspector, "B03", "2/7", bots[1])
    balancer.target = 0
    severity = tap(client, inspector, category, "跳过", "3/7", bots[0])
    balancer.target = 1
    tap(client, inspector, severity, "较重", "4/7", bots[1])
    balancer.target = 0
    evidence = say(client, inspector, "党费收缴不及时", "5/7", bots[0])
    balancer.target = 1
    tap(client, inspector, evidence, "完成", "6/7", bots[1])
    balancer.target = 0
    confirm = say(client, inspector, "10", "7/7", bots[0])
    balancer.target = 1
    card = tap(client, inspector, confirm, "确认", "#1", bots[1])

    assert [index for _, index in balancer.served] == [0, 1] * 4
    assert "已登记问题 #1" in card.text
    item = item_in(engine, 1)
    assert item.org_id == people.district.orgs["B03"]
    assert (item.title, item.severity) == ("党费收缴不及时", "serious")
    assert item.creator_id == people.district.members["M003"]
    with Session(engine) as session:  # what follows is the new item's attach window
        draft = session.get(Draft, people.district.members["M003"])
    assert draft is not None and (draft.flow, draft.item_number) == ("attach", 1)


def test_a_webhook_process_stopped_with_sigterm_exits_cleanly_and_the_other_serves_on(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    client: SandboxClient,
    people: People,
    bots: list[BotProcess],
    balancer: Balancer,
    tmp_path: Path,
) -> None:
    # A rolling restart: one process stops; the webhook Telegram knows must stay set.
    number = logged_item(engine, people)
    secretary = people["M005"]
    behind(balancer, bots, database_url, botapi, tmp_path)
    balancer.target = 0
    say(client, secretary, f"/submit {number}", f"#{number}", bots[0])

    os.killpg(bots[0].process.pid, signal.SIGTERM)
    assert bots[0].process.wait(timeout=STOP_TIMEOUT) == 0, bots[0].output()
    with botapi.world.lock:
        hook = botapi.world.webhook
    assert hook is not None and hook.url == balancer.url

    balancer.target = 1
    say(client, secretary, "/done", "还没有任何佐证材料", bots[1])
    assert [index for _, index in balancer.served] == [0, 1]


def test_a_burst_after_submit_spread_round_robin_over_two_processes_keeps_its_order(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    client: SandboxClient,
    people: People,
    bots: list[BotProcess],
    balancer: Balancer,
    tmp_path: Path,
) -> None:
    # Telegram sends one chat's next update once the webhook answered the last
    # one; the answer must wait for the handling, or the photo below reaches the
    # other process before the submission it belongs to is open.
    number = logged_item(engine, people)
    secretary = people["M005"]
    behind(balancer, bots, database_url, botapi, tmp_path)
    balancer.round_robin = True

    opened = client.send_text(secretary, f"/submit {number}")
    photo = client.send_photo(secretary, tiny_png(8, 6))
    client.send_text(secretary, "整改说明：已补齐会议记录")
    client.send_text(secretary, "/done")
    card = answer(client, secretary, opened, "待验收", bots[0])

    assert [index for _, index in balancer.served] == [0, 1, 0, 1]
    assert f"#{number} 已提交" in card.text and "2 件" in card.text
    rows = evidence_of(engine, number)
    assert [row.kind for row in rows] == ["photo", "text"]
    assert rows[0].file_unique_id == photo.photo[-1].file_unique_id


def test_evidence_posted_to_two_webhook_processes_at_once_is_all_kept(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    client: SandboxClient,
    people: People,
    bots: list[BotProcess],
    balancer: Balancer,
    tmp_path: Path,
) -> None:
    # A balancer spreading one person's burst over both processes: each piece is
    # appended under the draft's row lock, so neither process writes over the other's.
    number = logged_item(engine, people)
    secretary = people["M005"]
    behind(balancer, bots, database_url, botapi, tmp_path)
    opened = say(client, secretary, f"/submit {number}", f"#{number}", bots[0])

    texts = [f"第 {k} 份整改材料" for k in range(BURST)]
    burst = [text_update(FORGED_UPDATE_ID + k, secretary, text) for k, text in enumerate(texts)]
    with ThreadPoolExecutor(max_workers=BURST) as pool:
        statuses = list(
            pool.map(lambda k: post_update(bots[k % 2].hook_url(), burst[k], SECRET), range(BURST))
        )
    assert statuses == [200] * BURST

    acks = wait_for_count(client, secretary, opened, BURST, bots)
    # Each append saw every earlier one: the counts acknowledged are 1 … BURST, once each.
    assert sorted(int(re.findall(r"(\d+) 件", ack.text)[-1]) for ack in acks) == list(
        range(1, BURST + 1)
    )
    card = say(client, secretary, "/done", "待验收", bots[0])
    assert f"{BURST} 件" in card.text
    assert sorted(row.text or "" for row in evidence_of(engine, number)) == sorted(texts)
    assert item_in(engine, number).status == "submitted"


def test_a_webhook_process_killed_mid_update_leaves_it_to_telegrams_retry_on_the_other(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    client: SandboxClient,
    people: People,
    bots: list[BotProcess],
    balancer: Balancer,
    tmp_path: Path,
) -> None:
    # The webhook answers only once the update is handled, so an update whose
    # process dies on the way is never answered, and Telegram sends it again.
    number = logged_item(engine, people)
    secretary = people["M005"]
    archive = tmp_path / "evidence"
    behind(balancer, bots, database_url, botapi, tmp_path, EVIDENCE_DIR=str(archive))
    balancer.target = 0
    say(client, secretary, f"/submit {number}", f"#{number}", bots[0])
    photo = client.send_photo(secretary, tiny_png(8, 6))
    answer(client, secretary, photo, "已收到 1 件", bots[0])

    # /done fetches the photo for the archive before it submits: kill it there.
    botapi.delay("getFile", HUNG_CALL)
    fetches = botapi.calls["getFile"]
    done = client.send_text(secretary, "/done")
    wait_for(
        lambda: botapi.calls["getFile"] > fetches,
        "the first process to fetch the photo for the archive",
        bots[0],
    )
    os.killpg(bots[0].process.pid, signal.SIGKILL)
    bots[0].process.wait(timeout=STOP_TIMEOUT)
    assert item_in(engine, number).status == "open"
    botapi.delay("getFile", 0)
    balancer.target = 1  # the balancer drops the dead process
    card = answer(client, secretary, done, "待验收", bots[1])

    done_update = balancer.served[-1][0]
    assert [index for update, index in balancer.served if update == done_update][0] == 0
    assert f"#{number} 已提交" in card.text and "1 件" in card.text
    assert item_in(engine, number).status == "submitted"
    (row,) = evidence_of(engine, number)
    assert row.file_unique_id == photo.photo[-1].file_unique_id
    assert row.archived_path is not None and Path(row.archived_path).is_file()


# -- SIGKILL in the middle of /submit ------------------------------------------------------------


def test_a_bot_killed_with_sigkill_mid_submission_leaves_it_for_the_next_process_to_finish(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    client: SandboxClient,
    people: People,
    bots: list[BotProcess],
    tmp_path: Path,
) -> None:
    number = logged_item(engine, people)
    secretary = people["M005"]
    first = start_bot(database_url, botapi, tmp_path / "first.log")
    bots.append(first)
    # The first answer also waits for the process to start polling.
    say(client, secretary, f"/submit {number}", f"#{number}", first, timeout=START_TIMEOUT)
    photo = client.send_photo(secretary, tiny_png(8, 6))
    answer(client, secretary, photo, "已收到 1 件", first)

    os.killpg(first.process.pid, signal.SIGKILL)
    assert first.process.wait(timeout=STOP_TIMEOUT) == -signal.SIGKILL
    assert item_in(engine, number).status == "open" and evidence_of(engine, number) == []

    second = start_bot(database_url, botapi, tmp_path / "second.log")
    bots.append(second)
    say(
        client,
        secretary,
        "整改说明：已补齐会议记录",
        "已收到 2 件",
        second,
        timeout=START_TIMEOUT,
    )
    card = say(client, secretary, "/done", "待验收", second)

    assert f"#{number} 已提交" in card.text and "2 件" in card.text
    rows = evidence_of(engine, number)
    assert [row.kind for row in rows] == ["photo", "text"]
    assert rows[0].file_unique_id == photo.photo[-1].file_unique_id
    assert rows[1].text == "整改说明：已补齐会议记录"
    item = item_in(engine, number)
    assert item.status == "submitted"
    assert item.submitted_by_id == people.district.members["M005"]
    # The inspectors who logged and oversee it are owed the news (the outbox rows).
    assert told_of_submission(engine, number) == {
        people.district.members["M003"],
        people.district.members["M004"],
    }


# -- polling that confirms only what was handled (bot/polling.py) ------------------------------


def polling_bot(
    database_url: str, botapi: BotApiServer, bots: list[BotProcess], log: Path, **settings: str
) -> BotProcess:
    bot = start_bot(database_url, botapi, log, **settings)
    bots.append(bot)
    return bot


def submitted_with_a_photo(
    client: SandboxClient, secretary: User, number: int, bot: BotProcess
) -> MessageRecord:
    """/submit, then a photo, acknowledged (the first answer also waits for the start)."""
    say(client, secretary, f"/submit {number}", f"#{number}", bot, timeout=START_TIMEOUT)
    photo = client.send_photo(secretary, tiny_png(8, 6))
    answer(client, secretary, photo, "已收到 1 件", bot)
    return photo


def hang_archive_fetch(
    botapi: BotApiServer, client: SandboxClient, secretary: User, bot: BotProcess
) -> MessageRecord:
    """Send /done with getFile held: return once the bot is inside /done, fetching the photo."""
    botapi.delay("getFile", HUNG_CALL)
    fetches = botapi.calls["getFile"]
    done = client.send_text(secretary, "/done")
    wait_for(
        lambda: botapi.calls["getFile"] > fetches, "the bot to fetch the photo for the archive", bot
    )
    return done


def test_a_polling_bot_killed_with_sigkill_while_handling_done_leaves_it_for_the_next_process(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    client: SandboxClient,
    people: People,
    bots: list[BotProcess],
    tmp_path: Path,
) -> None:
    number = logged_item(engine, people)
    secretary = people["M005"]
    archive = str(tmp_path / "evidence")
    first = polling_bot(database_url, botapi, bots, tmp_path / "first.log", EVIDENCE_DIR=archive)
    photo = submitted_with_a_photo(client, secretary, number, first)

    done = hang_archive_fetch(botapi, client, secretary, first)
    os.killpg(first.process.pid, signal.SIGKILL)
    assert first.process.wait(timeout=STOP_TIMEOUT) == -signal.SIGKILL
    assert item_in(engine, number).status == "open"
    botapi.delay("getFile", 0)

    second = polling_bot(database_url, botapi, bots, tmp_path / "second.log", EVIDENCE_DIR=archive)
    card = answer(client, secretary, done, "待验收", second, timeout=START_TIMEOUT)
    assert f"#{number} 已提交" in card.text and "1 件" in card.text
    assert item_in(engine, number).status == "submitted"
    (row,) = evidence_of(engine, number)
    assert row.file_unique_id == photo.photo[-1].file_unique_id
    assert row.archived_path is not None and Path(row.archived_path).is_file()


def test_a_polling_bot_handles_one_persons_burst_in_the_order_sent(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    client: SandboxClient,
    people: People,
    bots: list[BotProcess],
    tmp_path: Path,
) -> None:
    # All four come in one getUpdates batch; a photo handled before the /submit
    # before it would find no submission open.
    number = logged_item(engine, people)
    secretary = people["M005"]
    opened = client.send_text(secretary, f"/submit {number}")
    photo = client.send_photo(secretary, tiny_png(8, 6))
    client.send_text(secretary, "整改说明：已补齐会议记录")
    client.send_text(secretary, "/done")
    bot = polling_bot(database_url, botapi, bots, tmp_path / "bot.log")

    card = answer(client, secretary, opened, "待验收", bot, timeout=START_TIMEOUT)
    assert f"#{number} 已提交" in card.text and "2 件" in card.text
    rows = evidence_of(engine, number)
    assert [row.kind for row in rows] == ["photo", "text"]
    assert rows[0].file_unique_id == photo.photo[-1].file_unique_id


def test_a_polling_bot_answers_another_person_while_one_update_is_held(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    client: SandboxClient,
    people: People,
    bots: list[BotProcess],
    tmp_path: Path,
) -> None:
    number = logged_item(engine, people)
    secretary = people["M005"]
    archive = str(tmp_path / "evidence")
    bot = polling_bot(database_url, botapi, bots, tmp_path / "bot.log", EVIDENCE_DIR=archive)
    submitted_with_a_photo(client, secretary, number, bot)

    done = hang_archive_fetch(botapi, client, secretary, bot)
    say(client, people["M003"], "/whoami", "角色", bot)
    assert item_in(engine, number).status == "open"  # /done is still in hand
    botapi.delay("getFile", 0)
    answer(client, secretary, done, "待验收", bot)


def test_a_polling_bot_stopped_with_sigterm_finishes_the_update_in_hand_and_exits_0(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    client: SandboxClient,
    people: People,
    bots: list[BotProcess],
    tmp_path: Path,
) -> None:
    number = logged_item(engine, people)
    secretary = people["M005"]
    archive = str(tmp_path / "evidence")
    first = polling_bot(database_url, botapi, bots, tmp_path / "first.log", EVIDENCE_DIR=archive)
    submitted_with_a_photo(client, secretary, number, first)

    done = hang_archive_fetch(botapi, client, secretary, first)
    os.killpg(first.process.pid, signal.SIGTERM)
    assert first.process.wait(timeout=STOP_TIMEOUT) == 0, first.output()
    assert item_in(engine, number).status == "submitted"
    botapi.delay("getFile", 0)

    # The stopped process confirmed the /done it finished: the next does not handle it again.
    second = polling_bot(database_url, botapi, bots, tmp_path / "second.log", EVIDENCE_DIR=archive)
    say(client, secretary, "/whoami", "角色", second, timeout=START_TIMEOUT)
    cards = [m for m in client.messages(secretary.id) if m.message_id > done.message_id]
    assert sum("待验收" in m.text for m in cards) == 1


def test_a_polling_bot_deletes_a_webhook_left_set_and_keeps_its_pending_updates(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    client: SandboxClient,
    people: People,
    bots: list[BotProcess],
    tmp_path: Path,
) -> None:
    # A webhook nobody listens on: the message waits on the server, undelivered.
    with botapi.world.lock:
        botapi.world.webhook = WebhookConfig(
            url=f"http://{LOOPBACK}:{free_port()}{HOOK_PATH}",
            secret_token=SECRET,
            max_connections=1,
        )
    asked = client.send_text(people["M005"], "/whoami")
    bot = polling_bot(database_url, botapi, bots, tmp_path / "bot.log")
    answer(client, people["M005"], asked, "角色", bot, timeout=START_TIMEOUT)
    with botapi.world.lock:
        assert botapi.world.webhook is None
