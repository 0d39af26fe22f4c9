"""Roles of SPEC §1 and the kinds, severities, sources and statuses of SPEC §3."""

from __future__ import annotations

ROLES = ("admin", "leader", "inspector", "secretary", "member")
ORG_KINDS = ("committee", "general_branch", "branch")
ITEM_KINDS = ("problem", "commitment", "task", "responsibility")
SEVERITIES = ("general", "serious", "severe")
SOURCES = ("inspection", "spot_check", "self_check", "review", "import")
#: Chinese names people type in directory sheets.
ROLE_ALIASES = {
    "管理员": "admin",
    "领导": "leader",
    "督查": "inspector",
    "督查员": "inspector",
    "督查组成员": "inspector",
    "书记": "secretary",
    "支部书记": "secretary",
    "党员": "member",
    "成员": "member",
}
STATUSES = ("open", "in_progress", "submitted", "closed", "cancelled")
#: Statuses in which an item is finished: no light, never overdue.
FINISHED = frozenset({"closed", "cancelled"})


def parse_roles(text: str) -> tuple[str, ...]:
    """Roles from a ";"-separated cell, in canonical order; unknown ones raise ValueError.

    Every member is at least a member, so that role is always present.
    """
    parts = (part.strip() for part in text.replace("；", ";").split(";"))
    wanted = {ROLE_ALIASES.get(part, part.lower()) for part in parts if part}
    unknown = sorted(wanted - set(ROLES))
    if unknown:
        raise ValueError(f"unknown role {', '.join(unknown)} (known: {', '.join(ROLES)})")
    wanted.add("member")
    return tuple(role for role in ROLES if role in wanted)


def join_roles(roles: tuple[str, ...] | frozenset[str]) -> str:
    return ";".join(role for role in ROLES if role in roles)


def split_roles(stored: str) -> frozenset[str]:
    return frozenset(part for part in stored.split(";") if part)
