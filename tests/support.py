"""Helpers shared by the tests: the fixture district and its ids."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, select

from models.db import transaction
from models.directory import apply_directory, read_directory
from models.tables import InspectionGroup, Member, Org

FIXTURES = Path(__file__).parent / "fixtures"
#: The fixture district: two committees, a general branch, branches, two
#: inspection groups and a member in every role (see its CSV files).
DISTRICT = FIXTURES / "district"


@dataclass
class District:
    """The fixture district's ids by code (see tests/fixtures/district)."""

    orgs: dict[str, int]
    members: dict[str, int]
    groups: dict[str, int]

    def org(self, session: Session, code: str) -> Org:
        org = session.get(Org, self.orgs[code])
        assert org is not None
        return org

    def member(self, session: Session, code: str) -> Member:
        member = session.get(Member, self.members[code])
        assert member is not None
        return member


def load_district(engine: Engine, path: Path = DISTRICT) -> District:
    with transaction(engine) as session:
        apply_directory(session, read_directory(path, session=session))
    with Session(engine) as session:
        return District(
            orgs=dict(session.exec(select(Org.code, Org.id)).all()),  # type: ignore[arg-type]
            members=dict(session.exec(select(Member.code, Member.id)).all()),  # type: ignore[arg-type]
            groups=dict(session.exec(select(InspectionGroup.code, InspectionGroup.id)).all()),  # type: ignore[arg-type]
        )
