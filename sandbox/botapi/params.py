"""Method parameters, read as the Bot API reads them.

A call may come as a query string, a JSON body, a form-urlencoded body or
multipart/form-data with files. python-telegram-bot sends forms: every value
is a string, and objects (reply_markup, reply_parameters, scope, commands,
allowed_updates) are JSON-encoded strings. So each accessor accepts both the
native JSON value and its string form.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField

from sandbox.botapi.errors import bad_request

#: Prefix of a parameter value that points at a multipart part.
ATTACH_PREFIX = "attach://"


@dataclass(frozen=True)
class Upload:
    """A file sent in a multipart request."""

    data: bytes
    filename: str | None
    content_type: str | None


class Params:
    """The parameters of one call, with typed accessors that fail as Telegram does."""

    def __init__(self, values: dict[str, Any], uploads: dict[str, Upload] | None = None) -> None:
        self.values = values
        self.uploads = uploads or {}

    def __contains__(self, name: str) -> bool:
        return self.values.get(name) not in (None, "") or name in self.uploads

    def text(self, name: str, required: bool = False) -> str | None:
        """A string parameter (numbers are given back as their text)."""
        value = self.values.get(name)
        if value is None or value == "":
            if required:
                raise bad_request(f"{name} is empty")
            return None
        return value if isinstance(value, str) else json.dumps(value)

    def integer(self, name: str, required: bool = False) -> int | None:
        """An integer parameter."""
        value = self.values.get(name)
        if value is None or value == "":
            if required:
                raise bad_request(f"{name} is empty")
            return None
        if isinstance(value, bool):
            raise bad_request(f"wrong parameter {name}")
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip())
        except ValueError:
            raise bad_request(f"wrong parameter {name}") from None

    def number(self, name: str) -> float | None:
        """A float parameter."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad_request(f"wrong parameter {name}") from None

    def flag(self, name: str) -> bool:
        """A boolean parameter (absent is False)."""
        value = self.values.get(name)
        if isinstance(value, bool):
            return value
        if value is None:
            return False
        return str(value).strip().lower() in ("true", "1")

    def json(self, name: str) -> Any:
        """An object or array parameter, given natively or as a JSON string."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError:
            if name == "reply_markup":
                raise bad_request("can't parse reply keyboard markup JSON object") from None
            raise bad_request(f"can't parse {name} JSON object") from None

    def chat_id(self, name: str = "chat_id") -> int | str:
        """A chat id: an integer, or "@username"."""
        value = self.values.get(name)
        if value is None or value == "":
            raise bad_request(f"{name} is empty")
        if isinstance(value, str) and value.startswith("@"):
            return value
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request("chat not found") from None

    def input_file(self, name: str) -> Upload | str | None:
        """A file: an uploaded part (directly or via attach://), or a file_id / URL string."""
        if name in self.uploads:
            return self.uploads[name]
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise bad_request(f"wrong parameter {name}")
        if value.startswith(ATTACH_PREFIX):
            upload = self.uploads.get(value.removeprefix(ATTACH_PREFIX))
            if upload is None:
                raise bad_request("wrong file identifier/HTTP URL specified")
            return upload
        return value


async def read_params(request: web.Request) -> Params:
    """Collect a request's parameters from its query string and body."""
    values: dict[str, Any] = dict(request.query)
    uploads: dict[str, Upload] = {}
    content_type = request.content_type
    if request.method == "POST" and request.can_read_body:
        if content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise bad_request("can't parse JSON object") from None
            if not isinstance(body, dict):
                raise bad_request("can't parse JSON object")
            values.update(body)
        elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, FileField):
                    uploads[key] = Upload(value.file.read(), value.filename, value.content_type)
                else:
                    values[key] = value
    return Params(values, uploads)
