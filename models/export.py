"""The ledger as a table (SPEC §6 `closeout export`, SPEC §4 `/export`).

`export_rows` streams one row per item, read in batches by item number, so a
ledger of a million items never sits in memory; the writers stream those rows
into .xlsx, .csv or .json. Every derived value (light, days overdue) is
computed as of the `today` the caller passes, like everywhere else.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from models.deadlines import days_overdue, light
from models.ledger_import import (
    DEFAULT_ZONE,
    KIND_ALIASES,
    STATUS_ALIASES,
    canonical_value,
)
from models.roles import FINISHED, ITEM_KINDS, STATUSES
from models.states import Refused
from models.tables import Item, Member, Milestone, Org
from models.workdays import WorkCalendar

#: The columns of an export, in this order (SPEC §6).
EXPORT_COLUMNS: tuple[str, ...] = (
    "number",
    "kind",
    "org_code",
    "org_name",
    "title",
    "category",
    "severity",
    "responsible_code",
    "responsible_name",
    "status",
    "light",
    "created_at",
    "due_date",
    "closed_at",
    "days_overdue",
    "escalation_level",
    "extensions",
    "rejections",
    "external_ref",
    "parent_number",
    "relapses",
)
#: Items read per query; their milestones are read in one more query.
BATCH = 1000
#: Column widths in the .xlsx, in characters (a Chinese character counts about two).
XLSX_WIDTHS: Mapping[str, int] = MappingProxyType(
    {
        "number": 8,
        "org_name": 24,
        "title": 48,
        "category": 14,
        "responsible_name": 14,
        "created_at": 26,
        "closed_at": 26,
        "external_ref": 16,
    }
)
#: Width of the columns not named in XLSX_WIDTHS.
XLSX_DEFAULT_WIDTH = 13
#: The .xlsx sheet's name; further sheets, past Excel's row limit, add " 2", " 3", ….
XLSX_SHEET = "ledger"
#: Rows one Excel sheet holds, header included (Excel's limit).
XLSX_MAX_ROWS = 1_048_576


class ExportRefused(Refused):
    """A filter names something that does not exist: nothing was exported."""

    FALLBACK = MappingProxyType(
        {
            "unknown_org": "There is no org {value!r}.",
            "unknown_kind": "Unknown kind {value!r} (known: {known}).",
            "unknown_status": "Unknown status {value!r} (known: {known}).",
        }
    )


def _iso(moment: datetime | None, zone: ZoneInfo) -> str | None:
    return moment.astimezone(zone).isoformat(timespec="seconds") if moment else None


def _day(day: date | None) -> str | None:
    return day.isoformat() if day else None


def export_rows(
    session: Session,
    *,
    today: date,
    calendar: WorkCalendar,
    warn_days: int,
    zone: ZoneInfo = DEFAULT_ZONE,
    scope_paths: tuple[str, ...] | None = None,
    org_code: str | None = None,
    kind: str | None = None,
    status: str | None = None,
) -> Iterator[dict[str, Any]]:
    """One dict per item, keys exactly `EXPORT_COLUMNS`, ordered by number.

    Filters: `org_code` keeps the org's whole subtree; `kind` and `status`
    take the codes or their Chinese names; `scope_paths` are the org-path
    prefixes the reader may see (`models.permissions.scope_paths`), None for
    everything, () for nothing. The filters are checked at once, before the
    first row is read: an unknown org, kind or status raises `ExportRefused`.

    Values are JSON-ready: `light` is green/yellow/red or None (closed and
    cancelled items have none, SPEC §3), counting the roadmap (a milestone
    past its date and not done makes yellow); `created_at`/`closed_at` are ISO
    8601 datetimes in `zone`; `due_date` is YYYY-MM-DD; `days_overdue` counts
    working days; absent values are None. Items are read `BATCH` at a time.
    """
    if kind is not None:
        wanted = canonical_value(kind, KIND_ALIASES, ITEM_KINDS)
        if wanted is None:
            raise ExportRefused("unknown_kind", {"value": kind, "known": ", ".join(ITEM_KINDS)})
        kind = wanted
    if status is not None:
        wanted = canonical_value(status, STATUS_ALIASES, STATUSES)
        if wanted is None:
            raise ExportRefused("unknown_status", {"value": status, "known": ", ".join(STATUSES)})
        status = wanted
    org_path: str | None = None
    if org_code is not None:
        org_path = session.exec(select(Org.path).where(Org.code == org_code)).first()
        if org_path is None:
            raise ExportRefused("unknown_org", {"value": org_code})
    return _rows(
        session,
        today=today,
        calendar=calendar,
        warn_days=warn_days,
        zone=zone,
        scope_paths=scope_paths,
        org_path=org_path,
        kind=kind,
        status=status,
    )


def _rows(
    session: Session,
    *,
    today: date,
    calendar: WorkCalendar,
    warn_days: int,
    zone: ZoneInfo,
    scope_paths: tuple[str, ...] | None,
    org_path: str | None,
    kind: str | None,
    status: str | None,
) -> Iterator[dict[str, Any]]:
    if scope_paths is not None and not scope_paths:
        return
    responsible = aliased(Member)
    statement = (
        sa_select(  # type: ignore[call-overload, misc]  # more columns than the overloads
            Item.number,
            Item.kind,
            Org.code,
            Org.name,
            Item.title,
            Item.category,
            Item.severity,
            responsible.code,
            responsible.name,
            Item.status,
            Item.created_at,
            Item.due_date,
            Item.closed_at,
            Item.escalation_level,
            Item.extensions,
            Item.rejections,
            Item.external_ref,
            Item.parent_number,
            Item.relapses,
        )
        .join(Org, col(Org.id) == col(Item.org_id))
        .outerjoin(responsible, col(responsible.id) == col(Item.responsible_id))
        .order_by(col(Item.number))
        .limit(BATCH)
    )
    if scope_paths is not None:
        statement = statement.where(or_(*(col(Org.path).startswith(p) for p in scope_paths)))
    if org_path is not None:
        statement = statement.where(col(Org.path).startswith(org_path))
    if kind is not None:
        statement = statement.where(col(Item.kind) == kind)
    if status is not None:
        statement = statement.where(col(Item.status) == status)
    after = 0
    while True:
        # Keyset pagination: each batch is one short query, on any backend and
        # however large the ledger, and rows are plain tuples (no identity map).
        batch = session.execute(statement.where(col(Item.number) > after)).all()
        if not batch:
            return
        behind = _milestones_behind(
            session, [row.number for row in batch if row.status not in FINISHED], today
        )
        for row in batch:
            yield {
                "number": row.number,
                "kind": row.kind,
                "org_code": row[2],
                "org_name": row[3],
                "title": row.title,
                "category": row.category,
                "severity": row.severity,
                "responsible_code": row[7],
                "responsible_name": row[8],
                "status": row.status,
                "light": light(
                    row.status,
                    row.due_date,
                    today,
                    calendar,
                    warn_days,
                    behind.get(row.number, ()),
                ),
                "created_at": _iso(row.created_at, zone),
                "due_date": _day(row.due_date),
                "closed_at": _iso(row.closed_at, zone),
                "days_overdue": days_overdue(row.status, row.due_date, today, calendar),
                "escalation_level": row.escalation_level,
                "extensions": row.extensions,
                "rejections": row.rejections,
                "external_ref": row.external_ref,
                "parent_number": row.parent_number,
                "relapses": row.relapses,
            }
        after = batch[-1].number


def _milestones_behind(
    session: Session, numbers: Sequence[int], today: date
) -> dict[int, list[tuple[date, bool]]]:
    # The batch's roadmap steps past their date and not done, in one query.
    behind: dict[int, list[tuple[date, bool]]] = {}
    if not numbers:
        return behind
    rows = session.exec(
        select(col(Milestone.item_number), col(Milestone.due_date)).where(
            col(Milestone.item_number).in_(numbers),
            col(Milestone.done_at).is_(None),
            col(Milestone.due_date) < today,
        )
    ).all()
    for number, due in rows:
        behind.setdefault(number, []).append((due, False))
    return behind


# --- writers ------------------------------------------------------------------


@contextmanager
def _text_target(target: Path | str | IO[str]) -> Iterator[IO[str]]:
    # A path is opened (and closed) here; a stream is the caller's to close.
    if isinstance(target, (str, Path)):
        with open(target, "w", encoding="utf-8", newline="") as stream:
            yield stream
    else:
        yield target


def _cells(row: Mapping[str, Any]) -> list[Any]:
    return [row[column] for column in EXPORT_COLUMNS]


def write_csv(rows: Iterable[Mapping[str, Any]], target: Path | str | IO[str]) -> int:
    """Write a header row and the rows as CSV; return how many rows were written.

    A stream must be a text stream opened with `newline=""` that encodes
    UTF-8. Empty values are empty cells.
    """
    count = 0
    with _text_target(target) as stream:
        # UTF-8 with a byte-order mark: without it, Excel on a Chinese Windows
        # reads a CSV in the local code page (GBK) and the Chinese turns to mojibake.
        stream.write("\ufeff")
        writer = csv.writer(stream)
        writer.writerow(EXPORT_COLUMNS)
        for row in rows:
            writer.writerow(["" if value is None else value for value in _cells(row)])
            count += 1
    return count


def write_json(rows: Iterable[Mapping[str, Any]], target: Path | str | IO[str]) -> int:
    """Write a JSON list of objects with exactly `EXPORT_COLUMNS` as keys, in order.

    Streams: one object a line, never the whole list in memory. Empty values
    are null. Returns how many objects were written.
    """
    count = 0
    with _text_target(target) as stream:
        stream.write("[")
        for row in rows:
            stream.write(",\n" if count else "\n")
            stream.write(
                json.dumps(dict(zip(EXPORT_COLUMNS, _cells(row), strict=True)), ensure_ascii=False)
            )
            count += 1
        stream.write("\n]\n" if count else "]\n")
    return count


def write_xlsx(rows: Iterable[Mapping[str, Any]], target: Path | str | IO[bytes]) -> int:
    """Write an .xlsx workbook: a bold frozen header row, set column widths.

    Uses openpyxl's write-only mode, so rows stream to disk instead of
    building the sheet in memory. Text is always stored as text: a title
    starting with "=" is never taken for a formula, and control characters
    the format cannot hold are dropped instead of failing the export. Past
    Excel's row limit the rows go on in another sheet, under the header again.
    Returns how many rows were written.
    """
    # Imported here: openpyxl is slow to import and only this writer needs it.
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook(write_only=True)
    bold = Font(bold=True)

    def text_cell(sheet: Any, value: str) -> Any:
        # A cell forced to text: openpyxl would write "=…" as a formula.
        cell = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("", value))
        cell.data_type = "s"
        return cell

    def cell(sheet: Any, value: Any) -> Any:
        if isinstance(value, str) and (
            value.startswith("=") or ILLEGAL_CHARACTERS_RE.search(value)
        ):
            return text_cell(sheet, value)
        return value

    def new_sheet(number: int) -> Any:
        sheet = workbook.create_sheet(XLSX_SHEET if number == 1 else f"{XLSX_SHEET} {number}")
        sheet.freeze_panes = "A2"
        for index, column in enumerate(EXPORT_COLUMNS, start=1):
            width = XLSX_WIDTHS.get(column, XLSX_DEFAULT_WIDTH)
            sheet.column_dimensions[get_column_letter(index)].width = width
        header = [text_cell(sheet, column) for column in EXPORT_COLUMNS]
        for heading in header:
            heading.font = bold
        sheet.append(header)
        return sheet

    per_sheet = XLSX_MAX_ROWS - 1
    sheet = new_sheet(1)
    count = 0
    for row in rows:
        if count and count % per_sheet == 0:
            sheet = new_sheet(count // per_sheet + 1)
        sheet.append([cell(sheet, value) for value in _cells(row)])
        count += 1
    workbook.save(target)
    return count
