"""Helpers for the bot's end-to-end tests."""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.botapi import User
from tests.support import District

#: Telegram user ids of the district's members: 10000 + member id.
USER_ID_BASE = 10_000


def user_id_of(member_id: int) -> int:
    return USER_ID_BASE + member_id


@dataclass
class People:
    """The district's members as simulated Telegram users, by member code."""

    users: dict[str, User]
    stranger: User
    district: District

    def __getitem__(self, code: str) -> User:
        return self.users[code]
