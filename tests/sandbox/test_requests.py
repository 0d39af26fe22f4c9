"""Calls in every shape the Bot API accepts: query string, JSON, form, multipart."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from sandbox.botapi import BotApiServer, SandboxClient, User
from tests.sandbox.support import ALICE_ID

KEYBOARD = {"inline_keyboard": [[{"text": "ok", "callback_data": "ok:1"}]]}


@pytest.fixture
async def http(server: BotApiServer) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP session rooted at the server."""
    async with aiohttp.ClientSession(base_url=server.url) as session:
        yield session


def method(server: BotApiServer, name: str) -> str:
    return f"/bot{server.token}/{name}"


async def test_a_get_with_a_query_string_works(
    server: BotApiServer, http: aiohttp.ClientSession, alice: User
) -> None:
    response = await http.get(
        method(server, "sendMessage"), params={"chat_id": str(ALICE_ID), "text": "hi"}
    )

    body = await response.json()
    assert body["ok"] and body["result"]["text"] == "hi"


async def test_a_json_body_may_nest_objects_natively(
    server: BotApiServer, http: aiohttp.ClientSession, client: SandboxClient, alice: User
) -> None:
    response = await http.post(
        method(server, "sendmessage"),  # method names are case-insensitive
        json={"chat_id": ALICE_ID, "text": "hi", "reply_markup": KEYBOARD},
    )

    assert (await response.json())["result"]["reply_markup"] == KEYBOARD
    assert client.messages(ALICE_ID)[0].buttons == ["ok:1"]


async def test_a_form_carries_objects_as_json_strings(
    server: BotApiServer, http: aiohttp.ClientSession, alice: User
) -> None:
    response = await http.post(
        method(server, "sendMessage"),
        data={"chat_id": str(ALICE_ID), "text": "hi", "reply_markup": json.dumps(KEYBOARD)},
    )
    broken = await http.post(
        method(server, "sendMessage"),
        data={"chat_id": str(ALICE_ID), "text": "hi", "reply_markup": "{not json"},
    )

    assert (await response.json())["result"]["reply_markup"] == KEYBOARD
    assert await broken.json() == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: can't parse reply keyboard markup JSON object",
    }


async def test_multipart_files_may_be_attached_by_name(
    server: BotApiServer, http: aiohttp.ClientSession, alice: User
) -> None:
    form = aiohttp.FormData()
    form.add_field("chat_id", str(ALICE_ID))
    form.add_field("document", "attach://report")
    form.add_field("report", b"a,b\n1,2\n", filename="ledger.csv", content_type="text/csv")

    response = await http.post(method(server, "sendDocument"), data=form)

    document = (await response.json())["result"]["document"]
    assert (document["file_name"], document["mime_type"], document["file_size"]) == (
        "ledger.csv",
        "text/csv",
        8,
    )
    file = await (await http.post(method(server, "getFile"), json=document)).json()
    path = file["result"]["file_path"]
    download = await http.get(f"/file/bot{server.token}/{path}")
    assert await download.read() == b"a,b\n1,2\n"
    assert (await http.get(f"/file/botwrong/{path}")).status == 401
    assert (await http.get(f"/file/bot{server.token}/documents/nothing")).status == 404


async def test_a_missing_parameter_is_named(
    server: BotApiServer, http: aiohttp.ClientSession, alice: User
) -> None:
    no_chat = await (await http.post(method(server, "sendMessage"), json={"text": "x"})).json()
    no_text = await (
        await http.post(method(server, "sendMessage"), json={"chat_id": ALICE_ID})
    ).json()

    assert no_chat["description"] == "Bad Request: chat_id is empty"
    assert no_text["description"] == "Bad Request: message text is empty"
