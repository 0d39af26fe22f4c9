"""Who is who: the actor behind a request, and who must hear about an item.

Queries over the directory; they take the session and never commit.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, bindparam, or_
from sqlmodel import Session, col, select

from models.permissions import Actor
from models.roles import split_roles
from models.tables import GroupMember, GroupScope, Member, Org

#: The org paths a member inspects through their groups; built once (every bot
#: update asks it), the member's id bound as `member_id`.
_GROUP_PATHS = (
    select(Org.path)
    .join(GroupScope, col(GroupScope.org_id) == Org.id)
    .join(GroupMember, col(GroupMember.group_id) == GroupScope.group_id)
    .where(GroupMember.member_id == bindparam("member_id"))
    .distinct()
)


def actor_for(session: Session, member_id: int) -> Actor:
    """The permission view of a member: roles, org path and inspection scopes."""
    member = session.get(Member, member_id)
    if member is None:
        raise LookupError(f"no member {member_id}")
    org = session.get(Org, member.org_id)
    group_paths = session.exec(_GROUP_PATHS, params={"member_id": member_id}).all()
    return _actor(member_id, member.roles, org.path if org else "/", group_paths)


#: The same, for several members at once, with whose path it is.
_GROUPS_PATHS = (
    select(GroupMember.member_id, Org.path)
    .join(GroupScope, col(GroupScope.org_id) == Org.id)
    .join(GroupMember, col(GroupMember.group_id) == GroupScope.group_id)
    .where(col(GroupMember.member_id).in_(bindparam("member_ids", expanding=True)))
    .distinct()
)


def actors_for(session: Session, member_ids: Sequence[int]) -> dict[int, Actor]:
    """`actor_for` of several members in three queries, by member id; a missing
    member is left out."""
    if not member_ids:
        return {}
    members = session.exec(select(Member).where(col(Member.id).in_(list(member_ids)))).all()
    orgs = dict(
        session.exec(
            select(Org.id, Org.path).where(col(Org.id).in_({m.org_id for m in members}))
        ).all()
    )
    paths: dict[int, list[str]] = {}
    for member_id, path in session.exec(_GROUPS_PATHS, params={"member_ids": list(member_ids)}):
        paths.setdefault(member_id, []).append(path)
    return {
        member.id: _actor(
            member.id, member.roles, orgs.get(member.org_id, "/"), paths.get(member.id, ())
        )
        for member in members
        if member.id is not None
    }


def actor_of(
    session: Session, member_id: int, roles: str, org_path: str, *, in_groups: bool = True
) -> Actor:
    """The permission view of a member whose stored roles and org path the caller has read.

    `in_groups=False`: the caller read that the member is in no inspection
    group, so there are no scopes to read (most members: secretaries, leaders).
    Runs on the session's connection, past the ORM (the guard asks it on every
    update), so it does not flush: for a transaction that has written nothing.
    """
    if not in_groups:
        return _actor(member_id, roles, org_path, ())
    connection = session.connection()
    group_paths = connection.execute(_GROUP_PATHS, {"member_id": member_id}).scalars().all()
    return _actor(member_id, roles, org_path, group_paths)


def _actor(member_id: int, roles: str, org_path: str, group_paths: Sequence[str]) -> Actor:
    return Actor(
        member_id=member_id,
        roles=split_roles(roles),
        org_path=org_path,
        group_paths=tuple(sorted(group_paths)),
    )


def _ancestors(path: str) -> list[str]:
    """'/1/5/23/' → ['/1/', '/1/5/', '/1/5/23/']."""
    ids = [part for part in path.split("/") if part]
    return ["/" + "/".join(ids[: end + 1]) + "/" for end in range(len(ids))]


def _with_role(role: str) -> ColumnElement[bool]:
    # Roles are stored ";"-joined in a fixed order, so a role is a whole segment.
    return or_(
        col(Member.roles) == role,
        col(Member.roles).startswith(f"{role};"),
        col(Member.roles).contains(f";{role};"),
        col(Member.roles).endswith(f";{role}"),
    )


def _of_org(session: Session, org_id: int, role: str) -> list[Member]:
    return list(
        session.exec(
            select(Member).where(Member.org_id == org_id, _with_role(role)).order_by(col(Member.id))
        ).all()
    )


def secretaries_of(session: Session, org_id: int) -> list[Member]:
    """The secretaries of one org (not of its parents)."""
    return _of_org(session, org_id, "secretary")


def leaders_of(session: Session, org_id: int) -> list[Member]:
    """The leaders of one org (not of its parents)."""
    return _of_org(session, org_id, "leader")


def inspectors_covering(session: Session, org_path: str) -> list[Member]:
    """Inspectors whose inspection groups' scopes contain the org at `org_path`."""
    ancestors = _ancestors(org_path)
    return list(
        session.exec(
            select(Member)
            .join(GroupMember, col(GroupMember.member_id) == Member.id)
            .join(GroupScope, col(GroupScope.group_id) == GroupMember.group_id)
            .join(Org, col(Org.id) == GroupScope.org_id)
            .where(col(Org.path).in_(ancestors), _with_role("inspector"))
            .distinct()
            .order_by(col(Member.id))
        ).all()
    )


def leaders_above(session: Session, org_path: str) -> list[Member]:
    """Leaders of the nearest org above `org_path` that has any (the parent org first)."""
    ancestors = _ancestors(org_path)
    for path in reversed(ancestors[:-1] or ancestors):
        leaders = session.exec(
            select(Member)
            .join(Org, col(Org.id) == Member.org_id)
            .where(Org.path == path, _with_role("leader"))
            .order_by(col(Member.id))
        ).all()
        if leaders:
            return list(leaders)
    return []


def admins(session: Session) -> list[Member]:
    statement = select(Member).where(_with_role("admin")).order_by(col(Member.id))
    return list(session.exec(statement).all())
