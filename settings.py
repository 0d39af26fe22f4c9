"""Closeout's settings: one object, read from the environment and `.env`.

Nothing here connects to anything; `get_settings()` builds the object once and
caches it. A bad value stops start-up with one line naming the setting (exit 2),
see `load_or_exit`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import time
from functools import lru_cache
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Exit code for a bad setting, as for a command-line usage error.
EXIT_BAD_SETTING = 2

BULLETIN_KINDS = ("daily", "weekly", "monthly", "quarterly")
LANGUAGES = ("zh", "en")


@dataclass(frozen=True)
class QuietHours:
    """A nightly window in local time in which pushes wait; it may cross midnight."""

    start: time
    end: time

    def contains(self, moment: time) -> bool:
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


@dataclass(frozen=True)
class BulletinChat:
    kind: str
    chat_id: int
    org_code: str | None


def _parse_hhmm(text: str) -> time:
    hours, _, minutes = text.strip().partition(":")
    return time(int(hours), int(minutes or 0))


def _unbracketed(host: str) -> str:
    # URLs write an IPv6 host in brackets ([::]:8443); sockets bind it without them.
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


def _int_list(value: object, *, name: str) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        items = [int(v) for v in value]
    else:
        text = str(value).strip()
        try:
            items = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise ValueError(f"{name} takes comma-separated working-day counts, e.g. 3,1") from None
    if any(v < 0 for v in items):
        raise ValueError(f"{name} takes non-negative working-day counts")
    return tuple(items)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=True
    )

    BOT_TOKEN: str | None = None
    BOT_USERNAME: str | None = None
    TELEGRAM_API_URL: str = "https://api.telegram.org/bot"
    TELEGRAM_FILE_URL: str = "https://api.telegram.org/file/bot"
    DATABASE_URL: str = "sqlite:///closeout.db"
    REDIS_URL: str | None = None
    TIMEZONE: str = "Asia/Shanghai"
    LANGUAGE: str = "zh"
    QUIET_HOURS: Annotated[QuietHours | None, NoDecode] = QuietHours(time(22, 0), time(7, 30))
    WARN_DAYS: int = 3
    WEBHOOK_URL: str | None = None
    WEBHOOK_SECRET: str | None = None
    WEBHOOK_LISTEN: str = "0.0.0.0:8443"
    EVIDENCE_DIR: str | None = None
    REMIND_DAYS: Annotated[tuple[int, ...], NoDecode] = (3, 1)
    ESCALATE_DAYS: Annotated[tuple[int, ...], NoDecode] = (5, 10)
    MAX_INSPECTIONS_PER_YEAR: int = 2
    BULLETIN_CHATS: Annotated[tuple[BulletinChat, ...], NoDecode] = ()
    INVITE_DAYS: int = 14
    #: `closeout bot` and `closeout run` keep their threads on one CPU (cli/affinity.py).
    PIN_CPU: str = "auto"

    @field_validator("DATABASE_URL")
    @classmethod
    def _database_url(cls, value: str) -> str:
        value = value.strip()
        # Heroku-style URLs name the dialect "postgres"; SQLAlchemy needs a driver.
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        if not value.startswith(("sqlite:", "postgresql+")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value

    @field_validator("REDIS_URL", "WEBHOOK_URL", "WEBHOOK_SECRET", "EVIDENCE_DIR", "BOT_TOKEN")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("PIN_CPU")
    @classmethod
    def _pin_cpu(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in ("auto", "off") and not value.isdigit():
            raise ValueError("must be auto, off or a CPU number, e.g. 0")
        return value

    @field_validator("REDIS_URL")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL")
        return value

    @field_validator("TIMEZONE")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("LANGUAGE")
    @classmethod
    def _language(cls, value: str) -> str:
        if value not in LANGUAGES:
            raise ValueError("must be zh or en")
        return value

    @field_validator("QUIET_HOURS", mode="before")
    @classmethod
    def _quiet_hours(cls, value: object) -> QuietHours | None:
        if value is None or isinstance(value, QuietHours):
            return value
        text = str(value).strip()
        if not text:
            return None
        start, sep, end = text.partition("-")
        try:
            if not sep:
                raise ValueError
            return QuietHours(_parse_hhmm(start), _parse_hhmm(end))
        except ValueError as exc:
            raise ValueError("must be HH:MM-HH:MM, e.g. 22:00-07:30, or empty") from exc

    @field_validator("WARN_DAYS", "MAX_INSPECTIONS_PER_YEAR", "INVITE_DAYS")
    @classmethod
    def _non_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must not be negative")
        return value

    @field_validator("REMIND_DAYS", mode="before")
    @classmethod
    def _remind_days(cls, value: object) -> tuple[int, ...]:
        return tuple(sorted(set(_int_list(value, name="REMIND_DAYS")), reverse=True))

    @field_validator("ESCALATE_DAYS", mode="before")
    @classmethod
    def _escalate_days(cls, value: object) -> tuple[int, ...]:
        days = _int_list(value, name="ESCALATE_DAYS")
        if len(days) != 2 or not 0 < days[0] < days[1]:
            raise ValueError("takes two increasing working-day counts, e.g. 5,10")
        return days

    @field_validator("WEBHOOK_LISTEN")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not _unbracketed(host) or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be HOST:PORT, e.g. 0.0.0.0:8443 or [::]:8443")
        return value

    @field_validator("BULLETIN_CHATS", mode="before")
    @classmethod
    def _bulletin_chats(cls, value: object) -> tuple[BulletinChat, ...]:
        if isinstance(value, tuple):
            return value
        chats = []
        for entry in str(value or "").split(","):
            entry = entry.strip()
            if not entry:
                continue
            parts = entry.split(":")
            if len(parts) not in (2, 3) or parts[0] not in BULLETIN_KINDS:
                raise ValueError(
                    f"{entry!r}: expected KIND:CHAT_ID[:ORG_CODE] with KIND one of "
                    + "|".join(BULLETIN_KINDS)
                )
            try:
                chat_id = int(parts[1])
            except ValueError as exc:
                raise ValueError(f"{entry!r}: chat id must be a number") from exc
            chats.append(BulletinChat(parts[0], chat_id, parts[2] if len(parts) == 3 else None))
        return tuple(chats)

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        # Without a secret anyone who finds the URL could post updates as Telegram.
        if self.WEBHOOK_URL and not self.WEBHOOK_SECRET:
            raise ValueError("WEBHOOK_SECRET: required when WEBHOOK_URL is set")
        if self.WEBHOOK_URL and not self.WEBHOOK_URL.startswith(("https://", "http://")):
            raise ValueError("WEBHOOK_URL: must be an http(s):// URL")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.TIMEZONE)

    @property
    def webhook_listen(self) -> tuple[str, int]:
        """WEBHOOK_LISTEN as the host and port to bind; an IPv6 host loses its brackets."""
        host, _, port = self.WEBHOOK_LISTEN.rpartition(":")
        return _unbracketed(host), int(port)

    @property
    def is_sqlite(self) -> bool:
        return self.DATABASE_URL.startswith("sqlite")


class SettingsError(Exception):
    """A setting has a bad value; the message is one line naming it."""


def load_settings(**overrides: object) -> Settings:
    """Read the settings; raise `SettingsError` with one line naming the first bad one."""
    try:
        # Raw values on purpose: pydantic parses and checks them as it does the environment.
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        name = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if not name:  # a rule over several settings names its setting first
            name, _, message = message.partition(": ")
        raise SettingsError(f"bad setting {name}: {message}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return load_settings()


def load_or_exit() -> Settings:
    """The process's settings, or one line on stderr and exit 2."""
    try:
        return get_settings()
    except SettingsError as exc:
        print(f"closeout: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_SETTING) from None
