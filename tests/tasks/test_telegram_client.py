"""The delivery jobs' Bot API client (tasks/telegram.py) over real HTTP on
loopback: the URL as python-telegram-bot builds it, JSON and multipart bodies,
and Telegram's answers as the exceptions the delivery rules act on."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tasks.telegram import BadRequest, BotApi, Forbidden, RetryAfter, Transient


@dataclass
class Seen:
    path: str
    content_type: str
    body: bytes


@dataclass
class Scripted:
    """A Bot API stand-in that answers each call with the next scripted answer:
    (status, JSON value or raw text, seconds to wait before answering)."""

    url: str
    answers: list[tuple[int, object, float]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)

    def answer(self, status: int, body: object, *, delay: float = 0.0) -> None:
        self.answers.append((status, body, delay))


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    state = Scripted(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length") or 0)
            state.seen.append(
                Seen(self.path, self.headers.get("Content-Type", ""), self.rfile.read(length))
            )
            status, body, delay = state.answers.pop(0)
            time.sleep(delay)
            raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/bot"
    yield state
    server.shutdown()
    server.server_close()


def _api(scripted: Scripted, **options: float) -> BotApi:
    return BotApi(scripted.url, "123:abc", **options)  # type: ignore[arg-type]


def test_a_sent_message_answers_its_id_and_the_url_is_built_as_ptb_builds_it(
    scripted: Scripted,
) -> None:
    scripted.answer(200, {"ok": True, "result": {"message_id": 77}})
    markup = {"inline_keyboard": [[{"text": "Go", "callback_data": "itm:1:1"}]]}
    assert _api(scripted).send_message(5, "你好", markup) == 77
    [seen] = scripted.seen
    assert seen.path == "/bot123:abc/sendMessage" and seen.content_type == "application/json"
    sent = json.loads(seen.body)
    assert sent["chat_id"] == 5 and sent["text"] == "你好" and sent["reply_markup"] == markup


def test_429_becomes_retry_after_with_telegram_s_seconds(scripted: Scripted) -> None:
    scripted.answer(
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 7",
            "parameters": {"retry_after": 7},
        },
    )
    with pytest.raises(RetryAfter) as raised:
        _api(scripted).send_message(5, "hi")
    assert raised.value.seconds == 7


@pytest.mark.parametrize(
    ("status", "description", "error"),
    [
        (403, "Forbidden: bot was blocked by the user", Forbidden),
        (400, "Bad Request: chat not found", BadRequest),
        (502, "Bad Gateway", Transient),
        (500, "Internal Server Error", Transient),
        (401, "Unauthorized", Transient),
    ],
)
def test_telegram_s_errors_map_to_exceptions(
    scripted: Scripted, status: int, description: str, error: type[Exception]
) -> None:
    scripted.answer(status, {"ok": False, "error_code": status, "description": description})
    with pytest.raises(error) as raised:
        _api(scripted).send_message(5, "hi")
    assert description in str(raised.value)


def test_an_answer_that_is_not_the_bot_api_s_is_transient(scripted: Scripted) -> None:
    scripted.answer(502, "<html>bad gateway</html>")
    with pytest.raises(Transient, match="not a Bot API answer"):
        _api(scripted).send_message(5, "hi")


def test_a_call_that_times_out_is_transient(scripted: Scripted) -> None:
    scripted.answer(200, {"ok": True, "result": {"message_id": 1}}, delay=1.0)
    with pytest.raises(Transient, match="timed out"):
        _api(scripted, call_timeout=0.2).send_message(5, "hi")


def test_a_refused_connection_is_transient() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(Transient):
        BotApi(f"http://127.0.0.1:{port}/bot", "123:abc").send_message(5, "hi")


def test_files_are_uploaded_as_multipart_with_their_name(scripted: Scripted) -> None:
    scripted.answer(200, {"ok": True, "result": {"message_id": 9}})
    api = _api(scripted)
    assert api.send_document(5, "通报.xlsx", b"PK\x03\x04", "application/vnd.ms-excel") == 9
    [seen] = scripted.seen
    assert seen.path.endswith("/sendDocument")
    assert seen.content_type.startswith("multipart/form-data; boundary=")
    assert b'name="document"' in seen.body and "通报.xlsx".encode() in seen.body
    assert b"PK\x03\x04" in seen.body and b'name="chat_id"' in seen.body


def test_a_client_makes_call_after_call(scripted: Scripted) -> None:
    api = _api(scripted)
    for n in range(3):
        scripted.answer(200, {"ok": True, "result": {"message_id": n}})
        assert api.send_message(5, f"第{n}条") == n
    assert [json.loads(s.body)["text"] for s in scripted.seen] == ["第0条", "第1条", "第2条"]
