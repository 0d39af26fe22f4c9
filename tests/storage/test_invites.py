"""SPEC §2: one-time invites bind an account once, expire and can be revoked."""

from __future__ import annotations

import re
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, col, select

from models import clock
from models.clock import FrozenClock
from models.db import transaction
from models.invites import (
    ACCOUNT_BOUND,
    INVITE_EXPIRED,
    INVITE_REVOKED,
    INVITE_UNKNOWN,
    INVITE_USED,
    InviteRefused,
    create_invite,
    create_invites,
    invite_link,
    redeem_invite,
    remember_bot_username,
    revoke_invite,
    revoke_member_invites,
    stored_bot_username,
    unbound_members,
)
from models.tables import Invite, Member
from tests.support import District

DAYS = 14
USER = 7_000_000_001  # Telegram ids exceed 32 bits
OTHER_USER = 7_000_000_002
#: How long a test waits for a second writer to queue behind the first, or finish.
LOCK_WAIT = 30.0  # seconds (generous: a loaded machine)


def _invite(engine: Engine, district: District, member: str = "M005", days: int = DAYS) -> str:
    with transaction(engine) as session:
        return create_invite(session, member_id=district.members[member], days=days).code


def _redeem(engine: Engine, code: str, user: int = USER) -> Member:
    with transaction(engine) as session:
        return redeem_invite(session, code=code, telegram_user_id=user, chat_id=user)


def _refusal(engine: Engine, code: str, user: int = USER) -> str:
    with pytest.raises(InviteRefused) as refused:
        _redeem(engine, code, user)
    return refused.value.code


def test_a_code_is_a_telegram_deep_link_payload(engine: Engine, district: District) -> None:
    code = _invite(engine, district)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", code)
    assert invite_link("@closeout_bot", code) == f"https://t.me/closeout_bot?start={code}"


def test_an_invite_expires_after_the_given_days(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    code = _invite(engine, district)
    with Session(engine) as session:
        invite = session.exec(select(Invite).where(Invite.code == code)).one()
    assert invite.expires_at - invite.created_at == timedelta(days=DAYS)
    assert invite.created_at == frozen_clock.current


def test_an_invite_binds_the_account_once(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    code = _invite(engine, district)
    member = _redeem(engine, code)
    assert (member.code, member.telegram_user_id, member.chat_id) == ("M005", USER, USER)
    assert member.bound_at == frozen_clock.current
    assert _refusal(engine, code, OTHER_USER) == INVITE_USED
    with Session(engine) as session:
        assert district.member(session, "M005").telegram_user_id == USER


def test_an_expired_invite_is_refused(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    code = _invite(engine, district, days=1)
    frozen_clock.advance(timedelta(days=1))
    assert _refusal(engine, code) == INVITE_EXPIRED
    with Session(engine) as session:
        assert district.member(session, "M005").telegram_user_id is None


def test_an_invite_is_valid_until_just_before_it_expires(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    code = _invite(engine, district, days=1)
    frozen_clock.advance(timedelta(days=1) - timedelta(seconds=1))
    assert _redeem(engine, code).telegram_user_id == USER


def test_a_revoked_invite_is_refused(engine: Engine, district: District) -> None:
    code = _invite(engine, district)
    with transaction(engine) as session:
        revoke_invite(session, code=code)
        revoke_invite(session, code=code)  # twice is harmless
    assert _refusal(engine, code) == INVITE_REVOKED


def test_an_unknown_code_is_refused(engine: Engine, district: District) -> None:
    assert _refusal(engine, "no-such-code") == INVITE_UNKNOWN
    assert _refusal(engine, "not a payload!") == INVITE_UNKNOWN
    with pytest.raises(InviteRefused) as refused, transaction(engine) as session:
        revoke_invite(session, code="no-such-code")
    assert refused.value.code == INVITE_UNKNOWN


def test_a_used_invite_cannot_be_revoked(engine: Engine, district: District) -> None:
    code = _invite(engine, district)
    _redeem(engine, code)
    with pytest.raises(InviteRefused) as refused, transaction(engine) as session:
        revoke_invite(session, code=code)
    assert refused.value.code == INVITE_USED


def test_an_account_bound_to_another_member_is_refused(engine: Engine, district: District) -> None:
    _redeem(engine, _invite(engine, district, "M005"))
    code = _invite(engine, district, "M006")
    assert _refusal(engine, code) == ACCOUNT_BOUND
    with Session(engine) as session:
        assert district.member(session, "M006").telegram_user_id is None
    assert _redeem(engine, code, OTHER_USER).code == "M006"  # the code is still good


def test_a_new_invite_revokes_the_members_older_unused_ones(
    engine: Engine, district: District
) -> None:
    old = _invite(engine, district)
    new = _invite(engine, district)
    assert old != new
    assert _refusal(engine, old) == INVITE_REVOKED
    assert _redeem(engine, new).code == "M005"


def test_binding_revokes_the_members_other_open_invites(engine: Engine, district: District) -> None:
    # Two open invites at once can only come from outside `create_invite`.
    now = clock.now()
    with transaction(engine) as session:
        for code in ("first", "second"):
            session.add(
                Invite(
                    code=code,
                    member_id=district.members["M005"],
                    created_at=now,
                    expires_at=now + timedelta(days=1),
                )
            )
    _redeem(engine, "first")
    assert _refusal(engine, "second", OTHER_USER) == INVITE_REVOKED


def test_a_new_invite_for_a_bound_member_moves_the_binding(
    engine: Engine, district: District
) -> None:
    _redeem(engine, _invite(engine, district))
    member = _redeem(engine, _invite(engine, district), OTHER_USER)
    assert member.telegram_user_id == OTHER_USER


def test_revoking_a_members_invites_counts_the_valid_ones(
    engine: Engine, district: District
) -> None:
    code = _invite(engine, district)
    with transaction(engine) as session:
        assert revoke_member_invites(session, member_id=district.members["M005"]) == 1
        assert revoke_member_invites(session, member_id=district.members["M005"]) == 0
    assert _refusal(engine, code) == INVITE_REVOKED


def test_bulk_invites_give_one_open_invite_per_member(engine: Engine, district: District) -> None:
    ids = [district.members["M005"], district.members["M006"], district.members["M005"]]
    with transaction(engine) as session:
        create_invites(session, member_ids=ids, days=DAYS)
        invites = create_invites(session, member_ids=ids, days=DAYS)
    assert len(invites) == 2
    with Session(engine) as session:
        open_ = session.exec(select(Invite).where(col(Invite.revoked_at).is_(None))).all()
    assert sorted(i.code for i in open_) == sorted(i.code for i in invites)


def test_an_invite_must_last_at_least_a_day(engine: Engine, district: District) -> None:
    with pytest.raises(ValueError), transaction(engine) as session:
        create_invite(session, member_id=district.members["M005"], days=0)


def test_unbound_members_leave_out_the_bound(engine: Engine, district: District) -> None:
    with Session(engine) as session:
        before = [m.code for m in unbound_members(session)]
    _redeem(engine, _invite(engine, district, "M005"))
    with Session(engine) as session:
        after = [m.code for m in unbound_members(session)]
    assert before == sorted(district.members) and after == [c for c in before if c != "M005"]


def test_bot_processes_starting_together_each_remember_the_bot_username(engine: Engine) -> None:
    # The second process writes while the first one's row is not yet committed.
    failures: list[BaseException] = []

    def second_process() -> None:
        try:
            with transaction(engine) as session:
                remember_bot_username(session, "closeout_bot")
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            failures.append(error)

    with transaction(engine) as session:
        remember_bot_username(session, "closeout_bot")
        second = threading.Thread(target=second_process)
        second.start()
        if engine.dialect.name == "postgresql":  # SQLite queues writers at BEGIN instead
            _wait_for_a_lock_waiter(engine)
    second.join(LOCK_WAIT)

    assert not second.is_alive() and failures == []
    with Session(engine) as session:
        assert stored_bot_username(session) == "closeout_bot"


def _wait_for_a_lock_waiter(engine: Engine) -> None:
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + LOCK_WAIT
    with engine.connect() as connection:
        while not connection.execute(query).scalar():
            # pg_stat_activity is a snapshot per transaction: end it to see anew.
            connection.rollback()
            assert time.monotonic() < deadline, "the second writer never waited on the first"
            time.sleep(0.02)


def test_the_bot_username_is_remembered_without_the_at(engine: Engine) -> None:
    with transaction(engine) as session:
        assert stored_bot_username(session) is None
        remember_bot_username(session, "@closeout_bot")
        remember_bot_username(session, "closeout_bot")
    with Session(engine) as session:
        assert stored_bot_username(session) == "closeout_bot"
