"""SPEC §2: the directory import, all-or-nothing and idempotent."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from models.db import transaction
from models.directory import apply_directory, read_directory
from models.sheets import ImportRefused
from models.tables import GroupScope, Member, Org
from tests.support import DISTRICT, District, load_district


def _copy_district(tmp_path: Path) -> Path:
    folder = tmp_path / "district"
    shutil.copytree(DISTRICT, folder)
    return folder


def _count(engine: Engine, table: type) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(table)).one()


def test_org_paths_make_each_subtree_a_prefix(engine: Engine, district: District) -> None:
    with Session(engine) as session:
        committee = district.org(session, "C01")
        branch = district.org(session, "B01")
        general = district.org(session, "G01")
        other = district.org(session, "B04")
    assert branch.path.startswith(general.path) and general.path.startswith(committee.path)
    assert not other.path.startswith(committee.path)


def test_a_second_import_of_the_same_directory_changes_nothing(
    engine: Engine, district: District
) -> None:
    with transaction(engine) as session:
        changes = apply_directory(session, read_directory(DISTRICT, session=session))
    assert changes.total == 0


def test_reimport_updates_by_code(engine: Engine, district: District, tmp_path: Path) -> None:
    folder = _copy_district(tmp_path)
    members = (folder / "members.csv").read_text(encoding="utf-8")
    (folder / "members.csv").write_text(members.replace("陈党员,B01", "陈党员,B02"), "utf-8")
    with transaction(engine) as session:
        changes = apply_directory(session, read_directory(folder, session=session))
    assert changes.members_changed == 1 and changes.members_added == 0
    with Session(engine) as session:
        assert district.member(session, "M006").org_id == district.orgs["B02"]


def test_roles_are_stored_and_member_is_implied(engine: Engine, district: District) -> None:
    with Session(engine) as session:
        assert district.member(session, "M013").roles == "inspector;member"
        assert district.member(session, "M003").roles == "inspector;member"


def test_group_scopes_are_replaced_on_reimport(
    engine: Engine, district: District, tmp_path: Path
) -> None:
    folder = _copy_district(tmp_path)
    groups = (folder / "groups.csv").read_text(encoding="utf-8")
    (folder / "groups.csv").write_text(
        groups.replace("M003;M004,C01", "M003;M004,G01;B03"), "utf-8"
    )
    with transaction(engine) as session:
        changes = apply_directory(session, read_directory(folder, session=session))
    assert changes.groups_changed == 1
    with Session(engine) as session:
        scopes = set(
            session.exec(
                select(GroupScope.org_id).where(GroupScope.group_id == district.groups["GRP1"])
            ).all()
        )
    assert scopes == {district.orgs["G01"], district.orgs["B03"]}


@pytest.mark.parametrize(
    ("sheet", "row", "expected"),
    [
        ("orgs", "X1,Lost,branch,NOPE", "orgs:9:parent_code: unknown parent 'NOPE'"),
        ("orgs", "B01,Again,branch,G01", "orgs:9:code: duplicate code 'B01' (first on row 4)"),
        ("orgs", "X2,,branch,C01", "orgs:9:name: must not be empty"),
        ("orgs", "X3,Odd,club,C01", "orgs:9:kind: unknown kind 'club'"),
        ("members", "M099,某人,NOPE,member,,", "members:15:org_code: unknown org 'NOPE'"),
        ("members", "M098,某人,B01,boss,,", "members:15:roles: unknown role boss"),
        ("members", "M097,,B01,member,,", "members:15:name: must not be empty"),
        ("groups", "GRP9,组,M999,C01", "groups:4:member_codes: unknown member 'M999'"),
    ],
)
def test_a_bad_row_is_reported_by_place_and_nothing_is_written(
    engine: Engine, tmp_path: Path, sheet: str, row: str, expected: str
) -> None:
    folder = _copy_district(tmp_path)
    with (folder / f"{sheet}.csv").open("a", encoding="utf-8") as handle:
        handle.write(row + "\n")
    with pytest.raises(ImportRefused) as refused, Session(engine) as session:
        read_directory(folder, session=session)
    assert any(error.startswith(expected) for error in refused.value.errors), refused.value.errors
    assert _count(engine, Org) == 0 and _count(engine, Member) == 0


def test_a_cycle_in_the_tree_is_refused(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "cycle"
    folder.mkdir()
    (folder / "orgs.csv").write_text(
        "code,name,kind,parent_code\nA,甲,committee,C\nB,乙,branch,A\nC,丙,branch,B\n", "utf-8"
    )
    with pytest.raises(ImportRefused) as refused, Session(engine) as session:
        read_directory(folder, session=session)
    assert any("cycle in the tree" in error for error in refused.value.errors)


def test_a_reparent_that_closes_a_cycle_with_stored_orgs_is_refused(
    engine: Engine, district: District, tmp_path: Path
) -> None:
    folder = tmp_path / "reparent"
    folder.mkdir()
    (folder / "orgs.csv").write_text("code,name,kind,parent_code\nG01,总支,general_branch,B01\n")
    with pytest.raises(ImportRefused) as refused, Session(engine) as session:
        read_directory(folder, session=session)
    assert any("cycle" in error for error in refused.value.errors)


def test_chinese_headers_and_kind_names_are_accepted(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "zh"
    folder.mkdir()
    (folder / "orgs.csv").write_text(
        "编码,名称,类型,上级编码\nZ1,某党委,党委,\nZ2,某支部,党支部,Z1\n", "utf-8"
    )
    (folder / "members.csv").write_text("编码,姓名,组织编码,角色\nP1,某书记,Z2,支部书记\n", "utf-8")
    with transaction(engine) as session:
        changes = apply_directory(session, read_directory(folder, session=session))
    assert (changes.orgs_added, changes.members_added) == (2, 1)
    with Session(engine) as session:
        member = session.exec(select(Member).where(Member.code == "P1")).one()
    assert member.roles == "secretary;member"


def test_a_missing_required_column_is_named(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "nocol"
    folder.mkdir()
    (folder / "orgs.csv").write_text("code,kind\nA,committee\n", "utf-8")
    with pytest.raises(ImportRefused) as refused, Session(engine) as session:
        read_directory(folder, session=session)
    assert refused.value.errors == ["orgs:1:name: required column is missing"]


def test_load_district_twice_is_stable(engine: Engine) -> None:
    first = load_district(engine)
    second = load_district(engine)
    assert first == second
