"""SPEC §6 `closeout sweep [--dry-run]`, run as a real subprocess on today's date."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, select

from models import clock
from models.db import make_engine, transaction
from models.holidays import load_calendar
from models.ledger import NewItem, create_item
from models.tables import Notification
from tests.support import load_district

_SETTINGS = ("BOT_TOKEN", "BOT_USERNAME", "TIMEZONE", "LANGUAGE", "WARN_DAYS", "REDIS_URL")
TIMEOUT = 120


def _closeout(database_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key not in _SETTINGS}
    environment.update(DATABASE_URL=database_url, TIMEZONE="Asia/Shanghai")
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_sweep_owes_the_ladder_once_and_a_dry_run_only_says_so(
    database_url: str, tmp_path: Path
) -> None:
    engine = make_engine(database_url)
    district = load_district(engine)
    with transaction(engine) as session:
        today = clock.today(ZoneInfo("Asia/Shanghai"))
        calendar = load_calendar(session)
        # Find the day 12 working days before today: overdue, level 2.
        due = today
        while calendar.workdays_between(due, today) < 12:
            due = due.fromordinal(due.toordinal() - 1)
        create_item(
            session,
            None,
            NewItem(
                kind="problem",
                org_id=district.orgs["B01"],
                title="台账导入的逾期问题",
                due_date=due,
                responsible_id=district.members["M006"],
            ),
        )

    def owed() -> int:
        with Session(engine) as session:
            return session.exec(select(func.count()).where(Notification.stage != "assigned")).one()

    dry = _closeout(database_url, tmp_path, "sweep", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["dry_run"] is True and report["candidates"] == 1
    # Created by an import: no inspector logged it, so both of GRP1's are told.
    assert report["owed"] == {"overdue": 2, "escalate-1": 3, "escalate-2": 1}
    assert report["escalated"] == 1 and report["notices"] == ["B01"]
    assert owed() == 0

    real = _closeout(database_url, tmp_path, "sweep")
    assert real.returncode == 0, real.stderr
    assert "escalated: 1 item(s) (level 2: 1)" in real.stdout
    assert "drafted inquiry notices: B01" in real.stdout
    assert "notifications owed: 6" in real.stdout
    assert owed() == 6

    again = _closeout(database_url, tmp_path, "sweep")
    assert "notifications owed: 0" in again.stdout and owed() == 6
    engine.dispose()


def test_the_scheduler_needs_redis(database_url: str, tmp_path: Path) -> None:
    result = _closeout(database_url, tmp_path, "scheduler")
    assert result.returncode == 2
    assert "REDIS_URL" in result.stderr and "closeout run" in result.stderr
