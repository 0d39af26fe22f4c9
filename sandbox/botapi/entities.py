"""Message text: parse modes, entities and lengths as Telegram counts them.

Telegram measures entity offsets and lengths in UTF-16 code units and checks
the 4096-character limit on the text *after* the markup is parsed. HTML is
parsed like the Bot API does (a closed list of tags, entities out, a clear
error otherwise), so a bot that forgets to escape `<` in a user's title fails
here as it would on Telegram. MarkdownV2 is kept as given (no entities), but
its reserved characters that are never markup must be escaped, as Telegram
demands. Legacy Markdown is kept as given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sandbox.botapi.errors import ApiError, bad_request

#: HTML tags the Bot API accepts, and the entity each one makes.
HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
#: Named character references Telegram decodes in HTML (others stay as typed).
HTML_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
#: MarkdownV2 characters that are never markup and so must always be escaped.
MARKDOWN_V2_ALWAYS_ESCAPED = "#+-={}.!"

_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_ATTRIBUTE = re.compile(r"""\s*([A-Za-z_][A-Za-z0-9_-]*)\s*(?:=\s*("[^"]*"|'[^']*'|[^\s>]+))?""")
_NUMERIC_ENTITY = re.compile(r"&#(x[0-9A-Fa-f]{1,6}|[0-9]{1,7});")
_NAMED_ENTITY = re.compile(r"&([A-Za-z]{2,6});")
#: What the Telegram apps mark in a user's text: commands, @mentions, links.
_DETECTED = (
    ("bot_command", re.compile(r"(?<![\w/@])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z][A-Za-z0-9_]{2,31})?")),
    ("mention", re.compile(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_]{3,31}")),
    ("url", re.compile(r"\bhttps?://[^\s<>\"]+")),
)


def utf16_len(text: str) -> int:
    """The length of `text` in UTF-16 code units, as Telegram counts it."""
    return len(text.encode("utf-16-le")) // 2


@dataclass
class _OpenTag:
    name: str
    offset: int  # in UTF-16 units of the plain text
    attributes: dict[str, str]


def _entity_error(reason: str) -> ApiError:
    return bad_request(f"can't parse entities: {reason}")


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Bot API HTML into plain text and entities.

    Raises:
        ApiError: 400 `can't parse entities: ...` for unsupported or unbalanced tags.
    """
    plain: list[str] = []
    length = 0  # UTF-16 units emitted so far
    stack: list[_OpenTag] = []
    entities: list[dict[str, Any]] = []
    position = 0
    while position < len(source):
        char = source[position]
        if char == "&":
            decoded, consumed = _decode_reference(source, position)
            plain.append(decoded)
            length += utf16_len(decoded)
            position += consumed
            continue
        if char != "<":
            plain.append(char)
            length += utf16_len(char)
            position += 1
            continue
        byte_offset = len(source[:position].encode("utf-8"))
        end = source.find(">", position)
        if source.startswith("</", position):
            if end < 0:
                raise _entity_error(f"Unclosed end tag at byte offset {byte_offset}")
            name = source[position + 2 : end].strip().lower()
            if not stack:
                raise _entity_error(f"Unexpected end tag at byte offset {byte_offset}")
            opened = stack.pop()
            if name != opened.name:
                raise _entity_error(
                    f'Unmatched end tag at byte offset {byte_offset}, expected "</{opened.name}>", '
                    f'found "</{name}>"'
                )
            entity = _close_entity(opened, length, stack)
            if entity is not None:
                entities.append(entity)
            position = end + 1
            continue
        match = _TAG_NAME.match(source, position + 1)
        name = match.group(0).lower() if match else ""
        if name not in HTML_TAGS:
            raise _entity_error(f'Unsupported start tag "{name}" at byte offset {byte_offset}')
        if end < 0:
            raise _entity_error(f"Unclosed start tag at byte offset {byte_offset}")
        assert match is not None
        attributes = _parse_attributes(source[match.end() : end].rstrip("/"))
        if name == "span" and attributes.get("class") != "tg-spoiler":
            raise _entity_error('Tag "span" must have class "tg-spoiler"')
        stack.append(_OpenTag(name, length, attributes))
        position = end + 1
    if stack:
        raise _entity_error(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
    return "".join(plain), entities


def _decode_reference(source: str, position: int) -> tuple[str, int]:
    # A character reference Telegram understands, or a literal "&".
    numeric = _NUMERIC_ENTITY.match(source, position)
    if numeric:
        value = numeric.group(1)
        code = int(value[1:], 16) if value.startswith("x") else int(value)
        if 0 < code <= 0x10FFFF:
            return chr(code), len(numeric.group(0))
    named = _NAMED_ENTITY.match(source, position)
    if named and named.group(1).lower() in HTML_NAMED_ENTITIES:
        return HTML_NAMED_ENTITIES[named.group(1).lower()], len(named.group(0))
    return "&", 1


def _unescape(value: str) -> str:
    # Character references inside an attribute value (e.g. &amp; in an href).
    parts = []
    position = 0
    while position < len(value):
        if value[position] == "&":
            decoded, consumed = _decode_reference(value, position)
            parts.append(decoded)
            position += consumed
        else:
            parts.append(value[position])
            position += 1
    return "".join(parts)


def _parse_attributes(text: str) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for match in _ATTRIBUTE.finditer(text):
        value = match.group(2) or ""
        if value[:1] in ("'", '"'):
            value = value[1:-1]
        attributes[match.group(1).lower()] = _unescape(value)
    return attributes


def _close_entity(opened: _OpenTag, end: int, stack: list[_OpenTag]) -> dict[str, Any] | None:
    # The entity a closed tag makes, or None (empty, or a link without href).
    if end == opened.offset:
        return None
    kind = HTML_TAGS[opened.name]
    entity: dict[str, Any] = {"type": kind, "offset": opened.offset, "length": end - opened.offset}
    if kind == "text_link":
        href = opened.attributes.get("href")
        if not href:
            return None
        entity["url"] = href
    elif kind == "custom_emoji":
        entity["custom_emoji_id"] = opened.attributes.get("emoji-id", "")
    elif kind == "blockquote" and "expandable" in opened.attributes:
        entity["type"] = "expandable_blockquote"
    elif kind == "pre" and opened.attributes.get("language"):
        entity["language"] = opened.attributes["language"]
    elif kind == "code" and stack and stack[-1].name == "pre":
        # <pre><code class="language-python"> marks the language of the block.
        language = opened.attributes.get("class", "").removeprefix("language-")
        if language:
            stack[-1].attributes["language"] = language
            return None
    return entity


def check_markdown_v2(text: str) -> None:
    """Refuse unescaped MarkdownV2 characters that can never be markup.

    Raises:
        ApiError: 400 `can't parse entities: Character 'X' is reserved ...`.
    """
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in MARKDOWN_V2_ALWAYS_ESCAPED:
            raise _entity_error(
                f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
            )


def format_text(text: str, parse_mode: str | None) -> tuple[str, list[dict[str, Any]]]:
    """The text Telegram shows and its entities, for `text` sent with `parse_mode`.

    Raises:
        ApiError: 400 for an unknown parse mode or markup that does not parse.
    """
    mode = (parse_mode or "").lower()
    if mode == "html":
        return parse_html(text)
    if mode == "markdownv2":
        check_markdown_v2(text)
        return text, []
    if mode in ("", "markdown"):
        return text, []
    raise bad_request(f"unsupported parse_mode {parse_mode}")


def detect_entities(text: str) -> list[dict[str, Any]]:
    """The entities a Telegram app marks in text a user typed: commands, mentions, links."""
    entities: list[dict[str, Any]] = []
    for kind, pattern in _DETECTED:
        for match in pattern.finditer(text):
            entities.append(
                {
                    "type": kind,
                    "offset": utf16_len(text[: match.start()]),
                    "length": utf16_len(match.group(0)),
                }
            )
    entities.sort(key=lambda entity: entity["offset"])
    return entities
