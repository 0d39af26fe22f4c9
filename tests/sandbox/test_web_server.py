"""The sandbox's web chat server: the page, who one can be, the bot's activity, the
clock control, and the Bot API server's control API served beside them."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import telegram
from aiohttp.test_utils import TestClient, TestServer

from sandbox.botapi import BotApiServer, tiny_png
from sandbox.demo import Cast, GroupChat, Person
from sandbox.timeline import Busy, ClockRefused, Fired, Moved
from sandbox.web.server import STATIC_DIR, make_app

ZONE = ZoneInfo("Asia/Shanghai")
INSPECTOR = Person(100003, "M003", "张卫东", ("inspector", "member"), "C01", "城关镇党委", "zh")
SECRETARY = Person(100005, "M005", "刘芳", ("secretary", "member"), "B01", "镇机关第一党支部", "zh")
WORK_CHAT = GroupChat(-1001000000001, "城关镇督查工作群", ("M003",), ("daily",), "C01")
CAST = Cast(people=(INSPECTOR, SECRETARY), groups=(WORK_CHAT,))
BUTTON = telegram.InlineKeyboardMarkup(
    [[telegram.InlineKeyboardButton("验收销号", callback_data="ver:11:3")]]
)


class FakeClock:
    """The clock control: answers what it is told to, and records the moves asked for."""

    zone = ZONE
    moving = False

    def __init__(self) -> None:
        self.asked: list[tuple[str | None, date | None]] = []
        self.refuse: Exception | None = None

    def status(self) -> dict[str, Any]:
        return {"date": "2026-03-02", "time": "10:00", "zone": ZONE.key, "moving": self.moving}

    def advance(self, *, by: str | None = None, to: date | None = None) -> Moved:
        self.asked.append((by, to))
        if self.refuse is not None:
            raise self.refuse
        start = datetime(2026, 3, 2, 2, tzinfo=UTC)
        at = datetime(2026, 3, 3, 0, 30, tzinfo=UTC)
        return Moved(
            start, datetime(2026, 3, 3, 1, tzinfo=UTC), [Fired("sweep-morning", "sweep", (), at)]
        )


@pytest.fixture
def control() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def page(server: BotApiServer, control: FakeClock) -> AsyncIterator[TestClient[Any, Any]]:
    """The web chat's server over the running Bot API server's world, with the cast as users."""
    for person in CAST.people:
        server.client.user(person.user_id, person.name)
    server.client.group(WORK_CHAT.chat_id, WORK_CHAT.title, [INSPECTOR.user_id], type="supergroup")
    async with TestClient(TestServer(make_app(server.client, CAST, control))) as client:
        yield client


async def result(response: aiohttp.ClientResponse, status: int = 200) -> Any:
    body = await response.json()
    assert response.status == status, body
    assert body["ok"], body
    return body["result"]


async def refusal(response: aiohttp.ClientResponse, status: int) -> str:
    body = await response.json()
    assert response.status == status and body["ok"] is False, body
    return str(body["error"])


# -- the page -----------------------------------------------------------------------------


async def test_the_page_and_its_files_are_served_and_load_nothing_from_elsewhere(
    page: TestClient[Any, Any],
) -> None:
    index = await page.get("/")
    html = await index.text()
    assert index.status == 200 and index.content_type == "text/html"
    assert '<script src="/static/app.js">' in html and "/static/style.css" in html
    for name in ("app.js", "style.css"):
        served = await page.get(f"/static/{name}")
        assert served.status == 200
        assert await served.text() == (STATIC_DIR / name).read_text(encoding="utf-8")
    for path in STATIC_DIR.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text), path.name
    assert (await page.get("/static/../server.py")).status in (403, 404)


async def test_people_are_listed_with_their_roles_and_their_chats(
    page: TestClient[Any, Any],
) -> None:
    listed = await result(await page.get("/api/people"))
    assert listed["bot"]["username"] == "closeout_sandbox_bot"
    inspector, secretary = listed["people"]
    assert (inspector["name"], inspector["role"], inspector["roles"]) == (
        "张卫东",
        "inspector",
        ["inspector", "member"],
    )
    assert inspector["chats"] == [
        {"id": 100003, "title": "Closeout", "type": "private"},
        {"id": WORK_CHAT.chat_id, "title": "城关镇督查工作群", "type": "group"},
    ]
    assert [chat["id"] for chat in secretary["chats"]] == [100005]  # not in the work chat
    assert secretary["org_name"] == "镇机关第一党支部"


# -- talking to the bot through the page's server --------------------------------------------


async def test_a_user_writes_and_the_bots_reply_and_its_edit_come_back_since_a_revision(
    page: TestClient[Any, Any], bot: telegram.Bot
) -> None:
    sent = await result(
        await page.post(
            f"/_sandbox/chats/{SECRETARY.user_id}/actions",
            json={"type": "text", "user_id": SECRETARY.user_id, "text": "/my"},
        )
    )
    assert not sent["from_bot"] and sent["text"] == "/my"
    card = await bot.send_message(SECRETARY.user_id, "#11 🟢 台账缺失", reply_markup=BUTTON)
    after_reply = await result(
        await page.get(f"/_sandbox/chats/{SECRETARY.user_id}/messages?since={sent['revision']}")
    )
    [reply] = after_reply["messages"]
    assert reply["text"] == "#11 🟢 台账缺失" and reply["reply_markup"] == BUTTON.to_dict()

    waiting = asyncio.create_task(
        page.get(
            f"/_sandbox/chats/{SECRETARY.user_id}/messages"
            f"?since={after_reply['revision']}&timeout=5"
        )
    )
    await asyncio.sleep(0.1)
    await bot.edit_message_text("#11 台账缺失 · 已销号", SECRETARY.user_id, card.message_id)
    [edited] = (await result(await waiting))["messages"]
    assert edited["message_id"] == card.message_id
    assert edited["edit_count"] == 1 and "reply_markup" not in edited


async def test_an_uploaded_photo_and_a_bots_document_can_be_fetched(
    page: TestClient[Any, Any], bot: telegram.Bot
) -> None:
    form = aiohttp.FormData()
    form.add_field("type", "photo")
    form.add_field("user_id", str(SECRETARY.user_id))
    form.add_field("file", tiny_png(8, 6), filename="整改照片.png", content_type="image/png")
    photo = await result(await page.post(f"/_sandbox/chats/{SECRETARY.user_id}/actions", data=form))
    image = await page.get(f"/_sandbox/files/{photo['photo'][-1]['file_id']}")
    assert image.content_type == "image/png" and await image.read() == tiny_png(8, 6)

    sheet = b"PK\x03\x04 a ledger"
    await bot.send_document(SECRETARY.user_id, sheet, filename="closeout-ledger.xlsx")
    messages = await result(await page.get(f"/_sandbox/chats/{SECRETARY.user_id}/messages"))
    document = messages["messages"][-1]["document"]
    assert document["file_name"] == "closeout-ledger.xlsx"
    download = await page.get(f"/_sandbox/files/{document['file_id']}")
    assert await download.read() == sheet
    assert download.content_type.endswith("spreadsheetml.sheet")


async def test_a_press_waits_for_the_bots_answer_which_the_page_shows_as_an_alert(
    page: TestClient[Any, Any], bot: telegram.Bot
) -> None:
    card = await bot.send_message(INSPECTOR.user_id, "#11 待验收", reply_markup=BUTTON)
    pressed = await result(
        await page.post(
            f"/_sandbox/chats/{INSPECTOR.user_id}/actions",
            json={
                "type": "press",
                "user_id": INSPECTOR.user_id,
                "message_id": card.message_id,
                "data": "ver:11:3",
            },
        )
    )
    query_id = pressed["callback_query_id"]
    unanswered = await result(await page.get(f"/_sandbox/callback_queries/{query_id}"))
    assert unanswered["answered"] is False and unanswered["message_id"] == card.message_id

    waiting = asyncio.create_task(page.get(f"/_sandbox/callback_queries/{query_id}?timeout=5"))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await bot.answer_callback_query(query_id, text="此消息已过时", show_alert=True)
    answered = await result(await waiting)
    assert answered == {
        "id": query_id,
        "data": "ver:11:3",
        "message_id": card.message_id,
        "answered": True,
        "text": "此消息已过时",
        "show_alert": True,
        "url": None,
    }
    assert "no callback query" in await refusal(
        await page.get("/_sandbox/callback_queries/404"), 404
    )


async def test_activity_waits_for_a_change_and_counts_the_bots_messages_per_chat(
    page: TestClient[Any, Any], bot: telegram.Bot
) -> None:
    now = await result(await page.get("/api/activity"))
    assert now["chats"][str(SECRETARY.user_id)] == 0
    waiting = asyncio.create_task(page.get(f"/api/activity?since={now['revision']}&timeout=5"))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await bot.send_message(WORK_CHAT.chat_id, "【每日动态】")
    await bot.send_message(SECRETARY.user_id, "新交办事项")
    changed = await result(await waiting)
    assert changed["revision"] > now["revision"]
    counts = changed["chats"]
    assert counts[str(WORK_CHAT.chat_id)] + counts[str(SECRETARY.user_id)] >= 1
    settled = await result(await page.get("/api/activity"))
    assert settled["chats"][str(WORK_CHAT.chat_id)] == 1
    assert settled["chats"][str(SECRETARY.user_id)] == 1
    assert "since must be an integer" in await refusal(await page.get("/api/activity?since=x"), 400)


async def test_messages_are_dated_by_the_clock_the_server_was_given() -> None:
    moved = datetime(2026, 3, 9, 1, tzinfo=UTC)
    async with BotApiServer(clock=moved.timestamp) as server:
        user = server.client.user(100005, "刘芳")
        sent = server.client.send_text(user, "/my")
    assert sent.date == int(moved.timestamp())


# -- the clock --------------------------------------------------------------------------------


async def test_the_clock_is_shown_and_moved_by_a_step_or_to_a_date(
    page: TestClient[Any, Any], control: FakeClock
) -> None:
    assert (await result(await page.get("/api/clock")))["date"] == "2026-03-02"
    moved = await result(await page.post("/api/clock", json={"by": "workday"}))
    assert moved["moved"] == {
        "from": "2026-03-02T10:00+08:00",
        "to": "2026-03-03T09:00+08:00",
        "fired": [
            {
                "name": "sweep-morning",
                "actor": "sweep",
                "args": [],
                "at": "2026-03-03T08:30+08:00",
                "error": None,
            }
        ],
    }
    assert moved["clock"]["zone"] == "Asia/Shanghai"
    await result(await page.post("/api/clock", json={"to": "2026-03-20"}))
    assert control.asked == [("workday", None), (None, date(2026, 3, 20))]


async def test_a_bad_move_is_refused_with_one_sentence(
    page: TestClient[Any, Any], control: FakeClock
) -> None:
    assert "not a date" in await refusal(await page.post("/api/clock", json={"to": "3/20"}), 400)
    assert "JSON object" in await refusal(await page.post("/api/clock", data=b"soon"), 400)
    control.refuse = ClockRefused("2026-03-01 is not after today (2026-03-02)")
    assert "not after today" in await refusal(
        await page.post("/api/clock", json={"to": "2026-03-01"}), 400
    )
    control.refuse = Busy("the clock is being moved")
    assert "being moved" in await refusal(await page.post("/api/clock", json={"by": "day"}), 409)
