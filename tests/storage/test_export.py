"""SPEC §6 `closeout export`: one row per item, the spec's columns in order, streamed."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped]
from sqlalchemy import Engine, event
from sqlmodel import Session

from models import export
from models.clock import FrozenClock
from models.db import transaction
from models.export import (
    EXPORT_COLUMNS,
    ExportRefused,
    export_rows,
    write_csv,
    write_json,
    write_xlsx,
)
from models.holidays import load_calendar
from models.ledger import NewItem, create_item
from models.ledger_import import apply_ledger, read_ledger
from models.tables import Milestone
from tests.support import District

ZONE = ZoneInfo("Asia/Shanghai")
#: The frozen clock's day: Monday 2026-03-02, the first working day after the
#: Spring Festival holiday; Saturday 2026-02-28 was a make-up workday (调休).
TODAY = date(2026, 3, 2)
SPEC_COLUMNS = (
    "number, kind, org_code, org_name, title, category, severity, responsible_code, "
    "responsible_name, status, light, created_at, due_date, closed_at, days_overdue, "
    "escalation_level, extensions, rejections, external_ref, parent_number, relapses"
)


def _add(
    engine: Engine,
    district: District,
    org: str,
    title: str,
    due: date | None,
    *,
    kind: str = "problem",
    status: str = "open",
    milestone: tuple[date, bool] | None = None,
    created_at: datetime | None = None,
) -> int:
    with transaction(engine) as session:
        item = create_item(
            session,
            None,
            NewItem(
                kind=kind,
                org_id=district.orgs[org],
                title=title,
                due_date=due,
                external_ref=f"REF-{title}",
            ),
            status=status,
            created_at=created_at,
        )
        assert item.number is not None
        if milestone is not None:
            step_due, done = milestone
            session.add(
                Milestone(
                    item_number=item.number,
                    title="第一步",
                    due_date=step_due,
                    done_at=datetime(2026, 2, 26, tzinfo=UTC) if done else None,
                )
            )
        return item.number


@pytest.fixture
def ledger(engine: Engine, district: District, frozen_clock: FrozenClock) -> dict[str, int]:
    """Items of every light across the district, by a short name."""
    return {
        "overdue": _add(engine, district, "B01", "overdue", date(2026, 2, 25)),
        "due_soon": _add(engine, district, "B02", "due_soon", date(2026, 3, 5), kind="task"),
        "behind": _add(
            engine,
            district,
            "B03",
            "behind",
            date(2026, 3, 20),
            kind="commitment",
            milestone=(date(2026, 2, 27), False),
        ),
        "on_track": _add(
            engine,
            district,
            "B01",
            "on_track",
            date(2026, 3, 20),
            milestone=(date(2026, 2, 27), True),
        ),
        "closed": _add(
            engine,
            district,
            "B04",
            "closed",
            date(2026, 2, 20),
            status="closed",
            created_at=frozen_clock.current - timedelta(days=20),
        ),
        "no_date": _add(engine, district, "C01", "no_date", None, kind="responsibility"),
    }


def _rows(engine: Engine, **filters: Any) -> list[dict[str, Any]]:
    with Session(engine) as session:
        return list(
            export_rows(
                session,
                today=TODAY,
                calendar=load_calendar(session),
                warn_days=3,
                zone=ZONE,
                **filters,
            )
        )


def _by_title(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["title"]: row for row in rows}


def test_the_columns_are_the_specs_in_its_order(engine: Engine, ledger: dict[str, int]) -> None:
    assert EXPORT_COLUMNS == tuple(SPEC_COLUMNS.split(", "))
    rows = _rows(engine)
    assert len(rows) == 6
    assert all(tuple(row) == EXPORT_COLUMNS for row in rows)
    assert [row["number"] for row in rows] == sorted(ledger.values())


def test_an_overdue_item_is_red_and_counts_working_days(
    engine: Engine, ledger: dict[str, int]
) -> None:
    row = _by_title(_rows(engine))["overdue"]
    # After the 25th: 26, 27, Saturday the 28th (调休) and Monday the 2nd.
    assert (row["light"], row["days_overdue"], row["due_date"]) == ("red", 4, "2026-02-25")


def test_yellow_when_due_soon_or_behind_the_roadmap(engine: Engine, ledger: dict[str, int]) -> None:
    rows = _by_title(_rows(engine))
    assert (rows["due_soon"]["light"], rows["due_soon"]["days_overdue"]) == ("yellow", 0)
    assert rows["behind"]["light"] == "yellow"
    assert rows["on_track"]["light"] == "green"
    assert rows["no_date"]["light"] == "green" and rows["no_date"]["due_date"] is None


def test_a_closed_item_has_no_light_and_iso_times_in_the_local_zone(
    engine: Engine, ledger: dict[str, int]
) -> None:
    rows = _by_title(_rows(engine))
    closed = rows["closed"]
    assert (closed["light"], closed["days_overdue"], closed["status"]) == (None, 0, "closed")
    assert closed["created_at"] == closed["closed_at"] == "2026-02-10T09:00:00+08:00"
    assert rows["overdue"]["created_at"] == "2026-03-02T09:00:00+08:00"
    assert rows["overdue"]["closed_at"] is None


def test_names_come_from_the_directory(
    engine: Engine, district: District, ledger: dict[str, int]
) -> None:
    row = _by_title(_rows(engine))["overdue"]
    assert (row["org_code"], row["org_name"]) == ("B01", "镇机关第一党支部")
    assert (row["responsible_code"], row["responsible_name"]) == ("M005", "刘支书")
    assert (row["external_ref"], row["parent_number"], row["relapses"]) == ("REF-overdue", None, 0)


def test_org_keeps_the_whole_subtree(engine: Engine, ledger: dict[str, int]) -> None:
    assert {row["org_code"] for row in _rows(engine, org_code="G01")} == {"B01", "B02"}
    assert {row["org_code"] for row in _rows(engine, org_code="C01")} == {
        "B01",
        "B02",
        "B03",
        "C01",
    }
    assert _rows(engine, org_code="B04")[0]["title"] == "closed"


def test_kind_and_status_filter_and_take_chinese_names(
    engine: Engine, ledger: dict[str, int]
) -> None:
    assert {row["title"] for row in _rows(engine, kind="问题")} == {
        "overdue",
        "on_track",
        "closed",
    }
    assert [row["title"] for row in _rows(engine, status="closed")] == ["closed"]
    assert [row["title"] for row in _rows(engine, kind="problem", status="已销号")] == ["closed"]


def test_scope_paths_keep_only_what_the_reader_may_see(
    engine: Engine, district: District, ledger: dict[str, int]
) -> None:
    with Session(engine) as session:
        c02 = district.org(session, "C02").path
        g01 = district.org(session, "G01").path
    assert [row["org_code"] for row in _rows(engine, scope_paths=(c02,))] == ["B04"]
    assert _rows(engine, scope_paths=()) == []
    # A filter outside the scope shows nothing of it.
    assert _rows(engine, scope_paths=(c02,), org_code="G01") == []
    assert {row["org_code"] for row in _rows(engine, scope_paths=(g01,), org_code="C01")} == {
        "B01",
        "B02",
    }


@pytest.mark.parametrize(
    ("filters", "code"),
    [
        ({"org_code": "NOPE"}, "unknown_org"),
        ({"kind": "meeting"}, "unknown_kind"),
        ({"status": "done"}, "unknown_status"),
    ],
)
def test_an_unknown_filter_is_refused_before_anything_is_read(
    engine: Engine, ledger: dict[str, int], filters: dict[str, str], code: str
) -> None:
    with pytest.raises(ExportRefused) as refused, Session(engine) as session:
        export_rows(session, today=TODAY, calendar=load_calendar(session), warn_days=3, **filters)
    assert refused.value.code == code


def test_rows_are_read_in_batches_with_one_milestone_query_each(
    engine: Engine, ledger: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    everything = _rows(engine)
    monkeypatch.setattr(export, "BATCH", 2)
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        batched = _rows(engine)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert batched == everything
    item_queries = [s for s in statements if "FROM item" in s]
    milestone_queries = [s for s in statements if "FROM milestone" in s]
    assert len(item_queries) == 4  # three batches of two, then an empty one
    assert len(milestone_queries) <= 3


def test_json_is_a_list_of_objects_with_exactly_the_columns(
    engine: Engine, ledger: dict[str, int]
) -> None:
    stream = io.StringIO()
    assert write_json(_rows(engine), stream) == 6
    loaded = json.loads(stream.getvalue())
    assert [list(row) for row in loaded] == [list(EXPORT_COLUMNS)] * 6
    assert loaded == _rows(engine)
    empty = io.StringIO()
    write_json(iter(()), empty)
    assert json.loads(empty.getvalue()) == []


def test_csv_has_a_bom_and_round_trips(
    engine: Engine, ledger: dict[str, int], tmp_path: Path
) -> None:
    path = tmp_path / "ledger.csv"
    rows = _rows(engine)
    assert write_csv(rows, path) == 6
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        read = list(csv.DictReader(handle))
    assert tuple(read[0]) == EXPORT_COLUMNS
    assert read == [
        {key: "" if value is None else str(value) for key, value in row.items()} for row in rows
    ]


def test_xlsx_has_a_frozen_header_and_keeps_text_as_text(
    engine: Engine, district: District, ledger: dict[str, int], tmp_path: Path
) -> None:
    _add(engine, district, "B01", '=HYPERLINK("http://x")', None)
    _add(engine, district, "B01", "铃\x07声", None)  # a control character .xlsx cannot hold
    path = tmp_path / "ledger.xlsx"
    assert write_xlsx(_rows(engine), path) == 8
    sheet = load_workbook(path).active
    assert sheet.freeze_panes == "A2"
    values = list(sheet.iter_rows(values_only=True))
    assert values[0] == EXPORT_COLUMNS
    assert len(values) == 9
    column = EXPORT_COLUMNS.index("title")
    formula, bell = (row[column] for row in sheet.iter_rows(min_row=8, max_row=9))
    assert (formula.value, formula.data_type) == ('=HYPERLINK("http://x")', "s")
    assert bell.value == "铃声"
    assert sheet["A1"].font.bold
    assert sheet.column_dimensions["E"].width == export.XLSX_WIDTHS["title"]


def _stream(rows: int) -> Iterator[dict[str, Any]]:
    base = dict.fromkeys(EXPORT_COLUMNS, "")
    for number in range(1, rows + 1):
        yield {**base, "number": number}


def test_writers_stream_a_generator(tmp_path: Path) -> None:
    assert write_xlsx(_stream(3000), tmp_path / "big.xlsx") == 3000
    assert write_csv(_stream(3000), tmp_path / "big.csv") == 3000
    assert write_json(_stream(3000), tmp_path / "big.json") == 3000


def test_xlsx_goes_on_in_another_sheet_past_excels_row_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "XLSX_MAX_ROWS", 3)  # a header and two rows a sheet
    assert write_xlsx(_stream(5), tmp_path / "long.xlsx") == 5
    workbook = load_workbook(tmp_path / "long.xlsx")
    assert workbook.sheetnames == ["ledger", "ledger 2", "ledger 3"]
    numbers = [
        [row[0] for row in workbook[name].iter_rows(min_row=2, values_only=True)]
        for name in workbook.sheetnames
    ]
    assert numbers == [[1, 2], [3, 4], [5]]
    assert all(workbook[name]["A1"].value == "number" for name in workbook.sheetnames)
    assert all(workbook[name].freeze_panes == "A2" for name in workbook.sheetnames)


def test_an_exported_csv_imports_back_without_changes(
    engine: Engine, ledger: dict[str, int], tmp_path: Path
) -> None:
    path = tmp_path / "export.csv"
    write_csv(_rows(engine), path)
    with transaction(engine) as session:
        changes = apply_ledger(session, read_ledger(path, session=session, zone=ZONE))
    assert (changes.added, changes.updated, changes.unchanged) == (0, 0, 6)
