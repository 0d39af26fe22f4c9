"""SPEC §6 `closeout import ledger` and `closeout export`, run as real subprocesses.

Each test gets a migrated database (SQLite, then PostgreSQL) holding the
fixture district, and runs the installed command against it, so exit codes,
stdout bytes and stderr lines are what an operator sees.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped]

from models.db import make_engine
from models.export import EXPORT_COLUMNS
from tests.support import load_district

#: Settings a developer's shell may hold; a run sees only what the test gives it.
_SETTINGS = ("BOT_TOKEN", "BOT_USERNAME", "TIMEZONE", "LANGUAGE", "WARN_DAYS", "REDIS_URL")
#: Seconds one command may take before the test fails instead of hanging.
TIMEOUT = 120
LEDGER = (
    "类型,组织编码,标题,问题描述,类别,严重程度,责任人编码,发现时间,整改时限,状态,外部编号\n"
    "问题,B01,三会一课记录不全,会议记录缺失,组织生活,一般,,2026-02-10,2026-03-20,待整改,TZ-001\n"
    "任务,B02,完成党员信息采集,,,较重,M008,2026/2/11,2026/3/31,整改中,TZ-002\n"
    "承诺,B04,每月走访企业,,,,,2026年2月12日,2026.4.30,已销号,TZ-003\n"
)

Run = Callable[..., subprocess.CompletedProcess[bytes]]


@pytest.fixture
def closeout(database_url: str, tmp_path: Path) -> Run:
    """`closeout(*args)`: run the command in tmp_path against the district's database."""
    engine = make_engine(database_url)
    load_district(engine)
    engine.dispose()
    environment = {key: value for key, value in os.environ.items() if key not in _SETTINGS}
    environment.update(DATABASE_URL=database_url, TIMEZONE="Asia/Shanghai", WARN_DAYS="3")

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "cli", *args],
            cwd=tmp_path,  # no stray .env; relative paths land here
            env=environment,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )

    return run


@pytest.fixture
def ledger_csv(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.csv"
    path.write_text(LEDGER, encoding="utf-8")
    return path


def _json(closeout: Run, *args: str) -> list[dict[str, object]]:
    result = closeout("export", "--format", "json", *args)
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout.decode("utf-8"))


def test_import_ledger_prints_a_summary_and_a_second_run_changes_nothing(
    closeout: Run, ledger_csv: Path
) -> None:
    first = closeout("import", "ledger", str(ledger_csv))
    assert first.returncode == 0, first.stderr.decode()
    assert first.stdout.decode().strip() == "ledger: 3 added, 0 updated, 0 unchanged"
    second = closeout("import", "ledger", "ledger.csv")
    assert second.stdout.decode().strip() == "ledger: 0 added, 0 updated, 3 unchanged"
    ledger_csv.write_text(LEDGER.replace("三会一课记录不全", "三会一课记录不规范"), "utf-8")
    third = closeout("import", "ledger", "ledger.csv")
    assert third.stdout.decode().strip() == "ledger: 0 added, 1 updated, 2 unchanged"


def test_a_bad_ledger_is_refused_line_by_line_and_nothing_is_imported(
    closeout: Run, ledger_csv: Path
) -> None:
    with ledger_csv.open("a", encoding="utf-8") as handle:
        handle.write("问题,NOPE,标题,,,,,,,,X-1\n会议,B01,标题,,,,,,,,X-2\n")
    result = closeout("import", "ledger", str(ledger_csv))
    assert result.returncode == 1
    lines = result.stderr.decode().splitlines()
    assert lines[:2] == [
        "ledger.csv:5:org_code: unknown org 'NOPE'",
        "ledger.csv:6:kind: unknown kind '会议' "
        "(known: problem 问题, commitment 承诺, task 任务, responsibility 责任)",
    ]
    assert "2 problem(s); nothing was imported" in lines[2]
    assert result.stdout == b""
    assert _json(closeout) == []


def test_export_json_lists_every_item_with_the_specs_keys(closeout: Run, ledger_csv: Path) -> None:
    closeout("import", "ledger", str(ledger_csv))
    rows = _json(closeout)
    assert [row["external_ref"] for row in rows] == ["TZ-001", "TZ-002", "TZ-003"]
    assert all(list(row) == list(EXPORT_COLUMNS) for row in rows)
    first = rows[0]
    assert (first["created_at"], first["due_date"]) == ("2026-02-10T00:00:00+08:00", "2026-03-20")
    assert (first["responsible_code"], first["status"]) == ("M005", "open")
    closed = rows[2]
    assert (closed["status"], closed["light"], closed["closed_at"]) == (
        "closed",
        None,
        "2026-02-12T00:00:00+08:00",
    )


def test_export_filters_by_org_subtree_kind_and_status(closeout: Run, ledger_csv: Path) -> None:
    closeout("import", "ledger", str(ledger_csv))
    assert [row["org_code"] for row in _json(closeout, "--org", "G01")] == ["B01", "B02"]
    assert [row["org_code"] for row in _json(closeout, "--org", "C02")] == ["B04"]
    assert [row["kind"] for row in _json(closeout, "--kind", "task")] == ["task"]
    assert [row["external_ref"] for row in _json(closeout, "--status", "已销号")] == ["TZ-003"]


def test_export_csv_to_stdout_is_utf8_with_a_bom(closeout: Run, ledger_csv: Path) -> None:
    closeout("import", "ledger", str(ledger_csv))
    result = closeout("export", "--format", "csv", "--org", "B01")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(result.stdout.decode("utf-8-sig"), newline="")))
    assert [row["title"] for row in rows] == ["三会一课记录不全"]
    assert rows[0]["closed_at"] == "" and rows[0]["parent_number"] == ""


def test_export_xlsx_to_a_file(closeout: Run, ledger_csv: Path, tmp_path: Path) -> None:
    closeout("import", "ledger", str(ledger_csv))
    result = closeout("export", "--format", "xlsx", "-o", "out.xlsx")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b""
    assert "3 item(s) exported to out.xlsx" in result.stderr.decode()
    sheet = load_workbook(tmp_path / "out.xlsx").active
    values = list(sheet.iter_rows(values_only=True))
    assert values[0] == EXPORT_COLUMNS and len(values) == 4
    assert not (tmp_path / "out.xlsx.part").exists()


def test_export_xlsx_to_a_pipe_is_a_workbook(closeout: Run, ledger_csv: Path) -> None:
    closeout("import", "ledger", str(ledger_csv))
    result = closeout("export", "--format", "xlsx")
    assert result.returncode == 0, result.stderr.decode()
    sheet = load_workbook(io.BytesIO(result.stdout)).active
    assert sheet.max_row == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--org", "NOPE"), "There is no org 'NOPE'."),
        (("--kind", "meeting"), "Unknown kind 'meeting'"),
        (("--status", "done"), "Unknown status 'done'"),
    ],
)
def test_an_unknown_filter_is_one_clear_line_and_exit_1(
    closeout: Run, args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    result = closeout("export", "--format", "csv", "-o", "out.csv", *args)
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [result.stderr.decode().strip()]
    assert result.stderr.decode().startswith(message)
    assert not (tmp_path / "out.csv").exists()


def test_export_xlsx_refuses_to_write_onto_a_terminal(database_url: str, tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "cli", "export", "--format", "xlsx"],
            cwd=tmp_path,
            env={**os.environ, "DATABASE_URL": database_url},
            stdout=follower,
            stderr=subprocess.PIPE,
            timeout=TIMEOUT,
            check=False,
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert result.returncode == 1
    assert result.stderr.decode().strip() == (
        "xlsx is binary: name a file with -o FILE, or redirect the output"
    )
