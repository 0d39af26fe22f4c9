"""Benchmark the reminder/escalation sweep on a city ledger of a million items (PostgreSQL).

Creates a fresh database (as tests/conftest.py does: CREATE DATABASE on the
admin URL, `db upgrade`, dropped at the end unless --keep), loads with COPY a
city directory — a city committee over district, town and street committees,
general branches and branches, their secretaries, leaders, inspectors and
members, and inspection groups covering every town — and a ledger of
`--items` items: most closed or cancelled, the rest open, in progress or
submitted with due dates spread from 90 days ago to 60 days ahead, and one
sent "assigned" notification per item (the outbox a real ledger has).

Then, for two days — today (the first sweep of an imported ledger: everything
owed at once) and the next working day (the daily sweep: only what is new) —
it times, with the same settings (REMIND_DAYS 3,1; ESCALATE_DAYS 5,10):

- `sql`: the hand-written SQL equivalent (below), median of --runs;
- `dry run`: models.sweep.sweep(dry_run=True), median of --runs;
- `sweep`: the real sweep, committed per batch as the actor does (once: it
  writes), and `re-run`: the same sweep again (it must owe nothing); both
  also report this process's CPU seconds, the figure to compare on a shared
  machine (the database server's share is not in it).

What "equivalent" means: the SQL answers the dry run's question — which
notifications the ladder owes today that the outbox does not hold yet, per
stage, and how many items' escalation level would rise — in one SELECT:
the candidate items (same WHERE), their stages from working days (a calendar
table passed in from the same WorkCalendar: for each day, the count of
working days up to it), the recipients by the same rules (the responsible
person; the org's secretaries, else its leaders; the logging inspector, else
the inspectors of the groups covering the org; the leaders of the nearest org
above that has any) and an anti-join against the outbox's unique keys, built
the same way. It writes nothing and drafts no document, so it is compared
with the dry run; the real sweep also inserts the rows, stores the levels,
appends the events and writes the .docx notices. The script checks that the
SQL's counts equal the dry run's, on both days, and exits 1 otherwise.

    /work/venv/bin/python bench/sweep.py [--items 1000000 --runs 3 --keep --today 2026-12-07]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, create_engine, text  # noqa: E402
from sqlmodel import Session  # noqa: E402

from models import clock  # noqa: E402
from models.db import make_engine, upgrade  # noqa: E402
from models.holidays import load_calendar  # noqa: E402
from models.summaries import Facts  # noqa: E402
from models.sweep import SweepReport, latest_due_date, sweep  # noqa: E402
from models.workdays import WorkCalendar  # noqa: E402

#: Items in the default ledger (a city's).
DEFAULT_ITEMS = 1_000_000
#: Timed runs of each read-only measurement (the median is reported).
DEFAULT_RUNS = 3
#: The machine's PostgreSQL, as the tests use it (trust auth, database `test`).
POSTGRES_ADMIN_URL = os.environ.get(
    "CLOSEOUT_TEST_POSTGRES", "postgresql+psycopg://root@127.0.0.1:5432/test"
)
ZONE = ZoneInfo("Asia/Shanghai")
REMIND_DAYS, ESCALATE_DAYS = (3, 1), (5, 10)
SEED = 20260302
#: The directory: districts under the city, towns per district, general
#: branches per town, branches, members per branch, inspectors per district.
DISTRICTS, TOWNS_PER_DISTRICT, GENERALS_PER_TOWN, BRANCHES = 12, 10, 10, 8000
MEMBERS_PER_BRANCH, INSPECTORS_PER_DISTRICT, GROUPS_PER_DISTRICT = 6, 30, 3
#: Share of items by status (the rest of the ledger is closed).
STATUS_SHARE = {"cancelled": 0.03, "open": 0.04, "in_progress": 0.06, "submitted": 0.02}
#: Unfinished items are due between these many days before and after today.
DUE_SPREAD = (-90, 60)


# --- the city --------------------------------------------------------------------------------


class City:
    def __init__(self) -> None:
        self.orgs: list[tuple[int, str, str, str, int | None, str]] = []
        self.members: list[tuple[int, str, str, int, str]] = []
        self.groups: list[tuple[int, str, str]] = []
        self.group_members: list[tuple[int, int]] = []
        self.group_scopes: list[tuple[int, int]] = []
        self.secretary: dict[int, int] = {}
        self.people: dict[int, list[int]] = {}
        self.inspectors_of_town: dict[int, list[int]] = {}
        self.unit_orgs: list[int] = []

    def org(self, code: str, name: str, kind: str, parent: int | None) -> int:
        org_id = len(self.orgs) + 1
        parent_path = self.orgs[parent - 1][5] if parent else "/"
        self.orgs.append((org_id, code, name, kind, parent, f"{parent_path}{org_id}/"))
        return org_id

    def member(self, org_id: int, roles: str) -> int:
        member_id = len(self.members) + 1
        self.members.append((member_id, f"M{member_id:07d}", f"成员{member_id}", org_id, roles))
        self.people.setdefault(org_id, []).append(member_id)
        if "secretary" in roles.split(";") and org_id not in self.secretary:
            self.secretary[org_id] = member_id
        return member_id


def build_city(rnd: random.Random) -> City:
    city = City()
    top = city.org("C0000", "某市委", "committee", None)
    city.member(top, "secretary;leader")
    for _ in range(5):
        city.member(top, "leader")
    city.member(top, "admin")
    towns: list[int] = []
    generals: list[int] = []
    for d in range(1, DISTRICTS + 1):
        district = city.org(f"D{d:02d}", f"第{d}区委", "committee", top)
        city.member(district, "secretary;leader")
        for _ in range(4):
            city.member(district, "leader")
        inspectors = [city.member(district, "inspector") for _ in range(INSPECTORS_PER_DISTRICT)]
        district_towns = []
        for t in range(1, TOWNS_PER_DISTRICT + 1):
            town = city.org(f"T{d:02d}{t:02d}", f"第{d}区第{t}镇党委", "committee", district)
            city.member(town, "secretary;leader")
            for _ in range(3):
                city.member(town, "leader")
            district_towns.append(town)
            for g in range(1, GENERALS_PER_TOWN + 1):
                general = city.org(
                    f"G{d:02d}{t:02d}{g:02d}", f"第{d}区第{t}镇第{g}党总支", "general_branch", town
                )
                city.member(general, "secretary")
                if rnd.random() < 0.5:
                    city.member(general, "leader")
                generals.append(general)
        towns.extend(district_towns)
        for g in range(GROUPS_PER_DISTRICT):
            group_id = len(city.groups) + 1
            city.groups.append((group_id, f"GRP{group_id:03d}", f"第{group_id}督查组"))
            for member_id in inspectors[g * 10 : g * 10 + 5]:
                city.group_members.append((group_id, member_id))
            for town in district_towns[g::GROUPS_PER_DISTRICT]:
                city.group_scopes.append((group_id, town))
                city.inspectors_of_town[town] = inspectors[g * 10 : g * 10 + 5]
    for b in range(1, BRANCHES + 1):
        parent = rnd.choice(generals) if rnd.random() < 0.6 else rnd.choice(towns)
        branch = city.org(f"B{b:05d}", f"第{b}党支部", "branch", parent)
        city.member(branch, "secretary")
        for _ in range(MEMBERS_PER_BRANCH):
            city.member(branch, "member")
        city.unit_orgs.append(branch)
    city.unit_orgs.extend(generals)
    return city


def _town_of(city: City, org_id: int) -> int | None:
    for part in city.orgs[org_id - 1][5].strip("/").split("/"):
        if int(part) in city.inspectors_of_town:
            return int(part)
    return None


# --- loading ---------------------------------------------------------------------------------


def _copy(connection, table: str, columns: tuple[str, ...], rows) -> None:  # type: ignore[no-untyped-def]
    with connection.cursor() as cursor:
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def load(engine: Engine, items: int, today: date, seed: int = SEED) -> Counter[str]:
    """Load the city and its ledger with COPY; returns the items per status."""
    rnd = random.Random(seed)
    city = build_city(rnd)
    now = datetime.combine(today, dtime(9), ZONE).astimezone(UTC)
    statuses: Counter[str] = Counter()
    raw = engine.raw_connection()
    try:
        connection = raw.driver_connection
        _copy(connection, "org", ("id", "code", "name", "kind", "parent_id", "path"), city.orgs)
        _copy(
            connection,
            "member",
            ("id", "code", "name", "org_id", "roles", "digest"),
            (row + (False,) for row in city.members),
        )
        _copy(connection, "inspection_group", ("id", "code", "name"), city.groups)
        _copy(connection, "group_member", ("group_id", "member_id"), city.group_members)
        _copy(connection, "group_scope", ("group_id", "org_id"), city.group_scopes)

        kinds = ("problem",) * 14 + ("task",) * 3 + ("commitment",) * 2 + ("responsibility",)
        thresholds = []
        acc = 0.0
        for status, share in STATUS_SHARE.items():
            acc += share
            thresholds.append((acc, status))

        def item_rows() -> Iterator[tuple]:
            for number in range(1, items + 1):
                draw = rnd.random()
                status = next((s for limit, s in thresholds if draw < limit), "closed")
                statuses[status] += 1
                roll = rnd.random()
                if roll < 0.90:
                    org_id = rnd.choice(city.unit_orgs[:BRANCHES])
                elif roll < 0.97:
                    org_id = rnd.choice(city.unit_orgs[BRANCHES:])
                else:
                    org_id = rnd.randrange(1, len(city.orgs) + 1)
                responsible = rnd.choice(city.people[org_id])
                town = _town_of(city, org_id)
                if town and rnd.random() < 0.7:
                    creator, source = rnd.choice(city.inspectors_of_town[town]), "inspection"
                else:
                    creator, source = city.secretary.get(org_id, responsible), "self_check"
                if status in ("closed", "cancelled"):
                    created = now - timedelta(days=rnd.randrange(30, 3 * 365))
                    due = (created + timedelta(days=rnd.randrange(5, 40))).astimezone(ZONE).date()
                    closed_at = created + timedelta(days=rnd.randrange(1, 60))
                else:
                    due = today + timedelta(days=rnd.randint(*DUE_SPREAD))
                    created = datetime.combine(
                        due - timedelta(days=rnd.randrange(15, 60)), dtime(10), ZONE
                    ).astimezone(UTC)
                    closed_at = None
                yield (
                    number,
                    rnd.choice(kinds),
                    org_id,
                    responsible,
                    f"问题{number}：三会一课记录不全",
                    "",
                    "组织生活",
                    "general",
                    source,
                    creator,
                    created,
                    due,
                    status,
                    closed_at,
                    0,
                    0,
                    0,
                    0,
                    1,
                )

        _copy(
            connection,
            "item",
            (
                "number",
                "kind",
                "org_id",
                "responsible_id",
                "title",
                "description",
                "category",
                "severity",
                "source",
                "creator_id",
                "created_at",
                "due_date",
                "status",
                "closed_at",
                "escalation_level",
                "extensions",
                "rejections",
                "relapses",
                "version",
            ),
            item_rows(),
        )
        # The outbox a real ledger has: every item was assigned once.
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO notification (key, item_number, stage, due_date, recipient_id, data,
                                          status, attempts, created_at, sent_at)
                SELECT number || ':assigned:' || to_char(due_date, 'YYYY-MM-DD') || ':m'
                       || responsible_id, number, 'assigned', due_date, responsible_id, '{}',
                       'sent', 1, created_at, created_at
                FROM item
                """
            )
            for table, column in (
                ("org", "id"),
                ("member", "id"),
                ("inspection_group", "id"),
                ("item", "number"),
            ):
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                    f"(SELECT max({column}) FROM {table}))"
                )
        connection.commit()
        with connection.cursor() as cursor:
            connection.autocommit = True
            cursor.execute("VACUUM ANALYZE")
    finally:
        raw.close()
    return statuses


# --- the SQL equivalent ----------------------------------------------------------------------

ROLE = "(';' || {m}.roles || ';') LIKE '%;{role};%'"
SQL = f"""
WITH days AS (
    SELECT t.day, t.cum FROM unnest(CAST(:days AS date[]), CAST(:cums AS int[])) AS t(day, cum)
),
cand AS MATERIALIZED (
    SELECT i.number, i.org_id, o.path, i.responsible_id, i.creator_id, i.due_date,
           i.escalation_level,
           CASE WHEN i.due_date >= :today THEN d.cum - :today_cum END AS left_days,
           CASE WHEN i.due_date < :today THEN :today_cum - d.cum END AS overdue_days,
           coalesce({ROLE.format(m="cm", role="inspector")}, false) AS logged_by_inspector
    FROM item i
    JOIN days d ON d.day = i.due_date
    JOIN org o ON o.id = i.org_id
    LEFT JOIN member cm ON cm.id = i.creator_id
    WHERE i.status IN ('open', 'in_progress', 'submitted')
      AND i.due_date IS NOT NULL AND i.due_date <= :latest
),
staged AS MATERIALIZED (
    SELECT c.number, c.org_id, c.responsible_id, c.creator_id, c.due_date,
           c.logged_by_inspector, s.stage
    FROM cand c CROSS JOIN LATERAL (VALUES
        (CASE WHEN c.left_days <= 1 THEN 'remind-1' WHEN c.left_days <= 3 THEN 'remind-3' END),
        (CASE WHEN c.overdue_days IS NOT NULL THEN 'overdue' END),
        (CASE WHEN c.overdue_days >= 5 THEN 'escalate-1' END),
        (CASE WHEN c.overdue_days >= 10 THEN 'escalate-2' END)
    ) AS s(stage)
    WHERE s.stage IS NOT NULL
),
people AS MATERIALIZED (
    SELECT m.id, m.org_id,
           {ROLE.format(m="m", role="secretary")} AS secretary,
           {ROLE.format(m="m", role="leader")} AS leader,
           {ROLE.format(m="m", role="inspector")} AS inspector
    FROM member m
),
heads AS MATERIALIZED (
    SELECT org_id, id FROM people WHERE secretary
    UNION ALL
    SELECT l.org_id, l.id FROM people l
    WHERE l.leader AND NOT EXISTS (SELECT 1 FROM people s WHERE s.org_id = l.org_id AND s.secretary)
),
ancestors AS MATERIALIZED (
    SELECT c.org_id, CAST(a.id AS int) AS ancestor, a.depth,
           cardinality(string_to_array(trim(both '/' from c.path), '/')) AS n
    FROM (SELECT DISTINCT org_id, path FROM cand) c
    CROSS JOIN LATERAL unnest(string_to_array(trim(both '/' from c.path), '/'))
        WITH ORDINALITY AS a(id, depth)
),
above AS MATERIALIZED (
    SELECT DISTINCT ON (x.org_id) x.org_id, x.ancestor
    FROM ancestors x
    WHERE (x.depth < x.n OR x.n = 1)
      AND x.ancestor IN (SELECT org_id FROM people WHERE leader)
    ORDER BY x.org_id, x.depth DESC
),
covering AS MATERIALIZED (
    SELECT DISTINCT x.org_id, p.id
    FROM ancestors x
    JOIN group_scope gs ON gs.org_id = x.ancestor
    JOIN group_member gm ON gm.group_id = gs.group_id
    JOIN people p ON p.id = gm.member_id AND p.inspector
),
owed AS (
    SELECT number, stage, due_date, responsible_id AS rid FROM staged
    WHERE stage IN ('remind-1', 'remind-3', 'overdue')
    UNION
    SELECT s.number, s.stage, s.due_date, h.id FROM staged s JOIN heads h ON h.org_id = s.org_id
    WHERE s.stage IN ('overdue', 'escalate-1')
    UNION
    SELECT s.number, s.stage, s.due_date, s.creator_id FROM staged s
    WHERE s.stage = 'escalate-1' AND s.logged_by_inspector
    UNION
    SELECT s.number, s.stage, s.due_date, c.id FROM staged s JOIN covering c ON c.org_id = s.org_id
    WHERE s.stage = 'escalate-1' AND NOT s.logged_by_inspector
    UNION
    SELECT s.number, s.stage, s.due_date, p.id FROM staged s
    JOIN above a ON a.org_id = s.org_id JOIN people p ON p.org_id = a.ancestor AND p.leader
    WHERE s.stage = 'escalate-2'
)
SELECT o.stage, count(*) FROM owed o
WHERE o.rid IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM notification n
    WHERE n.key = o.number || ':' || o.stage || ':' || to_char(o.due_date, 'YYYY-MM-DD')
                  || ':' || 'm' || o.rid
)
GROUP BY o.stage
UNION ALL
SELECT 'escalated', count(*) FROM cand
WHERE (CASE WHEN overdue_days >= 10 THEN 2 WHEN overdue_days >= 5 THEN 1 ELSE 0 END)
      > escalation_level
"""


def sql_counts(engine: Engine, today: date, cal: WorkCalendar) -> dict[str, int]:
    """The SQL equivalent's answer: newly owed per stage, and "escalated".

    (The key's ":m" is spelled ':' || 'm' in SQL: text() would read :m as a parameter.)
    """
    first = today - timedelta(days=6 * 366)
    last = today + timedelta(days=60)
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    cums = [cal.workdays_between(first, day) for day in days]
    latest = latest_due_date(today, Facts(today, cal, 3), REMIND_DAYS)
    with engine.connect() as connection:
        rows = connection.execute(
            text(SQL),
            {
                "days": days,
                "cums": cums,
                "today": today,
                "today_cum": cal.workdays_between(first, today),
                "latest": latest,
            },
        ).all()
    return {stage: count for stage, count in rows if count}


def dry_counts(report: SweepReport) -> dict[str, int]:
    counts = {stage: n for stage, n in report.owed.items() if n}
    if report.escalated:
        counts["escalated"] = len(report.escalated)
    return counts


def run_sweep(engine: Engine, today: date, *, dry_run: bool) -> SweepReport:
    with Session(engine, expire_on_commit=False) as session:
        facts = Facts(today=today, calendar=load_calendar(session), warn_days=3)
        report = sweep(
            session,
            facts,
            remind_days=REMIND_DAYS,
            escalate_days=ESCALATE_DAYS,
            dry_run=dry_run,
            on_batch=None if dry_run else (lambda _: session.commit()),
        )
        session.commit() if not dry_run else session.rollback()
    return report


def timed(work: Callable[[], object]) -> tuple[float, float, object]:
    """Wall seconds, this process's CPU seconds (the sweep's Python side), and the result."""
    started, cpu = time.perf_counter(), time.process_time()
    result = work()
    return time.perf_counter() - started, time.process_time() - cpu, result


@contextmanager
def postgres_database(admin_url: str, keep: bool) -> Iterator[str]:
    name = f"closeout_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=DEFAULT_ITEMS)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--postgres", default=POSTGRES_ADMIN_URL, help="admin URL")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--today", type=date.fromisoformat, help="default: today in Beijing")
    options = parser.parse_args()
    today = options.today or clock.today(ZONE)

    with postgres_database(options.postgres, options.keep) as url:
        upgrade(url)
        engine = make_engine(url)
        started = time.perf_counter()
        statuses = load(engine, options.items, today)
        print(
            f"ledger: {options.items} items ({', '.join(f'{k} {v}' for k, v in statuses.items())}),"
            f" loaded in {time.perf_counter() - started:.0f} s; today is {today}"
        )
        with Session(engine) as session:
            cal = load_calendar(session)
        next_day = cal.add_workdays(today, 1)
        table: list[tuple[str, str, float, str]] = []
        failed = False
        for label, day in (("day 1 (first sweep)", today), ("day 2 (daily sweep)", next_day)):
            sql_times, dry_times = [], []
            for _ in range(options.runs):
                seconds, _, sql_result = timed(lambda: sql_counts(engine, day, cal))  # noqa: B023
                sql_times.append(seconds)
                seconds, _, dry_report = timed(lambda: run_sweep(engine, day, dry_run=True))  # noqa: B023
                dry_times.append(seconds)
            dry = dry_counts(dry_report)  # type: ignore[arg-type]
            if sql_result != dry:
                print(
                    f"{label}: the SQL and the dry run disagree:\n  sql {sql_result}\n  dry {dry}"
                )
                failed = True
            seconds_real, cpu_real, real = timed(lambda: run_sweep(engine, day, dry_run=False))  # noqa: B023
            seconds_again, cpu_again, again = timed(lambda: run_sweep(engine, day, dry_run=False))  # noqa: B023
            if dry_counts(real) != dry:  # type: ignore[arg-type]
                print(f"{label}: the sweep owed {dry_counts(real)} but the dry run said {dry}")  # type: ignore[arg-type]
                failed = True
            if again.total_owed or again.escalated:  # type: ignore[attr-defined]
                print(f"{label}: a second sweep owed {dry_counts(again)}")  # type: ignore[arg-type]
                failed = True
            candidates = dry_report.candidates  # type: ignore[attr-defined]
            owed = sum(v for k, v in dry.items() if k != "escalated")
            notes = f"{candidates} candidates, {owed} owed, {dry.get('escalated', 0)} escalated"
            table.append((label, "sql", statistics.median(sql_times), notes))
            table.append(
                (
                    label,
                    "dry run",
                    statistics.median(dry_times),
                    f"{statistics.median(dry_times) / statistics.median(sql_times):.2f}× sql",
                )
            )
            table.append(
                (
                    label,
                    "sweep",
                    seconds_real,
                    f"{len(real.notices)} notices drafted; {cpu_real:.1f} s CPU",  # type: ignore[attr-defined]
                )
            )
            table.append(
                (
                    label,
                    "re-run",
                    seconds_again,
                    ("owed nothing" if not again.total_owed else "OWED AGAIN")  # type: ignore[attr-defined]
                    + f"; {cpu_again:.1f} s CPU",
                )
            )  # type: ignore[attr-defined]
            print(f"  {label} done", flush=True)
        engine.dispose()
    print()
    print(f"{'day':<22} {'what':<8} {'seconds':>8}  notes")
    for label, what, seconds, notes in table:
        print(f"{label:<22} {what:<8} {seconds:>8.2f}  {notes}")
    print(f"(sql and dry run: median of {options.runs}; sweep and re-run: once, they write)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
