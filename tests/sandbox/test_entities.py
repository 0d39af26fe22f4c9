"""Text as Telegram reads it: HTML entities, UTF-16 offsets, detected commands, keyboards."""

from __future__ import annotations

import pytest

from sandbox.botapi.entities import detect_entities, format_text, parse_html, utf16_len
from sandbox.botapi.errors import ApiError
from sandbox.botapi.files import image_size, photo_sizes, tiny_png
from sandbox.botapi.keyboards import check_reply_markup


def test_html_becomes_plain_text_with_utf16_entities() -> None:
    text, entities = parse_html(
        '🔴 <b>#12</b> <a href="https://t.me/x?start=1">详情</a> &amp; &lt;'
    )

    assert text == "🔴 #12 详情 & <"
    assert entities == [
        {"type": "bold", "offset": 3, "length": 3},
        {"type": "text_link", "offset": 7, "length": 2, "url": "https://t.me/x?start=1"},
    ]


def test_pre_with_a_code_language_is_one_entity() -> None:
    text, entities = parse_html('<pre><code class="language-python">x = 1</code></pre>')

    assert text == "x = 1"
    assert entities == [{"type": "pre", "offset": 0, "length": 5, "language": "python"}]


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("a <div>b</div>", 'Unsupported start tag "div" at byte offset 2'),
        ("<b>open", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler"'),
    ],
)
def test_html_that_telegram_refuses_is_refused(source: str, reason: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse_html(source)

    assert refused.value.status == 400
    assert refused.value.description == f"Bad Request: can't parse entities: {reason}"


def test_markdown_v2_reserved_characters_must_be_escaped() -> None:
    assert format_text(r"*\#1* 已完成\.", "MarkdownV2") == (r"*\#1* 已完成\.", [])

    with pytest.raises(ApiError, match="Character '.' is reserved"):
        format_text("已完成.", "MarkdownV2")


def test_commands_mentions_and_links_are_detected_in_user_text() -> None:
    text = "/new@closeout_sandbox_bot C01 | 食堂 @zhangsan https://example.org/a"

    entities = detect_entities(text)

    assert [(e["type"], e["offset"], e["length"]) for e in entities] == [
        ("bot_command", 0, 25),
        ("mention", 35, 9),
        ("url", 45, 21),
    ]
    assert detect_entities("path/to/file") == []


def test_lengths_are_counted_in_utf16_units() -> None:
    assert utf16_len("问题") == 2
    assert utf16_len("🔴") == 2


def test_keyboards_are_checked_like_telegram() -> None:
    ok = {"inline_keyboard": [[{"text": "ok", "callback_data": "a" * 64}]]}
    assert check_reply_markup(ok) == ok
    with pytest.raises(ApiError, match="BUTTON_DATA_INVALID"):
        check_reply_markup({"inline_keyboard": [[{"text": "x", "callback_data": "a" * 65}]]})
    with pytest.raises(ApiError, match="BUTTON_URL_INVALID"):
        check_reply_markup({"inline_keyboard": [[{"text": "x", "url": "javascript:alert(1)"}]]})
    with pytest.raises(ApiError, match="Text buttons are unallowed"):
        check_reply_markup({"inline_keyboard": [[{"text": "x"}]]})
    with pytest.raises(ApiError, match="reply markup is too long"):
        check_reply_markup({"inline_keyboard": [[{"text": "x", "callback_data": "x"}] * 101]})


def test_image_sizes_are_read_and_scaled() -> None:
    assert image_size(tiny_png(640, 480)) == (640, 480)
    assert image_size(b"plain text") is None
    assert photo_sizes(100, 50) == [(90, 45), (100, 50)]


def test_character_references_are_decoded_in_link_addresses() -> None:
    _, [link] = parse_html('<a href="https://t.me/x?start=a&amp;b=1">去处理</a>')

    assert link["url"] == "https://t.me/x?start=a&b=1"
