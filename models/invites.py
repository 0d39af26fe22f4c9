"""One-time invites that bind a Telegram account to a member (SPEC §2).

An invite is a random code carried in a deep link, `https://t.me/<bot>?start=<code>`.
It binds once, expires after a number of days and can be revoked.

Policy: a member has at most one open invite. Issuing a new one revokes the
member's older unused ones, so the newest link printed is the only one that
works and re-issuing is how a lost or leaked link is replaced. Binding revokes
the member's other open invites as well. A bound member may be sent a new
invite: redeeming it moves the binding to the new account (a new phone).

Functions take the session and never commit; the caller commits once.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from models import clock
from models.tables import Invite, Member, Meta

#: Random bytes in an invite code: 16 URL-safe characters, 96 bits.
CODE_BYTES = 12
#: Longest deep-link payload Telegram accepts (characters); the table's limit too.
PAYLOAD_MAX = 64
#: Rows per bulk statement (PostgreSQL caps a statement's parameters).
BATCH = 2000
#: Key in the `meta` table under which the bot remembers its @username (after getMe).
META_BOT_USERNAME = "bot_username"

#: Refusal codes carried by `InviteRefused.code`.
INVITE_UNKNOWN = "invite_unknown"
INVITE_USED = "invite_used"
INVITE_EXPIRED = "invite_expired"
INVITE_REVOKED = "invite_revoked"
ACCOUNT_BOUND = "account_bound"

# What Telegram allows in a deep-link payload; anything else cannot be one of ours.
_PAYLOAD = re.compile(rf"^[A-Za-z0-9_-]{{1,{PAYLOAD_MAX}}}$")


class InviteRefused(Exception):
    """An invite cannot be redeemed or revoked; `code` says why (see the constants)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def new_code() -> str:
    """A fresh random code that Telegram accepts as a deep-link payload."""
    return secrets.token_urlsafe(CODE_BYTES)


def invite_link(bot_username: str, code: str) -> str:
    """The deep link that opens the bot and sends `/start <code>`."""
    return f"https://t.me/{bot_username.strip().lstrip('@')}?start={code}"


@dataclass(frozen=True)
class IssuedInvite:
    """What a bulk issue returns: enough to print a link, without an ORM object each."""

    member_id: int
    code: str
    expires_at: datetime


def create_invites(session: Session, *, member_ids: Sequence[int], days: int) -> list[IssuedInvite]:
    """Issue one new invite per member, valid for `days` days from now, in bulk.

    Each member's older unused, unrevoked invites are revoked first, so each
    member ends with exactly one open invite. Returns one invite per distinct
    member, in the order of `member_ids`; the rows are written, not committed.
    Raises ValueError when `days` is less than 1.
    """
    _check_days(days)
    member_ids = list(dict.fromkeys(member_ids))
    now = clock.now()
    _revoke_open(session, member_ids, now)
    issued = [
        IssuedInvite(member_id, new_code(), now + timedelta(days=days)) for member_id in member_ids
    ]
    rows = [
        {"code": i.code, "member_id": i.member_id, "created_at": now, "expires_at": i.expires_at}
        for i in issued
    ]
    for start in range(0, len(rows), BATCH):
        session.execute(insert(Invite), rows[start : start + BATCH])
    return issued


def create_invite(session: Session, *, member_id: int, days: int) -> Invite:
    """Issue a new invite for one member, valid for `days` days from now.

    The member's older unused, unrevoked invites are revoked, so this one is
    the member's only open invite. Returns it flushed (id assigned), not
    committed. Raises ValueError when `days` is less than 1.
    """
    _check_days(days)
    now = clock.now()
    _revoke_open(session, [member_id], now)
    invite = Invite(
        code=new_code(), member_id=member_id, created_at=now, expires_at=now + timedelta(days=days)
    )
    session.add(invite)
    session.flush()
    return invite


def _check_days(days: int) -> None:
    if days < 1:
        raise ValueError("an invite must be valid for at least 1 day")


def _revoke_open(session: Session, member_ids: Iterable[int], now: datetime) -> None:
    # Unused, unrevoked invites of these members, expired or not: revoked now.
    ids = list(member_ids)
    for start in range(0, len(ids), BATCH):
        session.execute(
            update(Invite)
            .where(
                col(Invite.member_id).in_(ids[start : start + BATCH]),
                col(Invite.used_at).is_(None),
                col(Invite.revoked_at).is_(None),
            )
            .values(revoked_at=now)
        )


def revoke_invite(session: Session, *, code: str) -> Invite:
    """Revoke one invite by its code; revoking twice is harmless.

    Raises `InviteRefused` with INVITE_UNKNOWN for no such code and
    INVITE_USED when it has already bound an account (revoking cannot unbind).
    """
    invite = session.exec(select(Invite).where(Invite.code == code).with_for_update()).first()
    if invite is None:
        raise InviteRefused(INVITE_UNKNOWN, f"no invite with code {code!r}")
    if invite.used_at is not None:
        raise InviteRefused(INVITE_USED, f"invite {code!r} has already been used")
    if invite.revoked_at is None:
        invite.revoked_at = clock.now()
        session.flush()
    return invite


def revoke_member_invites(session: Session, *, member_id: int) -> int:
    """Revoke every unused invite of a member; returns how many were still valid."""
    now = clock.now()
    still_valid = session.exec(
        select(func.count()).where(
            Invite.member_id == member_id,
            col(Invite.used_at).is_(None),
            col(Invite.revoked_at).is_(None),
            col(Invite.expires_at) > now,
        )
    ).one()
    _revoke_open(session, [member_id], now)
    return still_valid


def redeem_invite(session: Session, *, code: str, telegram_user_id: int, chat_id: int) -> Member:
    """Bind the Telegram account to the invite's member, once.

    On success the member gets `telegram_user_id`, `chat_id` and `bound_at`
    (and is reachable again), the invite is marked used and the member's other
    open invites are revoked. Raises `InviteRefused` with INVITE_UNKNOWN,
    INVITE_USED, INVITE_REVOKED or INVITE_EXPIRED for a code that cannot bind,
    and ACCOUNT_BOUND when this account is already bound to another member;
    nothing is changed then. The invite row is locked until the caller commits,
    so two concurrent redemptions of one code cannot both succeed.
    """
    invite = None
    if _PAYLOAD.match(code):
        invite = session.exec(select(Invite).where(Invite.code == code).with_for_update()).first()
    if invite is None:
        raise InviteRefused(INVITE_UNKNOWN, "no such invite")
    if invite.used_at is not None:
        raise InviteRefused(INVITE_USED, "this invite has already been used")
    if invite.revoked_at is not None:
        raise InviteRefused(INVITE_REVOKED, "this invite has been revoked")
    now = clock.now()
    if now >= invite.expires_at:
        raise InviteRefused(INVITE_EXPIRED, "this invite has expired")
    holder = session.exec(select(Member).where(Member.telegram_user_id == telegram_user_id)).first()
    if holder is not None and holder.id != invite.member_id:
        raise InviteRefused(ACCOUNT_BOUND, "this Telegram account is bound to another member")
    member = session.get(Member, invite.member_id)
    if member is None:  # the foreign key makes this impossible; say so plainly if not
        raise InviteRefused(INVITE_UNKNOWN, "the invite's member no longer exists")
    invite.used_at = now
    member.telegram_user_id = telegram_user_id
    member.chat_id = chat_id
    member.bound_at = now
    member.unreachable_at = None
    session.flush()
    session.execute(
        update(Invite)
        .where(
            col(Invite.member_id) == member.id,
            col(Invite.id) != invite.id,
            col(Invite.used_at).is_(None),
            col(Invite.revoked_at).is_(None),
        )
        .values(revoked_at=now)
    )
    return member


def unbound_members(session: Session) -> list[Member]:
    """Members with no Telegram account bound, by code."""
    return list(
        session.exec(
            select(Member).where(col(Member.telegram_user_id).is_(None)).order_by(Member.code)
        ).all()
    )


def stored_bot_username(session: Session) -> str | None:
    """The @username the bot remembered (without '@'), or None."""
    meta = session.get(Meta, META_BOT_USERNAME)
    return (meta.value.lstrip("@") or None) if meta else None


def remember_bot_username(session: Session, username: str) -> None:
    """Store the bot's @username (from getMe) for invite links; the caller commits.

    One statement, insert or update: bot processes starting together each
    remember it, and a read-then-insert would let the second of them fail on
    the first one's row.
    """
    value = username.strip().lstrip("@")
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(Meta).values(key=META_BOT_USERNAME, value=value)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["key"], set_={"value": statement.excluded.value}
        )
    )
