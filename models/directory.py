"""The directory (SPEC §2): the org tree, members and their roles, inspection groups.

`read_directory` checks a whole file first and raises `ImportRefused` with
every bad row; `apply_directory` then upserts by code in the caller's
transaction. Together they make an import all-or-nothing and idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, insert, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from models.limits import CODE_MAX, NAME_MAX
from models.roles import ORG_KINDS, join_roles, parse_roles
from models.sheets import ImportRefused, Row, RowError, read_tables
from models.tables import GroupMember, GroupScope, InspectionGroup, Member, Org

COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "orgs": {
        "code": ("编码", "组织编码"),
        "name": ("名称", "组织名称"),
        "kind": ("类型", "组织类型"),
        "parent_code": ("上级编码", "上级组织编码"),
    },
    "members": {
        "code": ("编码", "人员编码"),
        "name": ("姓名",),
        "org_code": ("组织编码", "所在组织编码"),
        "roles": ("角色",),
        "telegram_username": ("telegram", "电报用户名"),
        "language": ("语言",),
    },
    "groups": {
        "code": ("编码", "督查组编码"),
        "name": ("名称", "督查组名称"),
        "member_codes": ("成员编码",),
        "scope_org_codes": ("范围组织编码", "督查范围"),
    },
}
REQUIRED = {
    "orgs": ("code", "name", "kind"),
    "members": ("code", "name", "org_code"),
    "groups": ("code", "name"),
}
#: Chinese names of the org kinds as teams write them.
KIND_ALIASES = {
    "党委": "committee",
    "党工委": "committee",
    "委员会": "committee",
    "党总支": "general_branch",
    "总支": "general_branch",
    "党支部": "branch",
    "支部": "branch",
}
#: Rows per bulk statement: large enough to be fast, small enough for PostgreSQL's parameter cap.
BATCH = 2000
#: Callback for progress: (rows done, rows in all).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class OrgRow:
    row: int
    code: str
    name: str
    kind: str
    parent_code: str | None


@dataclass(frozen=True)
class MemberRow:
    row: int
    code: str
    name: str
    org_code: str
    roles: tuple[str, ...]
    telegram_username: str | None
    language: str | None


@dataclass(frozen=True)
class GroupRow:
    row: int
    code: str
    name: str
    member_codes: tuple[str, ...]
    scope_org_codes: tuple[str, ...]


@dataclass
class Directory:
    orgs: list[OrgRow] = field(default_factory=list)
    members: list[MemberRow] = field(default_factory=list)
    groups: list[GroupRow] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.orgs) + len(self.members) + len(self.groups)


@dataclass
class DirectoryChanges:
    """What an import did: an unchanged re-import counts zero everywhere."""

    orgs_added: int = 0
    orgs_changed: int = 0
    members_added: int = 0
    members_changed: int = 0
    groups_added: int = 0
    groups_changed: int = 0

    @property
    def total(self) -> int:
        return sum(vars(self).values())


def _codes(text: str) -> tuple[str, ...]:
    parts = (part.strip() for part in text.replace("；", ";").replace(",", ";").split(";"))
    return tuple(dict.fromkeys(part for part in parts if part))


def _check_text(
    errors: list[RowError], sheet: str, row: Row, column: str, limit: int, *, required: bool
) -> str:
    value = row.text(column)
    if required and not value:
        errors.append(RowError(sheet, row.number, column, "must not be empty"))
    elif len(value) > limit:
        errors.append(RowError(sheet, row.number, column, f"longer than {limit} characters"))
    return value


def parse_directory(tables: dict[str, list[Row]]) -> tuple[Directory, list[RowError]]:
    """Rows → typed records; every cell-level problem is collected, none raised."""
    errors: list[RowError] = []
    directory = Directory()
    for row in tables.get("orgs", []):
        code = _check_text(errors, "orgs", row, "code", CODE_MAX, required=True)
        name = _check_text(errors, "orgs", row, "name", NAME_MAX, required=True)
        raw_kind = row.text("kind")
        kind = KIND_ALIASES.get(raw_kind, raw_kind.lower())
        if kind not in ORG_KINDS:
            errors.append(
                RowError(
                    "orgs",
                    row.number,
                    "kind",
                    f"unknown kind {raw_kind!r} (known: {', '.join(ORG_KINDS)})",
                )
            )
        parent = row.text("parent_code") or None
        directory.orgs.append(OrgRow(row.number, code, name, kind, parent))
    for row in tables.get("members", []):
        code = _check_text(errors, "members", row, "code", CODE_MAX, required=True)
        name = _check_text(errors, "members", row, "name", NAME_MAX, required=True)
        org_code = _check_text(errors, "members", row, "org_code", CODE_MAX, required=True)
        try:
            roles = parse_roles(row.text("roles"))
        except ValueError as exc:
            errors.append(RowError("members", row.number, "roles", str(exc)))
            roles = ("member",)
        username = row.text("telegram_username").lstrip("@") or None
        language = row.text("language").lower() or None
        if language not in (None, "zh", "en"):
            errors.append(RowError("members", row.number, "language", "must be zh or en"))
        directory.members.append(
            MemberRow(row.number, code, name, org_code, roles, username, language)
        )
    for row in tables.get("groups", []):
        code = _check_text(errors, "groups", row, "code", CODE_MAX, required=True)
        name = _check_text(errors, "groups", row, "name", NAME_MAX, required=True)
        directory.groups.append(
            GroupRow(
                row.number,
                code,
                name,
                _codes(row.text("member_codes")),
                _codes(row.text("scope_org_codes")),
            )
        )
    return directory, errors


def check_directory(
    directory: Directory,
    *,
    known_orgs: dict[str, str | None],
    known_members: set[str],
) -> list[RowError]:
    """The whole-file rules: duplicate codes, unknown references, cycles.

    `known_orgs` maps the codes already stored to their parent codes, so a
    file may refer to orgs imported earlier and cannot make a cycle with them.
    """
    errors: list[RowError] = []
    for sheet, rows in (
        ("orgs", directory.orgs),
        ("members", directory.members),
        ("groups", directory.groups),
    ):
        first: dict[str, int] = {}
        for record in rows:
            if not record.code:
                continue
            if record.code in first:
                errors.append(
                    RowError(
                        sheet,
                        record.row,
                        "code",
                        f"duplicate code {record.code!r} (first on row {first[record.code]})",
                    )
                )
            else:
                first[record.code] = record.row
    parents = dict(known_orgs)
    parents.update({org.code: org.parent_code for org in directory.orgs if org.code})
    for org in directory.orgs:
        if org.parent_code and org.parent_code not in parents:
            errors.append(
                RowError("orgs", org.row, "parent_code", f"unknown parent {org.parent_code!r}")
            )
    errors.extend(_cycles(directory.orgs, parents))
    member_codes = known_members | {member.code for member in directory.members}
    for member in directory.members:
        if member.org_code and member.org_code not in parents:
            errors.append(
                RowError("members", member.row, "org_code", f"unknown org {member.org_code!r}")
            )
    for group in directory.groups:
        for code in group.member_codes:
            if code not in member_codes:
                errors.append(
                    RowError("groups", group.row, "member_codes", f"unknown member {code!r}")
                )
        for code in group.scope_org_codes:
            if code not in parents:
                errors.append(
                    RowError("groups", group.row, "scope_org_codes", f"unknown org {code!r}")
                )
    return errors


def _cycles(orgs: list[OrgRow], parents: dict[str, str | None]) -> list[RowError]:
    errors = []
    state: dict[str, int] = {}  # 1: on the current walk, 2: known to reach a root
    rows = {org.code: org.row for org in orgs}
    for org in orgs:
        walk: list[str] = []
        code: str | None = org.code
        while code is not None and code in parents and state.get(code) is None:
            state[code] = 1
            walk.append(code)
            code = parents.get(code)
        if code is not None and state.get(code) == 1:
            cycle = walk[walk.index(code) :]
            errors.append(
                RowError(
                    "orgs",
                    rows.get(code, org.row),
                    "parent_code",
                    "cycle in the tree: " + " → ".join([*cycle, code]),
                )
            )
        for visited in walk:
            state[visited] = 2
    return errors


def read_directory(path: Path, *, session: Session) -> Directory:
    """Read and check a directory file against what is stored; raise `ImportRefused`."""
    tables = read_tables(path, COLUMNS, required=REQUIRED, optional_sheets=("members", "groups"))
    directory, errors = parse_directory({name: table.rows for name, table in tables.items()})
    parent_ids = dict(session.exec(select(Org.code, Org.parent_id)).all())
    known_orgs: dict[str, str | None] = {}
    if parent_ids:
        codes_by_id = dict(session.exec(select(Org.id, Org.code)).all())
        known_orgs = {code: codes_by_id.get(parent) for code, parent in parent_ids.items()}
    known_members = set(session.exec(select(Member.code)).all())
    errors.extend(check_directory(directory, known_orgs=known_orgs, known_members=known_members))
    if errors:
        errors.sort(key=lambda e: (list(COLUMNS).index(e.sheet), e.row))
        raise ImportRefused(errors)
    return directory


def _org_paths(session: Session) -> dict[int, str]:
    parents = {
        org_id: parent
        for org_id, parent in session.exec(select(Org.id, Org.parent_id)).all()
        if org_id is not None  # stored rows have ids
    }
    paths: dict[int, str] = {}

    def path_of(org_id: int) -> str:
        # Iterative: trees are shallow, but a file is not trusted to be.
        chain = []
        current: int | None = org_id
        while current is not None and current not in paths:
            chain.append(current)
            current = parents[current]
        prefix = paths[current] if current is not None else "/"
        for node in reversed(chain):
            prefix = f"{prefix}{node}/"
            paths[node] = prefix
        return paths[org_id]

    for org_id in parents:
        path_of(org_id)
    return paths


def apply_directory(
    session: Session, directory: Directory, *, progress: Progress | None = None
) -> DirectoryChanges:
    """Upsert a checked directory by code, in the caller's transaction.

    Rows equal to what is stored are left alone, so a second import of the same
    file changes nothing. Members and orgs missing from the file are kept.
    """
    changes = DirectoryChanges()
    done = 0
    total = directory.size

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if progress:
            progress(done, total)

    orgs = {org.code: org for org in session.exec(select(Org)).all()}
    added: set[str] = set()
    changed: set[str] = set()
    for row in directory.orgs:
        org = orgs.get(row.code)
        if org is None:
            org = Org(code=row.code, name=row.name, kind=row.kind)
            session.add(org)
            orgs[row.code] = org
            added.add(row.code)
        elif (org.name, org.kind) != (row.name, row.kind):
            org.name, org.kind = row.name, row.kind
            changed.add(row.code)
    session.flush()
    for row in directory.orgs:
        org = orgs[row.code]
        parent_id = orgs[row.parent_code].id if row.parent_code else None
        if org.parent_id != parent_id:
            org.parent_id = parent_id
            if row.code not in added:
                changed.add(row.code)
    session.flush()
    by_id = {org.id: org for org in orgs.values()}
    for org_id, path in _org_paths(session).items():
        if by_id[org_id].path != path:
            by_id[org_id].path = path
    session.flush()
    changes.orgs_added, changes.orgs_changed = len(added), len(changed)
    advance(len(directory.orgs))

    org_ids = {code: org.id for code, org in orgs.items() if org.id is not None}
    # session.execute with SQLAlchemy's select: sqlmodel's select is typed for
    # at most four columns; the rows are the same.
    stored = {
        stored_row.code: stored_row
        for stored_row in session.execute(
            sa_select(
                col(Member.id),
                col(Member.code),
                col(Member.name),
                col(Member.org_id),
                col(Member.roles),
                col(Member.telegram_username),
                col(Member.language),
            )
        ).all()
    }
    new_rows, changed_rows = [], []
    for member_row in directory.members:
        values = {
            "name": member_row.name,
            "org_id": org_ids[member_row.org_code],
            "roles": join_roles(member_row.roles),
            "telegram_username": member_row.telegram_username,
            "language": member_row.language,
        }
        current = stored.get(member_row.code)
        if current is None:
            new_rows.append({"code": member_row.code, **values})
        elif any(getattr(current, key) != value for key, value in values.items()):
            changed_rows.append({"id": current.id, **values})
    # render_nulls: the ORM drops None values from a bulk insert's rows, so rows
    # with and without a username or language would split into thousands of
    # small statements; with it each batch is one multi-row INSERT.
    insert_members = insert(Member).execution_options(render_nulls=True)
    for start in range(0, max(len(new_rows), len(changed_rows)), BATCH):
        if new_rows[start : start + BATCH]:
            session.execute(insert_members, new_rows[start : start + BATCH])
        if changed_rows[start : start + BATCH]:
            session.execute(update(Member), changed_rows[start : start + BATCH])
        advance(min(BATCH, len(directory.members) - start))
    changes.members_added, changes.members_changed = len(new_rows), len(changed_rows)
    if not directory.members:
        advance(0)

    if directory.groups:
        member_ids = {
            code: member_id
            for code, member_id in session.exec(select(Member.code, Member.id)).all()
            if member_id is not None  # stored rows have ids
        }
        groups = {group.code: group for group in session.exec(select(InspectionGroup)).all()}
        for group_row in directory.groups:
            group = groups.get(group_row.code)
            group_changed = False
            if group is None:
                group = InspectionGroup(code=group_row.code, name=group_row.name)
                session.add(group)
                session.flush()
                changes.groups_added += 1
            elif group.name != group_row.name:
                group.name = group_row.name
                group_changed = True
            assert group.id is not None  # stored, or flushed above
            group_changed |= _replace_links(
                session,
                GroupMember,
                group.id,
                "member_id",
                {member_ids[code] for code in group_row.member_codes},
            )
            group_changed |= _replace_links(
                session,
                GroupScope,
                group.id,
                "org_id",
                {org_ids[code] for code in group_row.scope_org_codes},
            )
            if group_changed and group_row.code in groups:
                changes.groups_changed += 1
        advance(len(directory.groups))
    session.flush()
    return changes


def _replace_links(
    session: Session,
    table: type[GroupMember] | type[GroupScope],
    group_id: int,
    column: str,
    wanted: set[int],
) -> bool:
    current = set(
        session.exec(select(getattr(table, column)).where(col(table.group_id) == group_id)).all()
    )
    if current == wanted:
        return False
    gone = current - wanted
    if gone:
        session.execute(
            delete(table).where(col(table.group_id) == group_id, getattr(table, column).in_(gone))
        )
    for value in wanted - current:
        session.add(table(group_id=group_id, **{column: value}))
    return True
