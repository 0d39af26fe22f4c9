"""SPEC §2 and §6 through the real `closeout` command, on SQLite and PostgreSQL.

Commands run in-process with Typer's runner; the cached settings and engine
are dropped around every invocation so each one reads its own environment.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, inspect, text
from sqlmodel import Session, select
from typer.testing import CliRunner, Result

import settings
from cli import app, context
from models.db import make_engine, transaction
from models.invites import create_invite, redeem_invite
from models.tables import Invite, Member, Org
from tests.conftest import POSTGRES_ADMIN_URL, service_missing
from tests.support import DISTRICT

BOT = "closeout_test_bot"
#: Every setting is unset for a run unless the test gives it: the shell's don't leak in.
_ISOLATED = tuple(settings.Settings.model_fields)

Run = Callable[..., Result]


def _fresh() -> None:
    engine = context.engine() if context.engine.cache_info().currsize else None
    if engine is not None:
        engine.dispose()
    context.engine.cache_clear()
    settings.get_settings.cache_clear()


@pytest.fixture
def run(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    """`run(*args, **env)`: invoke `closeout` against the test's database, in tmp_path."""
    monkeypatch.chdir(tmp_path)  # no stray .env; relative output files land here
    runner = CliRunner()

    def invoke(*args: str, **env: str) -> Result:
        _fresh()
        environment: dict[str, str | None] = dict.fromkeys(_ISOLATED)
        environment["DATABASE_URL"] = database_url
        environment.update(env)
        try:
            return runner.invoke(app, list(args), env=environment)
        finally:
            _fresh()

    yield invoke


def _count(url: str, table: type) -> int:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return session.exec(select(func.count()).select_from(table)).one()
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all: a new SQLite file, a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"closeout_cli_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no server"
        admin.dispose()
        service_missing("PostgreSQL", exc)
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_db_upgrade_creates_the_schema_and_a_second_run_changes_nothing(
    run: Run, empty_database_url: str
) -> None:
    first = run("db", "upgrade", DATABASE_URL=empty_database_url)
    second = run("db", "upgrade", DATABASE_URL=empty_database_url)
    assert (first.exit_code, second.exit_code) == (0, 0), first.output + second.output
    engine = make_engine(empty_database_url)
    try:
        assert {"org", "member", "invite", "item", "event"} <= set(
            inspect(engine).get_table_names()
        )
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    finally:
        engine.dispose()
    assert len(versions) == 1


def test_import_directory_twice_reports_nothing_added_or_changed(run: Run) -> None:
    first = run("import", "directory", str(DISTRICT))
    second = run("import", "directory", str(DISTRICT))
    assert first.exit_code == 0, first.output
    assert "orgs: 7 added, 0 changed; members: 13 added, 0 changed" in first.stdout
    assert second.exit_code == 0, second.output
    assert second.stdout.strip() == (
        "orgs: 0 added, 0 changed; members: 0 added, 0 changed; groups: 0 added, 0 changed"
    )


def test_a_bad_directory_exits_1_names_the_row_and_writes_nothing(
    run: Run, database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "bad"
    shutil.copytree(DISTRICT, folder)
    with (folder / "orgs.csv").open("a", encoding="utf-8") as handle:
        handle.write("X1,迷路党支部,branch,NOPE\n")
    result = run("import", "directory", str(folder))
    assert result.exit_code == 1
    assert "orgs:9:parent_code: unknown parent 'NOPE'" in result.stderr.splitlines()
    assert result.stdout == ""
    assert _count(database_url, Org) == 0 and _count(database_url, Member) == 0


def test_invite_json_prints_member_code_and_link(run: Run, database_url: str) -> None:
    run("import", "directory", str(DISTRICT))
    result = run("invite", "M005", "--json", BOT_USERNAME=BOT)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert list(printed) == ["member", "code", "link"]
    assert printed["member"] == "M005"
    assert printed["link"] == f"https://t.me/{BOT}?start={printed['code']}"
    assert _count(database_url, Invite) == 1


def test_invite_prints_the_link_alone_on_stdout(run: Run) -> None:
    run("import", "directory", str(DISTRICT))
    result = run("invite", "M005", BOT_USERNAME="@" + BOT)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"https://t.me/{BOT}?start=")
    assert len(result.stdout.splitlines()) == 1


def test_invite_uses_the_username_the_bot_remembered(run: Run, database_url: str) -> None:
    run("import", "directory", str(DISTRICT))
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO meta (key, value) VALUES ('bot_username', 'kept_bot')")
        )
    engine.dispose()
    result = run("invite", "M005", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["link"].startswith("https://t.me/kept_bot?start=")


def test_invite_without_a_bot_username_says_to_set_it(run: Run, database_url: str) -> None:
    run("import", "directory", str(DISTRICT))
    result = run("invite", "M005")
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1 and "BOT_USERNAME" in result.stderr
    assert _count(database_url, Invite) == 0


def test_invite_for_an_unknown_member_exits_1_and_writes_nothing(
    run: Run, database_url: str
) -> None:
    run("import", "directory", str(DISTRICT))
    result = run("invite", "M999", "--json", BOT_USERNAME=BOT)
    assert result.exit_code == 1
    assert result.stderr.strip() == "no member with code 'M999'"
    assert result.stdout == "" and _count(database_url, Invite) == 0


def _bind(url: str, member_code: str) -> None:
    # Bind one member through an invite, as the bot's /start would.
    engine = make_engine(url)
    try:
        with transaction(engine) as session:
            member = session.exec(select(Member).where(Member.code == member_code)).one()
            assert member.id is not None
            code = create_invite(session, member_id=member.id, days=1).code
            redeem_invite(session, code=code, telegram_user_id=42, chat_id=42)
    finally:
        engine.dispose()


def _unbound_codes() -> list[str]:
    lines = (DISTRICT / "members.csv").read_text(encoding="utf-8").splitlines()[1:]
    return sorted(line.split(",")[0] for line in lines if line and not line.startswith("M005,"))


def test_invite_all_writes_a_csv_row_per_unbound_member(
    run: Run, database_url: str, tmp_path: Path
) -> None:
    run("import", "directory", str(DISTRICT))
    _bind(database_url, "M005")
    result = run("invite", "--all", "-o", "links.csv", BOT_USERNAME=BOT)
    assert result.exit_code == 0, result.output
    with (tmp_path / "links.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["member_code", "name", "org_code", "org_name", "link", "expires_at"]
    assert [row["member_code"] for row in rows] == _unbound_codes()
    assert all(row["link"].startswith(f"https://t.me/{BOT}?start=") for row in rows)
    first = next(row for row in rows if row["member_code"] == "M006")
    assert (first["name"], first["org_code"]) == ("陈党员", "B01")


def test_invite_all_writes_an_xlsx_row_per_unbound_member(
    run: Run, database_url: str, tmp_path: Path
) -> None:
    run("import", "directory", str(DISTRICT))
    _bind(database_url, "M005")
    result = run("invite", "--all", "-o", "links.xlsx", BOT_USERNAME=BOT)
    assert result.exit_code == 0, result.output
    workbook = load_workbook(tmp_path / "links.xlsx", read_only=True)
    header, *rows = list(workbook.active.iter_rows(values_only=True))
    workbook.close()
    assert header == ("member_code", "name", "org_code", "org_name", "link", "expires_at")
    assert [row[0] for row in rows] == _unbound_codes()


def test_invite_all_refuses_another_file_type(run: Run, tmp_path: Path) -> None:
    result = run("invite", "--all", "-o", "links.txt", BOT_USERNAME=BOT)
    assert result.exit_code == 2
    assert not (tmp_path / "links.txt").exists()


def test_invite_revoke_takes_a_link_and_refuses_an_unknown_code(
    run: Run, database_url: str
) -> None:
    run("import", "directory", str(DISTRICT))
    link = json.loads(run("invite", "M005", "--json", BOT_USERNAME=BOT).stdout)["link"]
    result = run("invite", "--revoke", link)
    assert result.exit_code == 0, result.output
    assert run("invite", "--revoke", "no-such-code").exit_code == 1
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            assert session.exec(select(Invite)).one().revoked_at is not None
    finally:
        engine.dispose()


def test_a_bad_setting_exits_2_with_one_line_naming_it(run: Run) -> None:
    result = run("audit", "verify", QUIET_HOURS="nonsense")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "QUIET_HOURS" in lines[0]


def test_the_installed_command_refuses_a_bad_setting(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("closeout")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "cli"]
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}",
        "QUIET_HOURS": "nonsense",
    }
    done = subprocess.run(
        [*command, "audit", "verify"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith("closeout: bad setting QUIET_HOURS")


def test_audit_verify_on_an_empty_database_says_intact(run: Run) -> None:
    result = run("audit", "verify")
    assert result.exit_code == 0, result.output
    assert "history intact" in result.stdout
