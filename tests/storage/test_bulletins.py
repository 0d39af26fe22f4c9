"""The bulletins, "four ones" (四个一, SPEC §5): what they say, and that each is owed
once per period per chat, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped]
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from models import clock
from models.bulletins import (
    PNG,
    XLSX,
    BulletinFacts,
    build_bulletin,
    bulletin_facts,
    bulletins_for_review,
    default_period,
    owe_bulletins,
)
from models.clock import FrozenClock
from models.db import transaction
from models.ledger import NewItem, act, create_item
from models.people import actor_for
from models.rankings import parse_period
from models.tables import Attachment, Notification
from settings import BulletinChat, load_settings
from tests.support import District

ZONE = ZoneInfo("Asia/Shanghai")
#: The frozen clock's day, Monday of week 10.
MONDAY = date(2026, 3, 2)
WEEK = parse_period("2026-W10")
#: Work chats: the district's, and the general branch G01's (B01 and B02 below it).
DISTRICT_CHAT = -100_301
G01_CHAT = -100_302
CHATS = (
    BulletinChat("weekly", DISTRICT_CHAT, None),
    BulletinChat("weekly", G01_CHAT, "G01"),
    BulletinChat("daily", DISTRICT_CHAT, None),
    BulletinChat("monthly", DISTRICT_CHAT, None),
)
#: Seconds the command may take before the test fails instead of hanging.
TIMEOUT = 120


def _new(
    engine: Engine,
    district: District,
    org: str,
    due: date | None,
    title: str,
    *,
    by: str | None = "M003",
    kind: str = "problem",
) -> int:
    """An item logged by `by` (None: imported, so a past due date is allowed)."""
    with transaction(engine) as session:
        actor = actor_for(session, district.members[by]) if by else None
        item = create_item(
            session,
            actor,
            NewItem(kind=kind, org_id=district.orgs[org], title=title, due_date=due),
            today=clock.today(ZONE),
        )
        assert item.number is not None
        return item.number


def _do(engine: Engine, district: District, who: str, number: int, action: str) -> None:
    with transaction(engine) as session:
        reason = "整改不到位" if action in ("reject", "cancel", "reopen") else None
        act(session, actor_for(session, district.members[who]), number, action, reason=reason)


def _facts(session: Session) -> BulletinFacts:
    return bulletin_facts(session, zone=ZONE, warn_days=3, lang="zh")


@pytest.fixture
def week(engine: Engine, district: District, frozen_clock: FrozenClock) -> dict[str, int]:
    """Items in every state, logged in week 10; the clock then stands on Monday of week 11."""
    numbers = {
        "green": _new(engine, district, "B01", date(2026, 3, 31), "组织生活会未开"),
        "red_old": _new(engine, district, "B01", date(2026, 2, 20), "档案缺失", by=None),
        "yellow": _new(engine, district, "B02", date(2026, 3, 11), "党费收缴不规范"),
        "submitted": _new(engine, district, "B02", date(2026, 3, 20), "三会一课记录不全"),
        "closed": _new(engine, district, "B03", date(2026, 3, 20), "制度未上墙"),
        "cancelled": _new(engine, district, "B03", date(2026, 3, 20), "重复登记"),
        "red": _new(engine, district, "B04", date(2026, 3, 5), "台账不全", by="M013"),
    }
    _do(engine, district, "M007", numbers["yellow"], "acknowledge")
    _do(engine, district, "M007", numbers["submitted"], "submit")
    _do(engine, district, "M010", numbers["closed"], "submit")
    _do(engine, district, "M003", numbers["closed"], "verify")
    _do(engine, district, "M002", numbers["cancelled"], "cancel")
    frozen_clock.advance(timedelta(days=7))
    return numbers


def test_the_weekly_report_counts_statuses_lights_and_the_on_time_rate(
    engine: Engine, week: dict[str, int]
) -> None:
    with Session(engine) as session:
        facts = _facts(session)
        assert default_period("weekly", facts.today) == WEEK
        report = build_bulletin(session, "weekly", WEEK, scope_code=None, bf=facts)
    zh, en = report.text["zh"], report.text["en"]
    assert "2026-W10（2026-03-02 至 2026-03-08）" in zh and "范围：全部组织" in zh
    assert "本期新增 7 项，销号 1 项（其中按期 1 项）" in zh
    assert "截至 2026-03-09，共 7 项：待整改 3 · 整改中 1 · 待验收 1 · 已销号 1 · 已撤销 1" in zh
    assert "🔴 红灯 2 · 🟡 黄灯 1 · 🟢 绿灯 2" in zh and "逾期 2 项" in zh
    assert "按期销号率 100%（按期 1 / 已销号 1）" in zh
    assert "B01 镇机关第一党支部：共 2 项（待整改 2）🔴1 🟡0 🟢1" in zh
    assert "B02 镇机关第二党支部：共 2 项（整改中 1 · 待验收 1）🔴0 🟡1 🟢1" in zh
    assert "B03 东关社区党支部：共 2 项（已销号 1 · 已撤销 1）🔴0 🟡0 🟢0" in zh
    # The longest overdue first, with its working days overdue.
    oldest = zh.index(f"#{week['red_old']} 档案缺失（镇机关第一党支部），截止 2026-02-20")
    assert oldest < zh.index(f"#{week['red']} 台账不全（经开区企业党支部），截止 2026-03-05")
    assert "7 items: open 3 · in progress 1 · submitted 1 · closed 1 · cancelled 1" in en
    assert "🔴 red 2 · 🟡 yellow 1 · 🟢 green 2" in en and "On-time closure 100%" in en


def test_the_weekly_report_carries_a_png_chart_and_the_scopes_xlsx(
    engine: Engine, week: dict[str, int]
) -> None:
    with Session(engine) as session:
        report = build_bulletin(session, "weekly", WEEK, scope_code="G01", bf=_facts(session))
    chart, sheet = report.files
    assert (chart.mime_type, sheet.mime_type) == (PNG, XLSX)
    assert chart.content.startswith(b"\x89PNG\r\n\x1a\n") and chart.name.endswith(".png")
    workbook = load_workbook(io.BytesIO(sheet.content), read_only=True)
    rows = list(workbook.active.iter_rows(values_only=True))
    numbers = {row[0] for row in rows[1:]}
    # The general branch's subtree only: B01's and B02's items.
    assert numbers == {week["green"], week["red_old"], week["yellow"], week["submitted"]}
    assert "范围：镇机关党总支（G01）" in report.text["zh"]
    assert "共 4 项" in report.text["zh"] and "经开区" not in report.text["zh"]


def test_a_bulletin_is_owed_once_per_period_per_chat(engine: Engine, week: dict[str, int]) -> None:
    for _ in range(2):
        with transaction(engine) as session:
            results = owe_bulletins(session, "weekly", WEEK, CHATS, bf=_facts(session))
        outcomes = {result.chat_id: result.outcome for result in results}
        assert set(outcomes) == {DISTRICT_CHAT, G01_CHAT}
    assert set(outcomes.values()) == {"already"}
    with Session(engine) as session:
        rows = session.exec(
            select(Notification).where(Notification.stage == "bulletin-weekly")
        ).all()
        attachments = session.exec(select(Attachment)).all()
    assert len(rows) == 2 and {row.chat_id for row in rows} == {DISTRICT_CHAT, G01_CHAT}
    assert all(row.key.endswith(":2026-W10") and row.recipient_id is None for row in rows)
    # Each chat's rows name its own scope's files; nothing else was stored.
    named = []
    for row in rows:
        data = json.loads(row.data)
        assert set(data["text"]) == {"zh", "en"} and "情况通报" in data["text"]["zh"]
        assert len(data["attachments"]) == 2
        named += data["attachments"]
    assert sorted(named) == sorted(attachment.id or 0 for attachment in attachments)
    # Another week is another bulletin.
    with transaction(engine) as session:
        later = owe_bulletins(
            session, "weekly", parse_period("2026-W11"), CHATS, bf=_facts(session)
        )
    assert {result.outcome for result in later} == {"owed"}


def test_a_chat_configured_for_an_unknown_org_is_reported_and_owed_nothing(
    engine: Engine, week: dict[str, int]
) -> None:
    chats = (BulletinChat("weekly", -1, "NOPE"),)
    with transaction(engine) as session:
        results = owe_bulletins(session, "weekly", WEEK, chats, bf=_facts(session))
    assert [result.outcome for result in results] == ["unknown_scope"]
    with Session(engine) as session:
        assert (
            session.exec(
                select(func.count())
                .select_from(Notification)
                .where(Notification.stage == "bulletin-weekly")
            ).one()
            == 0
        )
        assert session.exec(select(func.count()).select_from(Attachment)).one() == 0


def test_the_daily_digest_lists_new_closed_and_newly_overdue_and_skips_a_quiet_day(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    due_friday = _new(engine, district, "B01", date(2026, 3, 6), "谈心谈话记录不全")
    closed = _new(engine, district, "B03", date(2026, 3, 20), "制度未上墙")
    _do(engine, district, "M010", closed, "submit")
    _do(engine, district, "M003", closed, "verify")
    with Session(engine) as session:
        monday = build_bulletin(
            session, "daily", parse_period("2026-03-02"), scope_code=None, bf=_facts(session)
        )
    assert "新增 2 项：" in monday.text["zh"] and "销号 1 项：" in monday.text["zh"]
    assert f"#{closed} 制度未上墙（东关社区党支部）" in monday.text["zh"]
    assert "新增逾期 0 项" in monday.text["zh"] and not monday.empty
    # The next Monday: the item due on Friday became overdue over the weekend.
    frozen_clock.advance(timedelta(days=7))
    with transaction(engine) as session:
        facts = _facts(session)
        later = build_bulletin(
            session, "daily", default_period("daily", facts.today), scope_code=None, bf=facts
        )
        assert "新增逾期 1 项" in later.text["zh"]
        assert (
            f"#{due_friday} 谈心谈话记录不全（镇机关第一党支部），截止 2026-03-06"
            in (later.text["zh"])
        )
        assert "New: 0" in later.text["en"]
        # Tuesday says nothing new: a quiet day is not sent (SPEC §7).
        quiet = build_bulletin(
            session, "daily", parse_period("2026-03-10"), scope_code=None, bf=facts
        )
        assert quiet.empty
        results = owe_bulletins(session, "daily", parse_period("2026-03-10"), CHATS, bf=facts)
        assert [result.outcome for result in results] == ["empty"]


def test_the_monthly_review_grades_units_by_outcomes(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    # February: B02 leaves an item overdue; B01 closes one on time; nothing else happens.
    frozen_clock.advance(timedelta(days=-27))  # Tuesday 3 February
    late = _new(engine, district, "B02", date(2026, 2, 10), "党费收缴不规范")
    on_time = _new(engine, district, "B01", date(2026, 2, 12), "三会一课记录不全")
    _do(engine, district, "M005", on_time, "submit")
    _do(engine, district, "M003", on_time, "verify")
    frozen_clock.advance(timedelta(days=27))
    with Session(engine) as session:
        facts = _facts(session)
        review = build_bulletin(
            session, "monthly", default_period("monthly", facts.today), scope_code=None, bf=facts
        )
    zh = review.text["zh"]
    assert "【月度讲评】2026-02" in zh and "参评单位 5 个" in zh
    assert "不看在线时长" in zh
    poor = zh[zh.index("差（1 个）") :]
    assert "5. 镇机关第二党支部（B02）-10.0 分：按期率 0%（0/1），逾期 1" in poor
    # B01 closed on time, but so did everyone with nothing due: a tie is no "good".
    assert "好（" not in zh and "中：4 个单位" in zh
    assert "Poor (1):" in review.text["en"] and late


def test_the_quarterly_progress_counts_the_three_lists_and_the_ledger(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    _new(engine, district, "B01", date(2026, 3, 20), "问题一")
    done = _new(engine, district, "B01", date(2026, 3, 20), "承诺一", kind="commitment", by="M005")
    _do(engine, district, "M005", done, "submit")
    _do(engine, district, "M003", done, "verify")
    _new(engine, district, "B02", date(2026, 3, 20), "任务一", kind="task", by="M007")
    with Session(engine) as session:
        report = build_bulletin(
            session, "quarterly", parse_period("2026-Q1"), scope_code=None, bf=_facts(session)
        )
    zh = report.text["zh"]
    assert "问题：共 1 项（待整改 1），销号率 0%；本季度新增 1 项、销号 0 项" in zh
    assert "承诺：共 1 项（已销号 1），销号率 100%；本季度新增 1 项、销号 1 项（按期 1 项）" in zh
    assert "任务：共 1 项（待整改 1）" in zh and "责任：共 0 项（—），销号率 —" in zh


def test_dry_run_prints_the_text_writes_the_files_and_owes_nothing(
    engine: Engine, database_url: str, week: dict[str, int], tmp_path: Path
) -> None:
    with Session(engine) as session:
        reviewed = bulletins_for_review(session, "weekly", WEEK, CHATS, bf=_facts(session))
    assert [code for code, _, _ in reviewed] == [None, "G01"]
    environment = {
        key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "LANGUAGE")
    }
    environment.update(
        DATABASE_URL=database_url,
        TIMEZONE="Asia/Shanghai",
        BULLETIN_CHATS=f"weekly:{DISTRICT_CHAT},weekly:{G01_CHAT}:G01",
    )
    run = subprocess.run(
        [sys.executable, "-m", "cli", "bulletin", "weekly", "--dry-run", "--period", "2026-W10"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    output = run.stdout.decode()
    assert run.returncode == 0, run.stderr.decode()
    assert "【督查情况通报】2026-W10" in output and "[Weekly report] 2026-W10" in output
    paths = [
        Path(line.split(": ", 1)[1])
        for line in output.splitlines()
        if line.startswith("attachment: ")
    ]
    assert len(paths) == 4 and all(path.exists() for path in paths)
    assert paths[0].read_bytes().startswith(b"\x89PNG")
    for path in paths:
        path.unlink()
    paths[0].parent.rmdir()
    with Session(engine) as session:
        assert (
            session.exec(
                select(func.count())
                .select_from(Notification)
                .where(Notification.stage.startswith("bulletin-"))
            ).one()
            == 0
        )  # type: ignore[union-attr]
        assert session.exec(select(func.count()).select_from(Attachment)).one() == 0


def test_the_chart_renders_without_a_chinese_font() -> None:
    from models.bulletins import OrgCounts, chart_png

    rows = [
        OrgCounts("B01", "镇机关第一党支部", {"open": 2}, {"red": 1, "yellow": 0, "green": 1}),
    ]
    png = chart_png(rows, period=WEEK, lang="zh", font=None)
    assert png.startswith(b"\x89PNG") and re.search(rb"IEND", png)


def test_the_bulletin_actor_run_twice_owes_each_chat_once(
    engine: Engine, database_url: str, week: dict[str, int]
) -> None:
    import tasks
    from tasks.broker import start_embedded_worker

    settings = load_settings(
        DATABASE_URL=database_url,
        REDIS_URL="",
        QUIET_HOURS="",
        TIMEZONE="Asia/Shanghai",
        BULLETIN_CHATS=f"weekly:{DISTRICT_CHAT},weekly:{G01_CHAT}:G01",
    )
    runtime = tasks.load_actors(settings, engine=engine)
    from tasks.bulletins import bulletin

    worker = start_embedded_worker(runtime.broker)
    try:
        bulletin.send("weekly")
        bulletin.send("weekly", "2026-W10")
        runtime.broker.join(bulletin.queue_name)
        worker.join()
    finally:
        worker.stop()
    with Session(engine) as session:
        rows = session.exec(
            select(Notification).where(Notification.stage == "bulletin-weekly")
        ).all()
        attachments = session.exec(select(func.count()).select_from(Attachment)).one()
    assert sorted(row.key for row in rows) == sorted(
        f"-:bulletin-weekly:-:c{chat}:2026-W10" for chat in (DISTRICT_CHAT, G01_CHAT)
    )
    assert attachments == 4
