"""Benchmark `closeout import directory` on a district-sized directory.

Generates a realistic district (a district committee over town and street
committees, general branches and branches; members with secretaries, leaders
and inspectors; inspection groups with scopes) as a folder of CSVs, and with
`--xlsx` as a workbook too. Then, for each backend (SQLite, PostgreSQL) and
each run, it creates a fresh database, runs `closeout db upgrade`, and times
two imports with the real `closeout` command: the first (everything added)
and the second (must report 0 added, 0 changed, else the script exits 1).

    /work/venv/bin/python bench/import_directory.py [--orgs 2500 --members 55000 --runs 3]

Wall-clock time and peak RSS are per child process (os.wait4).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text

#: Orgs and members in the default district (a large county-level district).
DEFAULT_ORGS = 2500
DEFAULT_MEMBERS = 55_000
#: Fresh databases per backend.
DEFAULT_RUNS = 3
#: Inspection groups in the district.
GROUPS = 100
#: Orgs per town or street committee (a committee every ~200 orgs).
ORGS_PER_COMMITTEE = 200
#: Share of orgs that are general branches (党总支).
GENERAL_BRANCH_SHARE = 0.10
#: Share of branches that sit under a general branch rather than directly under a committee.
BRANCHES_UNDER_GENERAL = 0.6
#: Members working at each committee's office (leaders and inspectors come from here).
COMMITTEE_STAFF = 40
#: Leaders per committee, per general branch.
COMMITTEE_LEADERS, GENERAL_BRANCH_LEADERS = 4, 1
#: Members per inspection group (督查组), smallest and largest.
GROUP_SIZE = (3, 7)
#: Org subtrees in one group's scope, smallest and largest.
GROUP_SCOPE = (1, 3)
#: Share of members who gave a Telegram username, and who prefer English.
USERNAME_SHARE, ENGLISH_SHARE = 0.3, 0.02
#: Seed, so every run benchmarks the same district.
SEED = 20260302
#: Seconds one `closeout` call may take before the benchmark gives up.
COMMAND_TIMEOUT = 1800
#: The machine's PostgreSQL, as the tests use it (trust auth, database `test`).
POSTGRES_ADMIN_URL = os.environ.get(
    "CLOSEOUT_TEST_POSTGRES", "postgresql+psycopg://root@127.0.0.1:5432/test"
)

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍红建国建华志强文斌海燕丹宁"
    "淑珍德明志明桂芳俊杰晓东晓红雪梅春梅海涛永刚国强立新卫东慧敏佳怡子涵浩然欣怡宇轩梓萱"
)
PLACES = (
    "城关 东关 西关 南关 北关 新城 老城 河西 河东 桥南 桥北 长安 安平 永安 太平 和平 兴隆 "
    "青山 白云 红旗 建设 胜利 解放 光明 幸福 团结 前进 东风 朝阳 向阳 金城 银湖 花园 柳林 "
    "杨庄 李庄 王庄 张村 刘村 陈村 马坊 石桥 双河 三里 五里 七里 沙河 清河 龙泉 凤凰 "
    "黄石 蓝田 紫荆 梧桐 桃园 杏林 梨园 松柏 竹园 枫林 丰乐 富民 康乐 和顺 东升 西岭"
).split()
UNITS = (
    "村 社区 居委会 学校 中学 小学 卫生院 医院 供电所 税务所 派出所 市场监管所 财政所 "
    "粮站 农机站 水利站 公司 集团 合作社 商会 协会 中心"
).split()
ORDINALS = "一二三四五六七八九十"


def _ordinal(number: int) -> str:
    if number <= 10:
        return ORDINALS[number - 1]
    tens, ones = divmod(number, 10)
    return (ORDINALS[tens - 1] if tens > 1 else "") + "十" + (ORDINALS[ones - 1] if ones else "")


@dataclass
class District:
    orgs: list[tuple[str, str, str, str]] = field(default_factory=list)
    members: list[tuple[str, str, str, str, str, str]] = field(default_factory=list)
    groups: list[tuple[str, str, str, str]] = field(default_factory=list)


def generate(org_total: int, member_total: int, seed: int = SEED) -> District:
    """A deterministic district with `org_total` orgs and `member_total` members."""
    rnd = random.Random(seed)
    district = District()
    committees = max(2, round(org_total / ORGS_PER_COMMITTEE))
    generals = round(org_total * GENERAL_BRANCH_SHARE)
    branches = org_total - committees - generals
    if branches < committees:
        raise SystemExit("--orgs is too small for a district")
    place = iter(rnd.sample(PLACES, len(PLACES)) * (1 + org_total // len(PLACES)))

    district.orgs.append(("C000", "某某区委", "committee", ""))
    committee_codes = ["C000"]
    for index in range(1, committees):
        suffix = "党工委" if index % 4 == 0 else "党委"
        town = next(place) + ("街道" if index % 3 == 0 else "镇")
        code = f"C{index:03d}"
        district.orgs.append((code, f"{town}{suffix}", "committee", "C000"))
        committee_codes.append(code)
    general_codes: list[str] = []
    for index in range(1, generals + 1):
        parent = committee_codes[1 + (index - 1) % (len(committee_codes) - 1)]
        code = f"G{index:04d}"
        name = f"{next(place)}{rnd.choice(UNITS)}党总支"
        district.orgs.append((code, name, "general_branch", parent))
        general_codes.append(code)
    branch_codes: list[str] = []
    children: Counter[str] = Counter()
    for index in range(1, branches + 1):
        if general_codes and rnd.random() < BRANCHES_UNDER_GENERAL:
            parent = rnd.choice(general_codes)
        else:
            parent = rnd.choice(committee_codes[1:])
        children[parent] += 1
        code = f"B{index:05d}"
        name = (
            f"{next(place)}{rnd.choice(UNITS)}第{_ordinal((children[parent] - 1) % 99 + 1)}党支部"
        )
        district.orgs.append((code, name, "branch", parent))
        branch_codes.append(code)

    serial = 0

    def person(org: str, roles: str) -> str:
        nonlocal serial
        serial += 1
        code = f"M{serial:06d}"
        name = rnd.choice(SURNAMES) + "".join(rnd.choices(GIVEN, k=rnd.choice((1, 2))))
        username = f"u{serial:06d}_{rnd.randrange(10**4)}" if rnd.random() < USERNAME_SHARE else ""
        language = "en" if rnd.random() < ENGLISH_SHARE else rnd.choice(("zh", ""))
        district.members.append((code, name, org, roles, username, language))
        return code

    person("C000", "admin")
    person("C000", "admin;leader")
    inspectors: list[str] = []
    for committee in committee_codes:
        person(committee, "secretary;leader")
        for _ in range(COMMITTEE_LEADERS):
            person(committee, "leader")
        for _ in range(COMMITTEE_STAFF):
            inspectors.append(person(committee, "inspector"))
    for general in general_codes:
        person(general, "secretary")
        for _ in range(GENERAL_BRANCH_LEADERS):
            person(general, "leader")
    for branch in branch_codes:
        person(branch, "secretary")
    remaining = member_total - serial
    if remaining < 0:
        raise SystemExit(f"--members must be at least {serial} for {org_total} orgs")
    # Branch sizes vary a lot (3 to 50 is common): weight each branch at random.
    weights = [rnd.lognormvariate(0, 0.6) for _ in branch_codes]
    for branch in rnd.choices(branch_codes, weights=weights, k=remaining):
        person(branch, "member")

    group_pool = rnd.sample(inspectors, min(len(inspectors), GROUPS * GROUP_SIZE[1]))
    scopes = committee_codes[1:] + general_codes
    for index in range(1, GROUPS + 1):
        size = rnd.randint(*GROUP_SIZE)
        members = [group_pool[(index * GROUP_SIZE[1] + k) % len(group_pool)] for k in range(size)]
        scope = rnd.sample(scopes, rnd.randint(*GROUP_SCOPE))
        district.groups.append(
            (f"GRP{index:03d}", f"第{index}督查组", ";".join(members), ";".join(scope))
        )
    return district


HEADERS = {
    "orgs": ("code", "name", "kind", "parent_code"),
    "members": ("code", "name", "org_code", "roles", "telegram_username", "language"),
    "groups": ("code", "name", "member_codes", "scope_org_codes"),
}


def write_csvs(district: District, folder: Path) -> None:
    """The district as `orgs.csv`, `members.csv`, `groups.csv` in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for sheet, rows in (
        ("orgs", district.orgs),
        ("members", district.members),
        ("groups", district.groups),
    ):
        with (folder / f"{sheet}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(HEADERS[sheet])
            writer.writerows(rows)


def write_xlsx(district: District, path: Path) -> None:
    """The district as a workbook with sheets `orgs`, `members`, `groups`."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    for sheet, rows in (
        ("orgs", district.orgs),
        ("members", district.members),
        ("groups", district.groups),
    ):
        worksheet = workbook.create_sheet(sheet)
        worksheet.append(list(HEADERS[sheet]))
        for row in rows:
            worksheet.append(list(row))
    workbook.save(path)


@dataclass
class Timing:
    seconds: float
    peak_rss_mb: float
    stdout: str


def closeout(*args: str, database_url: str, cwd: Path) -> Timing:
    """Run the real `closeout` command; raise SystemExit with its output if it fails."""
    script = Path(sys.executable).with_name("closeout")
    command = [str(script) if script.exists() else (shutil.which("closeout") or "closeout")]
    environment = {**os.environ, "DATABASE_URL": database_url}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            [*command, *args], stdout=out, stderr=err, env=environment, cwd=cwd
        )
        deadline = started + COMMAND_TIMEOUT
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                raise SystemExit(f"closeout {' '.join(args)}: no answer in {COMMAND_TIMEOUT} s")
            time.sleep(0.01)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if process.returncode != 0:
        raise SystemExit(
            f"closeout {' '.join(args)} exited {process.returncode}:\n{stdout}{stderr[-4000:]}"
        )
    return Timing(seconds, usage.ru_maxrss / 1024, stdout.strip())


_COUNTS = re.compile(
    r"orgs: (\d+) added, (\d+) changed; members: (\d+) added, (\d+) changed; "
    r"groups: (\d+) added, (\d+) changed"
)


def counts(stdout: str) -> tuple[int, ...]:
    match = _COUNTS.search(stdout)
    if match is None:
        raise SystemExit(f"unexpected output from closeout import directory: {stdout!r}")
    return tuple(int(part) for part in match.groups())


@contextmanager
def sqlite_database(workdir: Path) -> Iterator[str]:
    folder = Path(tempfile.mkdtemp(prefix="sqlite-", dir=workdir))
    try:
        yield f"sqlite:///{folder / 'closeout.db'}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    name = f"closeout_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orgs", type=int, default=DEFAULT_ORGS)
    parser.add_argument("--members", type=int, default=DEFAULT_MEMBERS)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--xlsx", action="store_true", help="also import from an .xlsx workbook")
    parser.add_argument(
        "--postgres", default=POSTGRES_ADMIN_URL, help="admin URL to create databases"
    )
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--keep", type=Path, help="write the generated files here and keep them")
    options = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="closeout-bench-"))
    try:
        started = time.perf_counter()
        district = generate(options.orgs, options.members)
        data = options.keep or workdir / "district"
        write_csvs(district, data)
        sources = [("csv", data)]
        if options.xlsx:
            write_xlsx(district, data / "district.xlsx")
            sources.append(("xlsx", data / "district.xlsx"))
        kinds = Counter(kind for _, _, kind, _ in district.orgs)
        roles = Counter(role for member in district.members for role in member[3].split(";"))
        size = sum(path.stat().st_size for path in data.glob("*.csv"))
        print(
            f"district: {len(district.orgs)} orgs ({kinds['committee']} committees, "
            f"{kinds['general_branch']} general branches, {kinds['branch']} branches), "
            f"{len(district.members)} members ({roles['secretary']} secretaries, "
            f"{roles['leader']} leaders, {roles['inspector']} inspectors, "
            f"{roles['admin']} admins), "
            f"{len(district.groups)} groups; CSVs {size / 1e6:.1f} MB, "
            f"generated in {time.perf_counter() - started:.1f} s"
        )
        expected = (len(district.orgs), 0, len(district.members), 0, len(district.groups), 0)

        backends = [("sqlite", lambda: sqlite_database(workdir))]
        if not options.skip_postgres:
            backends.append(("postgresql", lambda: postgres_database(options.postgres)))
        results: dict[tuple[str, str, str], list[Timing]] = {}
        for source, path in sources:
            for backend, database in backends:
                for run in range(1, options.runs + 1):
                    with database() as url:
                        closeout("db", "upgrade", database_url=url, cwd=workdir)
                        first = closeout(
                            "import", "directory", str(path), database_url=url, cwd=workdir
                        )
                        second = closeout(
                            "import", "directory", str(path), database_url=url, cwd=workdir
                        )
                    if counts(first.stdout) != expected:
                        print(f"first import reported {first.stdout!r}, expected {expected}")
                        return 1
                    if any(counts(second.stdout)):
                        print(f"second import changed something: {second.stdout!r}")
                        return 1
                    results.setdefault((source, backend, "first"), []).append(first)
                    results.setdefault((source, backend, "second"), []).append(second)
                    print(
                        f"  {source}/{backend} run {run}: first {first.seconds:.2f} s, "
                        f"second {second.seconds:.2f} s",
                        flush=True,
                    )
        print()
        print(
            f"{'source':<6} {'backend':<11} {'import':<7} {'median s':>9} {'min s':>7} "
            f"{'max s':>7} {'peak RSS MB':>12}"
        )
        for (source, backend, which), timings in results.items():
            seconds = [t.seconds for t in timings]
            peak = max(t.peak_rss_mb for t in timings)
            print(
                f"{source:<6} {backend:<11} {which:<7} {statistics.median(seconds):>9.2f} "
                f"{min(seconds):>7.2f} {max(seconds):>7.2f} {peak:>12.0f}"
            )
        print(
            f"({options.runs} run(s) each, every run on a fresh database; "
            "every second import reported 0 added, 0 changed)"
        )
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
