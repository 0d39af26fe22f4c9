"""SPEC §6: `import ledger` brings a team's Excel ledger in, all-or-nothing and idempotent."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook  # type: ignore[import-untyped]
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from models.audit import verify_chain
from models.clock import FrozenClock
from models.db import transaction
from models.ledger import act
from models.ledger_import import LedgerChanges, apply_ledger, read_ledger
from models.people import actor_for
from models.sheets import ImportRefused
from models.tables import Event, Item, Notification, Org
from tests.support import District

ZONE = ZoneInfo("Asia/Shanghai")
HEADER_ZH = "类型,组织编码,标题,问题描述,类别,严重程度,责任人编码,发现时间,整改时限,状态,外部编号"
HEADER_EN = (
    "kind,org_code,title,description,category,severity,responsible_code,"
    "created_at,due_date,status,external_ref"
)
#: Chinese values and every typed date form; the last rows leave the optional cells empty.
ROWS = [
    "问题,B01,三会一课记录不全,支部会议记录缺失,组织生活,一般,,2026-02-10,2026-03-20,待整改,TZ-001",
    "承诺,B02,每月走访群众,,,较重,M008,2026/2/11,2026/3/31,整改中,TZ-002",
    "任务,B03,完成换届选举,,,严重,,2026.2.12,2026.4.30,待验收,TZ-003",
    "责任,C01,落实全面从严治党主体责任,,,,M002,2026年2月13日,2026年6月30日,已销号,TZ-004",
    "问题,G01,党费收缴台账不规范,,,,,,,,TZ-005",
    "问题,B04,重复立项的问题,,,,,2026-02-01,,已撤销,TZ-006",
]


def _sheet(tmp_path: Path, rows: list[str], header: str = HEADER_ZH) -> Path:
    path = tmp_path / "ledger.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def _import(engine: Engine, path: Path) -> LedgerChanges:
    with transaction(engine) as session:
        return apply_ledger(session, read_ledger(path, session=session, zone=ZONE))


def _count(engine: Engine, table: type) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(table)).one()


def _item(engine: Engine, ref: str) -> Item:
    with Session(engine) as session:
        return session.exec(select(Item).where(Item.external_ref == ref)).one()


def _local(moment: datetime | None) -> datetime | None:
    return moment.astimezone(ZONE).replace(tzinfo=None) if moment else None


def test_a_chinese_sheet_with_every_date_form_imports(
    engine: Engine, district: District, frozen_clock: FrozenClock, tmp_path: Path
) -> None:
    changes = _import(engine, _sheet(tmp_path, ROWS))
    assert (changes.added, changes.updated, changes.unchanged) == (6, 0, 0)
    items = {ref: _item(engine, ref) for ref in (f"TZ-00{n}" for n in range(1, 7))}
    assert [items[ref].kind for ref in items] == [
        "problem",
        "commitment",
        "task",
        "responsibility",
        "problem",
        "problem",
    ]
    assert [items[ref].status for ref in items] == [
        "open",
        "in_progress",
        "submitted",
        "closed",
        "open",
        "cancelled",
    ]
    assert [items[ref].severity for ref in items][:5] == [
        "general",
        "serious",
        "severe",
        "general",
        "general",
    ]
    assert [_local(items[f"TZ-00{n}"].created_at) for n in range(1, 5)] == [
        datetime(2026, 2, day) for day in (10, 11, 12, 13)
    ]
    assert [items[f"TZ-00{n}"].due_date for n in range(1, 5)] == [
        date(2026, 3, 20),
        date(2026, 3, 31),
        date(2026, 4, 30),
        date(2026, 6, 30),
    ]
    one = items["TZ-001"]
    assert (one.description, one.category, one.source) == ("支部会议记录缺失", "组织生活", "import")
    # An empty responsible_code is the org's secretary; a named one is kept.
    assert one.responsible_id == district.members["M005"]
    assert items["TZ-002"].responsible_id == district.members["M008"]
    assert items["TZ-005"].responsible_id == district.members["M009"]
    # Empty created_at is now; empty status is open; no due date is invented.
    assert items["TZ-005"].created_at == frozen_clock.current
    assert items["TZ-005"].due_date is None
    # Finished items are closed as of when they were found.
    assert items["TZ-004"].closed_at == items["TZ-004"].created_at
    assert items["TZ-006"].closed_at == items["TZ-006"].created_at
    assert one.closed_at is None
    with Session(engine) as session:
        actions = session.exec(select(Event.action)).all()
        assert actions == ["create"] * 6
        assert verify_chain(session).ok


def test_english_headers_and_values_import_too(
    engine: Engine, district: District, frozen_clock: FrozenClock, tmp_path: Path
) -> None:
    row = "task,B01,Update the roster,,,severe,M006,2026-02-20,2026-03-10,in_progress,EN-1"
    assert _import(engine, _sheet(tmp_path, [row], HEADER_EN)).added == 1
    item = _item(engine, "EN-1")
    assert (item.kind, item.severity, item.status) == ("task", "severe", "in_progress")


def test_a_second_import_of_the_same_file_changes_nothing(
    engine: Engine, district: District, frozen_clock: FrozenClock, tmp_path: Path
) -> None:
    path = _sheet(tmp_path, ROWS)
    _import(engine, path)
    events, notifications = _count(engine, Event), _count(engine, Notification)
    changes = _import(engine, path)
    assert (changes.added, changes.updated, changes.unchanged) == (0, 0, 6)
    assert changes.total == 0
    assert (_count(engine, Event), _count(engine, Notification)) == (events, notifications)
    assert _count(engine, Item) == 6
    assert _item(engine, "TZ-001").version == 1


def test_a_changed_row_updates_the_item_and_writes_an_event(
    engine: Engine, district: District, frozen_clock: FrozenClock, tmp_path: Path
) -> None:
    _import(engine, _sheet(tmp_path, ROWS))
    events = _count(engine, Event)
    changed = ROWS.copy()
    changed[0] = (
        "问题,B01,三会一课记录不全不规范,支部会议记录缺失,组织生活,较重,M006,"
        "2026-02-10,2026-04-10,整改中,TZ-001"
    )
    changes = _import(engine, _sheet(tmp_path, changed))
    assert (changes.added, changes.updated, changes.unchanged) == (0, 1, 5)
    item = _item(engine, "TZ-001")
    assert (item.title, item.severity, item.due_date, item.status) == (
        "三会一课记录不全不规范",
        "serious",
        date(2026, 4, 10),
        "in_progress",
    )
    assert item.responsible_id == district.members["M006"] and item.version == 2
    assert _count(engine, Event) == events + 1
    with Session(engine) as session:
        event = session.exec(select(Event).order_by(col(Event.seq).desc())).first()
        assert event is not None
        assert (event.action, event.item_number, event.from_status, event.to_status) == (
            "import_update",
            item.number,
            "open",
            "in_progress",
        )
        data = json.loads(event.data)
        assert data["changes"] == {
            "title": ["三会一课记录不全", "三会一课记录不全不规范"],
            "severity": ["general", "serious"],
            "responsible": ["M005", "M006"],
            "due_date": ["2026-03-20", "2026-04-10"],
            "status": ["open", "in_progress"],
        }
        assert verify_chain(session).ok
        # The new responsible person is told, as on creation.
        told = session.exec(
            select(Notification.recipient_id).where(
                Notification.item_number == item.number, Notification.stage == "assigned"
            )
        ).all()
        assert district.members["M006"] in told
    # And the changed file, imported again, changes nothing more.
    assert _import(engine, _sheet(tmp_path, changed)).total == 0


def test_a_sheet_that_closes_an_item_stamps_closed_at(
    engine: Engine, district: District, frozen_clock: FrozenClock, tmp_path: Path
) -> None:
    _import(engine, _sheet(tmp_path, ROWS))
    changed = ROWS.copy()
    changed[0] = changed[0].replace("待整改", "已销号")
    _import(engine, _sheet(tmp_path, changed))
    item = _item(engine, "TZ-001")
    assert (item.status, item.closed_at) == ("closed", frozen_clock.current)


def test_reimporting_an_old_sheet_never_undoes_work_done_in_the_bot(
    engine: Engine, district: District, frozen_clock: FrozenClock, tmp_path: Path
) -> None:
    path = _sheet(tmp_path, ROWS)
    _import(engine, path)
    number = _item(engine, "TZ-001").number
    assert number is not None
    with transaction(engine) as session:
        act(session, actor_for(session, district.members["M005"]), number, "acknowledge")
    events = _count(engine, Event)
    # The sheet still says 待整改: it did not change, so the acknowledgement stands.
    assert _import(engine, path).total == 0
    assert _item(engine, "TZ-001").status == "in_progress"
    assert _count(engine, Event) == events


def test_an_empty_cell_on_a_reimport_keeps_the_stored_value(
    engine: Engine, district: District, frozen_clock: FrozenClock, tmp_path: Path
) -> None:
    _import(engine, _sheet(tmp_path, ROWS))
    blanked = ROWS.copy()
    blanked[0] = "问题,B01,三会一课记录不全,,,,,,,,TZ-001"
    assert _import(engine, _sheet(tmp_path, blanked)).total == 0
    item = _item(engine, "TZ-001")
    assert (item.description, item.due_date) == ("支部会议记录缺失", date(2026, 3, 20))


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("问题,NOPE,标题,,,,,,,,X-1", "ledger.csv:8:org_code: unknown org 'NOPE'"),
        ("问题,B01,标题,,,,M999,,,,X-1", "ledger.csv:8:responsible_code: unknown member 'M999'"),
        ("会议,B01,标题,,,,,,,,X-1", "ledger.csv:8:kind: unknown kind '会议'"),
        ("问题,B01,标题,,,特别严重,,,,,X-1", "ledger.csv:8:severity: unknown severity '特别严重'"),
        ("问题,B01,标题,,,,,,,已整改,X-1", "ledger.csv:8:status: unknown status '已整改'"),
        ("问题,B01,标题,,,,,2026-13-01,,,X-1", "ledger.csv:8:created_at: 2026-13-01 is not a date"),
        ("问题,B01,标题,,,,,,下周五,,X-1", "ledger.csv:8:due_date: 下周五 is not a date"),
        ("问题,B01,标题,,,,,2026-03-09,,,X-1", "ledger.csv:8:created_at: is in the future"),
        ("问题,B01,标题,,,,,0001-01-01,,,X-1", "ledger.csv:8:created_at: is not a date"),
        (
            "问题,B01,标题,,,,,2026-02-10,2026-02-01,,X-1",
            "ledger.csv:8:due_date: 2026-02-01 is before created_at 2026-02-10",
        ),
        (
            "问题,B01," + "长" * 201 + ",,,,,,,,X-1",
            "ledger.csv:8:title: 201 characters; at most 200",
        ),
        (
            "问题,B01,标题," + "述" * 4001 + ",,,,,,,X-1",
            "ledger.csv:8:description: 4001 characters; at most 4000",
        ),
        ("问题,B01,,,,,,,,,X-1", "ledger.csv:8:title: must not be empty"),
        ("问题,B01,标题,,,,,,,,", "ledger.csv:8:external_ref: must not be empty"),
        (
            "问题,B01,标题,,,,,,,,TZ-002",
            "ledger.csv:8:external_ref: duplicate external_ref 'TZ-002' (first on row 3)",
        ),
    ],
)
def test_a_bad_row_is_reported_by_place_and_nothing_is_written(
    engine: Engine,
    district: District,
    frozen_clock: FrozenClock,
    tmp_path: Path,
    row: str,
    expected: str,
) -> None:
    path = _sheet(tmp_path, [*ROWS, row])
    with pytest.raises(ImportRefused) as refused:
        _import(engine, path)
    assert any(error.startswith(expected) for error in refused.value.errors), refused.value.errors
    assert len(refused.value.errors) == 1
    assert _count(engine, Item) == 0 and _count(engine, Event) == 0


def test_every_bad_row_is_reported_at_once(
    engine: Engine, district: District, frozen_clock: FrozenClock, tmp_path: Path
) -> None:
    bad = ["问题,NOPE,标题,,,,,,,,X-1", "会议,B01,标题,,,,,,,,X-2", "问题,B01,,,,,,,,,X-3"]
    with pytest.raises(ImportRefused) as refused:
        _import(engine, _sheet(tmp_path, [*ROWS, *bad]))
    assert [error.split(":")[1:3] for error in refused.value.errors] == [
        ["8", "org_code"],
        ["9", "kind"],
        ["10", "title"],
    ]


def test_a_missing_required_column_is_named(
    engine: Engine, district: District, tmp_path: Path
) -> None:
    path = _sheet(tmp_path, ["问题,B01,标题"], header="类型,组织编码,标题")
    with pytest.raises(ImportRefused) as refused:
        _import(engine, path)
    assert refused.value.errors == ["ledger.csv:1:external_ref: required column is missing"]


def test_a_reimport_may_not_move_an_item_or_change_its_kind_or_finding_date(
    engine: Engine, district: District, frozen_clock: FrozenClock, tmp_path: Path
) -> None:
    _import(engine, _sheet(tmp_path, ROWS))
    changed = ROWS.copy()
    changed[0] = "任务,B02,三会一课记录不全,,,,,2026-02-11,,,TZ-001"
    with pytest.raises(ImportRefused) as refused:
        _import(engine, _sheet(tmp_path, changed))
    assert refused.value.errors == [
        "ledger.csv:2:kind: TZ-001 is stored as a problem; an import does not change the kind",
        "ledger.csv:2:org_code: TZ-001 is stored under B01; "
        "an import does not move items between orgs",
        "ledger.csv:2:created_at: TZ-001 was found on 2026-02-10; an import does not change that",
    ]


def test_an_org_without_a_secretary_needs_a_named_responsible(
    engine: Engine, district: District, frozen_clock: FrozenClock, tmp_path: Path
) -> None:
    # A branch just added to the tree has no members yet, so nobody to default to.
    with transaction(engine) as session:
        parent = session.get(Org, district.orgs["C02"])
        assert parent is not None
        org = Org(code="B09", name="空支部", kind="branch", parent_id=parent.id, path="/")
        session.add(org)
        session.flush()
        org.path = f"{parent.path}{org.id}/"
    path = _sheet(tmp_path, ["问题,B09,标题,,,,,,,,X-1"])
    with pytest.raises(ImportRefused) as refused:
        _import(engine, path)
    assert refused.value.errors == [
        "ledger.csv:2:responsible_code: org 'B09' has no secretary to be responsible; name one"
    ]
    assert _import(engine, _sheet(tmp_path, ["问题,B09,标题,,,,M011,,,,X-1"])).added == 1


def test_an_xlsx_with_real_excel_date_cells_imports_from_its_first_sheet(
    engine: Engine, district: District, frozen_clock: FrozenClock, tmp_path: Path
) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "台账"
    sheet.append(HEADER_ZH.split(","))
    sheet.append(
        [
            "问题",
            "B01",
            "谈心谈话未开展",
            None,
            None,
            "一般",
            None,
            datetime(2026, 2, 10, 9, 30),
            date(2026, 3, 20),
            "整改中",
            1001,  # a number cell: the reference is its text
        ]
    )
    workbook.create_sheet("说明").append(["这一页不是台账"])
    path = tmp_path / "台账.xlsx"
    workbook.save(path)
    assert _import(engine, path).added == 1
    item = _item(engine, "1001")
    assert item.created_at == datetime(2026, 2, 10, 1, 30, tzinfo=UTC)
    assert (item.due_date, item.status) == (date(2026, 3, 20), "in_progress")
    assert _import(engine, path).total == 0


def test_a_folder_is_not_a_ledger(engine: Engine, district: District, tmp_path: Path) -> None:
    with pytest.raises(ImportRefused) as refused, Session(engine) as session:
        read_ledger(tmp_path, session=session)
    assert "expected an .xlsx workbook or one .csv file" in refused.value.errors[0]
