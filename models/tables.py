"""The tables: directory, invites, items with their milestones, evidence and
history, the notification outbox and the holiday calendar.

Times are stored in UTC (naive `datetime`s meaning UTC); due dates are plain
dates in the deployment's time zone. Limits live on the fields so the tables
and input validation share one source of truth (see `models.limits`).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, Index, LargeBinary, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from models.limits import CODE_MAX, NAME_MAX, REASON_MAX, TITLE_MAX


class Org(SQLModel, table=True):
    """A Party organisation: committee, general branch or branch."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=CODE_MAX, unique=True, index=True)
    name: str = Field(max_length=NAME_MAX)
    kind: str = Field(max_length=20)
    parent_id: int | None = Field(default=None, foreign_key="org.id", index=True)
    # Materialised ids from the root, "/1/5/23/": a subtree is a prefix match.
    path: str = Field(default="/", max_length=1000, index=True)


class Member(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=CODE_MAX, unique=True, index=True)
    name: str = Field(max_length=NAME_MAX)
    org_id: int = Field(foreign_key="org.id", index=True)
    # The directory's roles, ";"-joined in a fixed order (see models.roles).
    roles: str = Field(default="member", max_length=100)
    telegram_username: str | None = Field(default=None, max_length=64)
    language: str | None = Field(default=None, max_length=2)
    telegram_user_id: int | None = Field(
        default=None, sa_column=Column(BigInteger, unique=True, index=True, nullable=True)
    )
    # Private chat id; equals the user id for private chats but kept apart on purpose.
    chat_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    bound_at: datetime | None = None
    unreachable_at: datetime | None = None
    digest: bool = False


class InspectionGroup(SQLModel, table=True):
    __tablename__ = "inspection_group"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=CODE_MAX, unique=True, index=True)
    name: str = Field(max_length=NAME_MAX)


class GroupMember(SQLModel, table=True):
    __tablename__ = "group_member"

    group_id: int = Field(foreign_key="inspection_group.id", primary_key=True)
    member_id: int = Field(foreign_key="member.id", primary_key=True, index=True)


class GroupScope(SQLModel, table=True):
    __tablename__ = "group_scope"

    group_id: int = Field(foreign_key="inspection_group.id", primary_key=True)
    org_id: int = Field(foreign_key="org.id", primary_key=True)


class Invite(SQLModel, table=True):
    """A one-time code that binds a Telegram account to a member."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=64, unique=True, index=True)
    member_id: int = Field(foreign_key="member.id", index=True)
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None


class Item(SQLModel, table=True):
    """One row for the ledger (problems) and the three lists."""

    # The number users see as #N: global, never reused.
    number: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20, index=True)
    org_id: int = Field(foreign_key="org.id", index=True)
    responsible_id: int | None = Field(default=None, foreign_key="member.id", index=True)
    title: str = Field(max_length=TITLE_MAX)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    category: str = Field(default="", max_length=NAME_MAX)
    severity: str = Field(default="general", max_length=20)
    source: str = Field(default="inspection", max_length=20)
    creator_id: int | None = Field(default=None, foreign_key="member.id")
    created_at: datetime
    due_date: date | None = Field(default=None, index=True)
    status: str = Field(default="open", max_length=20, index=True)
    closed_at: datetime | None = None
    submitted_by_id: int | None = Field(default=None, foreign_key="member.id")
    parent_number: int | None = Field(default=None, foreign_key="item.number", index=True)
    external_ref: str | None = Field(default=None, max_length=CODE_MAX, unique=True)
    escalation_level: int = 0
    extensions: int = 0
    rejections: int = 0
    relapses: int = 0
    # RFC 5545 rule for a recurring responsibility; each occurrence becomes a task.
    rrule: str | None = Field(default=None, max_length=500)
    # Bumped on every change: buttons carry it, so a stale press is refused.
    version: int = 1

    __table_args__ = (Index("ix_item_status_due", "status", "due_date"),)


class Milestone(SQLModel, table=True):
    """A roadmap step (路线图) with its own date."""

    id: int | None = Field(default=None, primary_key=True)
    item_number: int = Field(foreign_key="item.number", index=True)
    title: str = Field(max_length=TITLE_MAX)
    due_date: date
    done_at: datetime | None = None

    __table_args__ = (
        # The steps not done, by date: "behind its roadmap" reads only those
        # past their date (models.queries.ledger_counts).
        Index(
            "ix_milestone_open_due",
            "due_date",
            "item_number",
            sqlite_where=text("done_at IS NULL"),
            postgresql_where=text("done_at IS NULL"),
        ),
    )


class Extension(SQLModel, table=True):
    """A request to move an item's due date (延期), and its decision."""

    id: int | None = Field(default=None, primary_key=True)
    item_number: int = Field(foreign_key="item.number", index=True)
    requested_by_id: int = Field(foreign_key="member.id")
    old_due: date | None = None
    requested_due: date
    reason: str = Field(max_length=REASON_MAX)
    requested_at: datetime
    decided_by_id: int | None = Field(default=None, foreign_key="member.id")
    decided_at: datetime | None = None
    approved: bool | None = None


class Evidence(SQLModel, table=True):
    """What was put in the item's pocket (插袋): a file, a location or text."""

    id: int | None = Field(default=None, primary_key=True)
    item_number: int = Field(foreign_key="item.number", index=True)
    member_id: int | None = Field(default=None, foreign_key="member.id")
    kind: str = Field(max_length=20)
    file_id: str | None = Field(default=None, max_length=200)
    file_unique_id: str | None = Field(default=None, max_length=100)
    file_name: str | None = Field(default=None, max_length=NAME_MAX)
    text: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    latitude: float | None = None
    longitude: float | None = None
    sha256: str | None = Field(default=None, max_length=64)
    archived_path: str | None = Field(default=None, max_length=1000)
    created_at: datetime


class Event(SQLModel, table=True):
    """One entry of the append-only history, chained by hash (see models.audit)."""

    id: int | None = Field(default=None, primary_key=True)
    # Position in the chain: 1, 2, 3, ... with no gaps.
    seq: int = Field(unique=True, index=True)
    item_number: int | None = Field(default=None, foreign_key="item.number", index=True)
    actor_id: int | None = Field(default=None, foreign_key="member.id")
    action: str = Field(max_length=40)
    from_status: str | None = Field(default=None, max_length=20)
    to_status: str | None = Field(default=None, max_length=20)
    reason: str | None = Field(default=None, max_length=REASON_MAX)
    # Canonical JSON of the action's details.
    data: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    created_at: datetime
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class ChainHead(SQLModel, table=True):
    """The chain's last link, one row: locked while an event is appended, so the
    chain never forks, and compared by the audit, so a truncated tail shows."""

    __tablename__ = "chain_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(default="", max_length=64)


class Notification(SQLModel, table=True):
    """The outbox: one row per message owed to one recipient (member or chat).

    `key` is unique: it is built from (item, stage, due date, recipient), so a
    second insert of the same notification is a no-op and a re-run sweep never
    sends a stage twice.
    """

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=300, unique=True)
    item_number: int | None = Field(default=None, foreign_key="item.number", index=True)
    stage: str = Field(max_length=40)
    due_date: date | None = None
    recipient_id: int | None = Field(default=None, foreign_key="member.id", index=True)
    chat_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    data: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    # pending → sent | failed; `not_before` defers (quiet hours, digests, retry_after).
    status: str = Field(default="pending", max_length=20, index=True)
    not_before: datetime | None = None
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=REASON_MAX)
    created_at: datetime
    enqueued_at: datetime | None = None
    sent_at: datetime | None = None
    message_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class Draft(SQLModel, table=True):
    """A conversation in progress (an open /submit, a guided /new, a reason
    awaited after a button), written as each message arrives so it survives
    a restart; one per member."""

    member_id: int = Field(foreign_key="member.id", primary_key=True)
    flow: str = Field(max_length=20)
    step: str = Field(default="", max_length=40)
    item_number: int | None = Field(default=None, foreign_key="item.number")
    # Canonical JSON of what was said so far (answers, evidence).
    data: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    updated_at: datetime


class Card(SQLModel, table=True):
    """A message the bot sent about an item, so a reply to it attaches to the
    item and a change edits it in place where the reader still has it."""

    chat_id: int = Field(sa_column=Column(BigInteger, primary_key=True))
    message_id: int = Field(sa_column=Column(BigInteger, primary_key=True))
    item_number: int = Field(foreign_key="item.number", index=True)
    member_id: int | None = Field(default=None, foreign_key="member.id")
    version: int = 1
    sent_at: datetime


class Attachment(SQLModel, table=True):
    """A file a notification carries (a bulletin's chart or sheet, an inquiry
    notice). Kept in the database so a worker on any host can send it."""

    id: int | None = Field(default=None, primary_key=True)
    file_name: str = Field(max_length=NAME_MAX)
    mime_type: str = Field(max_length=100)
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime


class SpotCheck(SQLModel, table=True):
    """An unannounced check (不打招呼) of a unit assigned to an inspection group,
    or a look-back (回头看) of one closed item; only the group is told."""

    __tablename__ = "spot_check"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20)  # "comprehensive" or "lookback"
    period: str = Field(max_length=10, index=True)  # "2026-03"
    org_id: int = Field(foreign_key="org.id", index=True)
    group_id: int | None = Field(default=None, foreign_key="inspection_group.id", index=True)
    item_number: int | None = Field(default=None, foreign_key="item.number")
    assigned_at: datetime
    done_at: datetime | None = None
    passed: bool | None = None
    note: str | None = Field(default=None, max_length=REASON_MAX)

    __table_args__ = (
        UniqueConstraint("kind", "period", "org_id", "item_number"),
        # The constraint above lets comprehensive rows (item_number NULL) repeat,
        # NULLs being distinct: one per unit and month, whatever the writer does.
        Index(
            "uq_spot_check_unit_month",
            "kind",
            "period",
            "org_id",
            unique=True,
            sqlite_where=text("item_number IS NULL"),
            postgresql_where=text("item_number IS NULL"),
        ),
    )


class Lease(SQLModel, table=True):
    """Who holds a named lease until when: one scheduler fires at a time."""

    name: str = Field(primary_key=True, max_length=100)
    holder: str = Field(max_length=200)
    expires_at: datetime


class Holiday(SQLModel, table=True):
    """A day an admin loaded: it overrides the bundled official calendar."""

    day: date = Field(primary_key=True)
    is_workday: bool
    name: str = Field(default="", max_length=NAME_MAX)


class Meta(SQLModel, table=True):
    """Small facts the deployment remembers, e.g. the bot's username."""

    key: str = Field(primary_key=True, max_length=100)
    value: str = Field(sa_column=Column(Text, nullable=False))


__all__ = [
    "Attachment",
    "Lease",
    "SpotCheck",
    "ChainHead",
    "Card",
    "Draft",
    "Event",
    "Evidence",
    "Extension",
    "GroupMember",
    "GroupScope",
    "Holiday",
    "InspectionGroup",
    "Invite",
    "Item",
    "Member",
    "Meta",
    "Milestone",
    "Notification",
    "Org",
]
