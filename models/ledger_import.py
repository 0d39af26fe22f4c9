"""`closeout import ledger PATH` (SPEC §6): bring a team's existing Excel ledger in.

The same shape as the directory import: `read_ledger` reads one sheet (the
first sheet of an .xlsx, or one .csv), checks the whole file against what is
stored and raises `ImportRefused` with every `sheet:row:column: reason`;
`apply_ledger` then writes, in the caller's transaction, through the one write
path (`models.ledger.create_item`) and the event chain. Nothing is written
unless every row is good.

The sheet, as this module reads it:

- Required columns (and cells): `kind`, `org_code`, `title`, `external_ref`.
  Every other column may be missing or empty.
- Empty cells on a new item: `responsible_code` → the org's secretary (or its
  leader, for a committee); `created_at` → now; `status` → open; `severity`
  → general; `due_date` → none (an old ledger's missing deadline is not
  invented: an invented one could be long past and set off escalations).
- An imported closed or cancelled item gets `closed_at` = its `created_at`
  (the sheet's 发现时间, or the time of the import when that is empty): the
  sheet does not say when it was closed off, and "now" would count every
  old, settled item as closed late.
- Refused besides unknown codes and values: a `created_at` in the future, a
  `due_date` the sheet sets before `created_at`, titles over 200 characters,
  descriptions over 4,000, a duplicate `external_ref` within the file.

A re-import matches rows to items by `external_ref` and applies only what the
*sheet* changed since the last import of that item: title, description,
category, severity, responsible, due date and status. Each such row writes one
`import_update` event holding the item's changes (`[old, new]` per field) and
the sheet's values, which are the baseline the next import compares against.
So a second import of the same file changes nothing, and re-importing an old
sheet never undoes work done in the bot since (an acknowledgement, an approved
extension, a verification). When the sheet changes a field to what the item
already holds, the event has no changes but still moves the baseline, so a
later change in the bot is not undone by that row either. An empty cell on a
re-import leaves the stored value alone. A status the sheet moves is applied as the sheet says (the
import acts for the system, like `create_item`); entering closed/cancelled sets
`closed_at` to now, leaving them clears it (no relapse is counted: only a
leader's reopen does that), and a new due date restarts the escalation ladder.
A new responsible person of an unfinished item is told, as on creation.

What an import never changes: an item's kind, its org and when it was found
(`created_at`, compared by local date). A row that contradicts those is
refused with the stored value named. Items missing from the file are kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from models import clock
from models.audit import append_event
from models.directory import Progress
from models.ledger import ASSIGNED, InputRefused, NewItem, create_item
from models.limits import CODE_MAX, DESCRIPTION_MAX, NAME_MAX, TITLE_MAX
from models.outbox import notify
from models.roles import FINISHED, ITEM_KINDS, SEVERITIES, STATUSES, split_roles
from models.sheets import ImportRefused, Row, RowError, Table, parse_date, read_tables
from models.tables import Event, Item, Member, Org

#: The deployment's zone when the caller names none: the TIMEZONE default (SPEC §6).
DEFAULT_ZONE = ZoneInfo("Asia/Shanghai")

#: Columns of a ledger sheet and the headers accepted for them (SPEC §6).
COLUMNS: dict[str, tuple[str, ...]] = {
    "kind": ("类型", "清单类型", "事项类型"),
    "org_code": ("组织编码", "单位编码"),
    "title": ("标题", "问题标题", "事项名称"),
    "description": ("问题描述", "描述", "具体内容"),
    "category": ("类别", "问题类别"),
    "severity": ("严重程度", "问题等级"),
    "responsible_code": ("责任人编码",),
    "created_at": ("发现时间", "发现日期", "创建时间"),
    "due_date": ("整改时限", "完成时限", "截止日期"),
    "status": ("状态", "整改状态"),
    "external_ref": ("外部编号", "台账编号"),
}
#: Columns a sheet must have, and cells a row must fill.
REQUIRED = ("kind", "org_code", "title", "external_ref")

#: Chinese names teams write for the kinds, severities and statuses (SPEC §3).
KIND_ALIASES: dict[str, str] = {
    "问题": "problem",
    "问题清单": "problem",
    "承诺": "commitment",
    "承诺清单": "commitment",
    "任务": "task",
    "任务清单": "task",
    "责任": "responsibility",
    "责任清单": "responsibility",
}
SEVERITY_ALIASES: dict[str, str] = {"一般": "general", "较重": "serious", "严重": "severe"}
STATUS_ALIASES: dict[str, str] = {
    "待整改": "open",
    "整改中": "in_progress",
    "待验收": "submitted",
    "已销号": "closed",
    "已撤销": "cancelled",
}

#: Rows handled per batch: existing items and their baselines are read per batch.
BATCH = 1000

#: The event a re-import writes for a row the sheet changed.
IMPORT_UPDATE = "import_update"
#: The fields a re-import may change, as the sheet and the events name them.
SHEET_FIELDS = ("title", "description", "category", "severity", "responsible", "due_date", "status")


def canonical_value(text: str, aliases: Mapping[str, str], known: Sequence[str]) -> str | None:
    """The canonical code for a kind, severity or status as people write it; None if unknown.

    Accepts the English codes in any case (`In Progress`, `in-progress`) and
    the Chinese names in `aliases`.
    """
    text = text.strip()
    if text in aliases:
        return aliases[text]
    code = text.lower().replace(" ", "_").replace("-", "_")
    return code if code in known else None


@dataclass(frozen=True)
class LedgerRow:
    """One checked row of a ledger sheet. None means the cell was empty or its column absent."""

    #: The file's name, as errors and events name it; `row` is its row number there.
    sheet: str
    row: int
    external_ref: str
    kind: str
    org_id: int
    org_code: str
    title: str
    description: str | None = None
    category: str | None = None
    severity: str | None = None
    responsible_id: int | None = None
    responsible_code: str | None = None
    #: Aware, in UTC.
    created_at: datetime | None = None
    due_date: date | None = None
    status: str | None = None

    def sheet_values(self) -> dict[str, str]:
        """The fields the sheet states, as events record them (codes, ISO dates)."""
        values = {
            "title": self.title,
            "description": self.description,
            "category": self.category,
            "severity": self.severity,
            "responsible": self.responsible_code,
            "due_date": self.due_date.isoformat() if self.due_date else None,
            "status": self.status,
        }
        return {name: value for name in SHEET_FIELDS if (value := values[name]) is not None}


@dataclass
class LedgerChanges:
    """What an import did: an unchanged re-import counts only `unchanged`."""

    #: New items.
    added: int = 0
    #: Rows the sheet changed since their last import: one `import_update` event each.
    updated: int = 0
    #: Rows the sheet did not change: nothing written.
    unchanged: int = 0

    @property
    def total(self) -> int:
        """Rows that wrote something: 0 for a second import of the same file."""
        return self.added + self.updated


# --- reading and checking -----------------------------------------------------


def _moment(value: object, zone: ZoneInfo) -> datetime:
    # A time people wrote: an Excel date(time) cell, an ISO datetime (with or
    # without an offset, as `closeout export` writes it) or one of the date
    # forms of `parse_date`, meaning midnight. Local time unless it says otherwise.
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time())
    else:
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = datetime.combine(parse_date(text), time())
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def _text(errors: list[RowError], sheet: str, row: Row, column: str, limit: int) -> str:
    value = row.text(column)
    if column in REQUIRED and not value:
        errors.append(RowError(sheet, row.number, column, "must not be empty"))
    elif len(value) > limit:
        errors.append(
            RowError(sheet, row.number, column, f"{len(value)} characters; at most {limit}")
        )
    return value


def _choice(
    errors: list[RowError],
    sheet: str,
    row: Row,
    column: str,
    aliases: Mapping[str, str],
    known: Sequence[str],
) -> str | None:
    text = row.text(column)
    if not text:
        if column in REQUIRED:
            errors.append(RowError(sheet, row.number, column, "must not be empty"))
        return None
    value = canonical_value(text, aliases, known)
    if value is None:
        errors.append(
            RowError(
                sheet,
                row.number,
                column,
                f"unknown {column} {text!r} (known: {_known(aliases, known)})",
            )
        )
    return value


def _known(aliases: Mapping[str, str], known: Sequence[str]) -> str:
    # "problem 问题, commitment 承诺, ...": each code with the first Chinese name for it.
    names = {code: name for name, code in reversed(list(aliases.items()))}
    return ", ".join(f"{code} {names[code]}" if code in names else code for code in known)


def parse_ledger(
    table: Table,
    *,
    orgs: Mapping[str, int],
    members: Mapping[str, int],
    zone: ZoneInfo,
    now: datetime,
) -> tuple[list[LedgerRow], list[RowError]]:
    """Rows → checked records; every cell-level problem is collected, none raised.

    `orgs` and `members` map the stored codes to ids. Also checks duplicate
    `external_ref`s within the file. Rows with a problem are left out.
    """
    sheet = table.sheet
    errors: list[RowError] = []
    rows: list[LedgerRow] = []
    first: dict[str, int] = {}
    for row in table.rows:
        before = len(errors)
        ref = _text(errors, sheet, row, "external_ref", CODE_MAX)
        if ref in first:
            errors.append(
                RowError(
                    sheet,
                    row.number,
                    "external_ref",
                    f"duplicate external_ref {ref!r} (first on row {first[ref]})",
                )
            )
        elif ref:
            first[ref] = row.number
        kind = _choice(errors, sheet, row, "kind", KIND_ALIASES, ITEM_KINDS)
        org_code = _text(errors, sheet, row, "org_code", CODE_MAX)
        org_id = orgs.get(org_code)
        if org_code and org_id is None:
            errors.append(RowError(sheet, row.number, "org_code", f"unknown org {org_code!r}"))
        title = _text(errors, sheet, row, "title", TITLE_MAX)
        description = _text(errors, sheet, row, "description", DESCRIPTION_MAX)
        category = _text(errors, sheet, row, "category", NAME_MAX)
        severity = _choice(errors, sheet, row, "severity", SEVERITY_ALIASES, SEVERITIES)
        status = _choice(errors, sheet, row, "status", STATUS_ALIASES, STATUSES)
        responsible_code = row.text("responsible_code")
        responsible_id = members.get(responsible_code)
        if responsible_code and responsible_id is None:
            errors.append(
                RowError(
                    sheet, row.number, "responsible_code", f"unknown member {responsible_code!r}"
                )
            )
        created_at: datetime | None = None
        if row.text("created_at"):
            try:
                created_at = _moment(row.cells["created_at"], zone)
            except ValueError as exc:
                errors.append(RowError(sheet, row.number, "created_at", str(exc)))
            except OverflowError:  # year 1 in a zone east of UTC
                errors.append(RowError(sheet, row.number, "created_at", "is not a date"))
            else:
                if created_at > now:
                    errors.append(RowError(sheet, row.number, "created_at", "is in the future"))
        due_date: date | None = None
        if row.text("due_date"):
            try:
                due_date = parse_date(row.cells["due_date"])
            except ValueError as exc:
                errors.append(RowError(sheet, row.number, "due_date", str(exc)))
        if len(errors) > before:
            continue
        assert kind is not None and org_id is not None
        rows.append(
            LedgerRow(
                sheet=sheet,
                row=row.number,
                external_ref=ref,
                kind=kind,
                org_id=org_id,
                org_code=org_code,
                title=title,
                description=description or None,
                category=category or None,
                severity=severity,
                responsible_id=responsible_id,
                responsible_code=responsible_code or None,
                created_at=created_at,
                due_date=due_date,
                status=status,
            )
        )
    return rows, errors


@dataclass(frozen=True)
class _Stored:
    kind: str
    org_id: int
    created_at: datetime
    due_date: date | None


def _chunks(values: Sequence[Any], size: int = BATCH) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def check_against_stored(
    session: Session, rows: Sequence[LedgerRow], *, zone: ZoneInfo
) -> list[RowError]:
    """The rules that need the database: what an import may not change, that a
    new item without a responsible person has someone to default to, and that a
    due date the sheet sets is not before the item was found. A due date already
    stored is not judged again: the system may hold one from an earlier import."""
    errors: list[RowError] = []
    stored: dict[str, _Stored] = {}
    for refs in _chunks([row.external_ref for row in rows]):
        for ref, kind, org_id, created_at, due in session.exec(
            select(  # type: ignore[call-overload]  # sqlmodel types select() for up to four columns
                Item.external_ref, Item.kind, Item.org_id, Item.created_at, Item.due_date
            ).where(col(Item.external_ref).in_(refs))
        ).all():
            stored[str(ref)] = _Stored(kind, org_id, created_at, due)
    codes = dict(session.exec(select(Org.id, Org.code)).all())
    orphans = {row.org_id for row in rows if row.responsible_id is None}
    headed: set[int] = set()
    for org_ids in _chunks(sorted(orphans)):
        for org_id, roles in session.exec(
            select(Member.org_id, Member.roles).where(col(Member.org_id).in_(org_ids))
        ).all():
            if split_roles(roles) & {"secretary", "leader"}:
                headed.add(org_id)
    for row in rows:
        current = stored.get(row.external_ref)
        place = (row.sheet, row.row)
        found_at = row.created_at or (current.created_at if current else None)
        if row.due_date and found_at and (current is None or row.due_date != current.due_date):
            found = found_at.astimezone(zone).date()
            if row.due_date < found:
                errors.append(
                    RowError(*place, "due_date", f"{row.due_date} is before created_at {found}")
                )
        if current is None:
            if row.responsible_id is None and row.org_id not in headed:
                errors.append(
                    RowError(
                        *place,
                        "responsible_code",
                        f"org {row.org_code!r} has no secretary to be responsible; name one",
                    )
                )
            continue
        ref = row.external_ref
        if current.kind != row.kind:
            errors.append(
                RowError(
                    *place,
                    "kind",
                    f"{ref} is stored as a {current.kind}; an import does not change the kind",
                )
            )
        if current.org_id != row.org_id:
            errors.append(
                RowError(
                    *place,
                    "org_code",
                    f"{ref} is stored under {codes.get(current.org_id)}; "
                    "an import does not move items between orgs",
                )
            )
        if row.created_at is not None:
            found = current.created_at.astimezone(zone).date()
            if row.created_at.astimezone(zone).date() != found:
                errors.append(
                    RowError(
                        *place,
                        "created_at",
                        f"{ref} was found on {found}; an import does not change that",
                    )
                )
    return errors


def read_ledger(path: Path, *, session: Session, zone: ZoneInfo = DEFAULT_ZONE) -> list[LedgerRow]:
    """Read and check a ledger file (.xlsx: its first sheet; or one .csv) against what is stored.

    Dates without an offset are read in `zone` (the deployment's TIMEZONE).
    Returns the rows in file order, ready for `apply_ledger`. Raises
    `ImportRefused` listing every problem as `FILE:row:column: reason` (the
    header is row 1); nothing is read from a file with any problem.
    """
    if path.is_dir():
        raise ImportRefused([f"{path.name}: expected an .xlsx workbook or one .csv file"])
    sheet = path.name
    table = read_tables(path, {sheet: COLUMNS}, required={sheet: REQUIRED}, single=True)[sheet]
    # Stored rows have ids (the columns are typed `int | None` for new rows).
    orgs: dict[str, int] = dict(session.exec(select(Org.code, Org.id)).all())  # type: ignore[arg-type]
    members: dict[str, int] = dict(session.exec(select(Member.code, Member.id)).all())  # type: ignore[arg-type]
    rows, errors = parse_ledger(table, orgs=orgs, members=members, zone=zone, now=clock.now())
    errors.extend(check_against_stored(session, rows, zone=zone))
    if errors:
        order = list(COLUMNS)
        errors.sort(key=lambda e: (e.row, order.index(e.column) if e.column in order else -1))
        raise ImportRefused(errors)
    return rows


# --- applying -----------------------------------------------------------------


def _item_values(item: Item, member_codes: Mapping[int, str]) -> dict[str, Any]:
    # The item's fields as the sheet names them.
    return {
        "title": item.title,
        "description": item.description,
        "category": item.category,
        "severity": item.severity,
        "responsible": member_codes.get(item.responsible_id) if item.responsible_id else None,
        "due_date": item.due_date.isoformat() if item.due_date else None,
        "status": item.status,
    }


def _baselines(
    session: Session, items: Iterable[Item], member_codes: Mapping[int, str]
) -> dict[int, dict[str, Any]]:
    # What the sheet said at the last import of each item: the latest
    # import_update's snapshot, else the create event (title, due date,
    # responsible, status) over the stored fields only imports change.
    baselines = {_number(item): _item_values(item, member_codes) for item in items}
    if not baselines:
        return {}
    events = session.exec(
        select(Event.item_number, Event.action, Event.to_status, Event.data)
        .where(
            col(Event.item_number).in_(list(baselines)),
            col(Event.action).in_(("create", IMPORT_UPDATE)),
        )
        .order_by(col(Event.seq))
    ).all()
    for number, action, to_status, data in events:
        if number is None:
            continue
        payload = json.loads(data)
        if action == IMPORT_UPDATE:
            baselines[number].update(payload.get("sheet", {}))
            continue
        responsible = payload.get("responsible")
        baselines[number].update(
            title=payload.get("title"),
            due_date=payload.get("due"),
            responsible=member_codes.get(responsible) if responsible is not None else None,
            status=to_status,
        )
    return baselines


def _number(item: Item) -> int:
    assert item.number is not None  # stored items always have their number
    return item.number


def _create(session: Session, row: LedgerRow) -> None:
    created_at = row.created_at or clock.now()
    status = row.status or "open"
    try:
        item = create_item(
            session,
            None,
            NewItem(
                kind=row.kind,
                org_id=row.org_id,
                title=row.title,
                description=row.description or "",
                category=row.category or "",
                severity=row.severity or "general",
                source="import",
                due_date=row.due_date,
                responsible_id=row.responsible_id,
                external_ref=row.external_ref,
            ),
            created_at=created_at,
            status=status,
        )
    except InputRefused as refused:
        # The checks should have caught it; still name the row, and write nothing.
        raise ImportRefused([RowError(row.sheet, row.row, "-", str(refused))]) from None
    if status == "cancelled":
        # create_item stamps only closed items; a cancelled one is finished too.
        item.closed_at = created_at
        session.add(item)


def _update(
    session: Session,
    row: LedgerRow,
    item: Item,
    baseline: Mapping[str, Any],
    member_codes: Mapping[int, str],
) -> bool:
    sheet = row.sheet_values()
    moved = {name: value for name, value in sheet.items() if baseline.get(name) != value}
    if not moved:
        return False
    current = _item_values(item, member_codes)
    changes = {
        name: [current[name], value] for name, value in moved.items() if current[name] != value
    }
    before = item.status
    for name, (_, value) in changes.items():
        if name == "responsible":
            item.responsible_id = row.responsible_id
        elif name == "due_date":
            item.due_date = row.due_date
            item.escalation_level = 0  # a new date restarts the ladder, as an extension does
        else:
            setattr(item, name, value)
    if "status" in changes:
        if item.status in FINISHED:
            item.closed_at = clock.now()
        else:
            if before in FINISHED:
                item.closed_at = None
                item.escalation_level = 0
            # The sheet, not a person, moved it: nobody is barred from verifying.
            item.submitted_by_id = None
    if changes:
        item.version += 1
        session.add(item)
    seq = append_event(
        session,
        action=IMPORT_UPDATE,
        item_number=item.number,
        from_status=before,
        to_status=item.status,
        data={
            "external_ref": row.external_ref,
            "file": row.sheet,
            "row": row.row,
            "changes": changes,
            "sheet": {**baseline, **sheet},
        },
    )
    if "responsible" in changes and item.status not in FINISHED:
        notify(
            session,
            stage=ASSIGNED,
            item_number=item.number,
            due_date=item.due_date,
            recipient_id=item.responsible_id,
            occurrence=seq,
        )
    return True


def apply_ledger(
    session: Session, rows: Sequence[LedgerRow], *, progress: Progress | None = None
) -> LedgerChanges:
    """Create or update items by `external_ref`, in the caller's transaction.

    New rows become items through `create_item` as the system (source
    "import"), each with its create event and the assignment notifications.
    Existing items take what the sheet changed since their last import, one
    `import_update` event per such row (see the module's notes). A second
    apply of the same rows writes nothing. Raises `ImportRefused` if a row
    cannot be created after all; the caller's rollback then leaves nothing.
    """
    changes = LedgerChanges()
    member_codes = {
        member_id: code
        for member_id, code in session.exec(select(Member.id, Member.code)).all()
        if member_id is not None
    }
    done = 0
    for batch in _chunks(rows):
        items = {
            item.external_ref: item
            for item in session.exec(
                select(Item).where(col(Item.external_ref).in_([row.external_ref for row in batch]))
            ).all()
        }
        baselines = _baselines(session, items.values(), member_codes)
        for row in batch:
            item = items.get(row.external_ref)
            if item is None:
                _create(session, row)
                changes.added += 1
            elif _update(session, row, item, baselines[_number(item)], member_codes):
                changes.updated += 1
            else:
                changes.unchanged += 1
            done += 1
            if progress:
                progress(done, len(rows))
        # Everything is flushed; let the batch's items go, so a long file never sits in memory.
        session.flush()
        session.expunge_all()
    return changes
