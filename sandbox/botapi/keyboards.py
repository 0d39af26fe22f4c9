"""Reply markup: checked as the Bot API checks it.

Inline keyboards are what Closeout's cards carry; every button must do exactly
one thing, `callback_data` is 1-64 bytes (else `BUTTON_DATA_INVALID`) and a
`url` must be http(s) or tg://. Reply keyboards, keyboard removal and force
reply are accepted as given; only inline keyboards come back on a Message.
"""

from __future__ import annotations

from typing import Any

from sandbox.botapi.errors import bad_request

#: Bytes allowed in a button's callback_data.
MAX_CALLBACK_DATA = 64  # bytes
#: Buttons allowed in one inline keyboard.
MAX_INLINE_BUTTONS = 100
#: Fields of which an inline button must carry exactly one.
INLINE_BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
#: Schemes a button's url may use.
BUTTON_URL_SCHEMES = ("http://", "https://", "tg://")
#: The shapes of reply markup, by their identifying key.
MARKUP_KINDS = ("inline_keyboard", "keyboard", "remove_keyboard", "force_reply")


def check_reply_markup(markup: Any) -> dict[str, Any] | None:
    """Validate `reply_markup` and return it (None when absent).

    Raises:
        ApiError: 400 with Telegram's reason for the first invalid part.
    """
    if markup is None:
        return None
    if not isinstance(markup, dict) or not any(key in markup for key in MARKUP_KINDS):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        _check_inline_keyboard(markup["inline_keyboard"])
    elif "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request('field "keyboard" must be an Array of Array')
    return markup


def _check_inline_keyboard(rows: Any) -> None:
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request('field "inline_keyboard" must be an Array of Array')
    count = 0
    for row in rows:
        for button in row:
            count += 1
            _check_inline_button(button)
    if count > MAX_INLINE_BUTTONS:
        raise bad_request("reply markup is too long")


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise bad_request(
            'can\'t parse inline keyboard button: Field "text" must be of type String'
        )
    actions = [key for key in INLINE_BUTTON_ACTIONS if key in button]
    if not actions:
        raise bad_request(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    if len(actions) > 1:
        raise bad_request("can't parse inline keyboard button: exactly one action is allowed")
    if "callback_data" in button:
        data = button["callback_data"]
        if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA:
            raise bad_request("BUTTON_DATA_INVALID")
    if "url" in button:
        url = button["url"]
        if not isinstance(url, str) or not url.lower().startswith(BUTTON_URL_SCHEMES):
            raise bad_request("BUTTON_URL_INVALID")


def inline_keyboard(markup: dict[str, Any] | None) -> dict[str, Any] | None:
    """The inline keyboard a Message carries, or None (other markup is not echoed)."""
    if markup and markup.get("inline_keyboard"):
        return {"inline_keyboard": markup["inline_keyboard"]}
    return None


def callback_data_values(markup: dict[str, Any] | None) -> list[str]:
    """Every callback_data on the inline keyboard, in reading order."""
    keyboard = inline_keyboard(markup)
    if keyboard is None:
        return []
    return [
        button["callback_data"]
        for row in keyboard["inline_keyboard"]
        for button in row
        if "callback_data" in button
    ]
