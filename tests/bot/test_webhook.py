"""The webhook's HTTP side in-process (bot/webhook.py): what it refuses before any handler."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.services import BotApplication
from bot.webhook import SECRET_HEADER, Webhook, make_app

SECRET = "in-process_Secret-7"
HOOK = Webhook(url="https://bot.example.org/hook", secret=SECRET, host="", port=0, path="hook")


@pytest.fixture
async def http(app: BotApplication) -> AsyncIterator[TestClient]:
    """The webhook of the (initialised) bot, on a test server."""
    async with TestClient(TestServer(make_app(app, HOOK))) as client:
        yield client


@pytest.mark.parametrize("body", ["not json", "[1, 2]", "null", "{}"])
async def test_a_request_with_the_secret_that_is_not_an_update_gets_400(
    http: TestClient, body: str
) -> None:
    response = await http.post("/hook", data=body, headers={SECRET_HEADER: SECRET})
    assert response.status == 400


async def test_a_request_to_another_path_gets_404(http: TestClient) -> None:
    response = await http.post("/elsewhere", json={"update_id": 1}, headers={SECRET_HEADER: SECRET})
    assert response.status == 404
