"""Who may see and do what (SPEC §1, §3 "Disclosure", §4), over plain values.

Scope is always an org subtree. Org paths are materialised ids from the root,
"/1/5/23/", and always end in "/": a subtree is then a plain prefix match, and
"/1/5/" cannot match "/1/50/". Paths that do not have that shape are refused
when an `Actor` or `ItemView` is built, so a sloppy caller fails loudly
instead of widening someone's scope.

Each role brings its own scope:

- admin: everything;
- leader and secretary: the subtree of their own org;
- inspector: the subtrees their inspection groups cover;
- anyone: the items they are responsible for, and the disclosed three lists
  (commitments, tasks, responsibilities; never problems) of their own org.

A member with several roles gets the union, but each role acts only inside
its own scope: an inspector who is also a branch secretary verifies in the
groups' subtrees and submits in the branch, not the other way round.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from models.roles import ITEM_KINDS, ROLES, STATUSES
from models.states import Action, Refused, actions_allowed_in

ADMIN = "admin"
LEADER = "leader"
INSPECTOR = "inspector"
SECRETARY = "secretary"

#: Looking at an item: a permission, but no button and no change of status.
VIEW = "view"
#: Every action `check` knows.
ACTIONS: tuple[str, ...] = (VIEW, *(action.value for action in Action))
#: The kinds disclosed to every member of their org (SPEC §3 "Disclosure").
THREE_LISTS = frozenset({"commitment", "task", "responsibility"})

# Codes of PermissionRefused, for the catalogue.
OUT_OF_SCOPE = "out_of_scope"
ROLE_REQUIRED = "role_required"
OWN_SUBMISSION = "own_submission"
OWN_REQUEST = "own_request"
UNKNOWN_ACTION = "unknown_action"
UNKNOWN_KIND = "unknown_kind"

_FALLBACK = {
    OUT_OF_SCOPE: "That is outside your scope.",
    ROLE_REQUIRED: "Your role does not allow you to {action}.",
    OWN_SUBMISSION: "You submitted #{number}; someone else must {action} it.",
    OWN_REQUEST: "You asked for this extension of #{number}; someone else must decide it.",
    UNKNOWN_ACTION: "Unknown action {action!r}.",
    UNKNOWN_KIND: "Unknown kind {kind!r}.",
}

_PATH = re.compile(r"/(?:\d+/)+")


class PermissionRefused(Refused):
    """The actor may not see or do this.

    `params` hold `action`, and `number` for an item (`kind` and `org_path`
    for a creation); `role_required` adds `roles`, the roles that could.
    """

    FALLBACK = MappingProxyType(_FALLBACK)


@dataclass(frozen=True)
class Rule:
    """Who may take one action on an item in their scope."""

    #: Roles that may, each inside its own scope (admin is always allowed).
    roles: frozenset[str]
    #: Whether the item's responsible member may, whatever their roles.
    responsible: bool = False


_UNIT = frozenset({SECRETARY})
#: Per action, who may take it (SPEC §1 and §3). Admin may do everything
#: (SPEC §1) but, like everyone, never verifies what they submitted.
RULES: Mapping[str, Rule] = MappingProxyType(
    {
        Action.ACKNOWLEDGE: Rule(_UNIT, responsible=True),
        Action.PLAN: Rule(_UNIT, responsible=True),
        # Inspectors record what they saw on a visit as notes and evidence too.
        Action.NOTE: Rule(frozenset({SECRETARY, INSPECTOR}), responsible=True),
        # SPEC §3: evidence comes "from anyone allowed to act on the item", which
        # includes a leader doing a look-back check (回头看).
        Action.ATTACH: Rule(frozenset({SECRETARY, INSPECTOR, LEADER}), responsible=True),
        Action.SUBMIT: Rule(_UNIT, responsible=True),
        Action.VERIFY: Rule(frozenset({INSPECTOR})),
        Action.REJECT: Rule(frozenset({INSPECTOR})),
        Action.CANCEL: Rule(frozenset({LEADER})),
        Action.REOPEN: Rule(frozenset({LEADER})),
        Action.EXTEND_REQUEST: Rule(_UNIT, responsible=True),
        Action.EXTEND_DECIDE: Rule(frozenset({INSPECTOR, LEADER})),
        Action.SPLIT: Rule(frozenset({INSPECTOR, LEADER})),
        Action.DELEGATE: Rule(_UNIT),
    }
)

#: Per kind, the roles that may create an item of it (admin always may).
CREATORS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "problem": frozenset({INSPECTOR, LEADER}),
        **{kind: frozenset({INSPECTOR, LEADER, SECRETARY}) for kind in sorted(THREE_LISTS)},
    }
)


def _check_path(path: str, what: str) -> None:
    # Without the trailing "/", "/1/5" would be a prefix of "/1/50/"; "/" alone
    # would be everything. Both are bugs upstream, so refuse them here.
    if not isinstance(path, str) or not _PATH.fullmatch(path):
        raise ValueError(f"{what} must look like '/1/5/23/', got {path!r}")


@dataclass(frozen=True)
class Actor:
    """A member as the rules see them: their roles, their org and their groups' scope."""

    member_id: int
    roles: frozenset[str]
    #: The member's own org.
    org_path: str
    #: The org subtrees covered by the inspection groups the member belongs to.
    group_paths: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        # Accept any iterable of roles and paths, but store the immutable forms.
        object.__setattr__(self, "roles", frozenset(self.roles))
        object.__setattr__(self, "group_paths", tuple(self.group_paths))
        unknown = sorted(self.roles - set(ROLES))
        if unknown:
            raise ValueError(f"unknown roles {unknown} (known: {', '.join(ROLES)})")
        _check_path(self.org_path, "org_path")
        for path in self.group_paths:
            _check_path(path, "group_paths entry")


@dataclass(frozen=True)
class ItemView:
    """What the rules need to know about an item."""

    number: int
    kind: str
    org_path: str
    status: str
    responsible_id: int | None
    creator_id: int | None = None
    submitted_by_id: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ITEM_KINDS:
            raise ValueError(f"unknown kind {self.kind!r} (known: {', '.join(ITEM_KINDS)})")
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r} (known: {', '.join(STATUSES)})")
        _check_path(self.org_path, "org_path")


def in_subtree(org_path: str, root_path: str) -> bool:
    """True when `org_path` is `root_path` or below it. Both must end in "/"."""
    return org_path.startswith(root_path)


def _role_paths(actor: Actor, role: str) -> tuple[str, ...] | None:
    # None means "everything"; () means the actor does not hold the role.
    if role not in actor.roles:
        return ()
    if role == ADMIN:
        return None
    if role in (LEADER, SECRETARY):
        return (actor.org_path,)
    if role == INSPECTOR:
        return actor.group_paths
    return ()


def _role_covers(actor: Actor, role: str, org_path: str) -> bool:
    paths = _role_paths(actor, role)
    return paths is None or any(in_subtree(org_path, path) for path in paths)


def _collapse(paths: Iterable[str]) -> tuple[str, ...]:
    # Sorted, a subtree's root comes before everything under it.
    kept: list[str] = []
    for path in sorted(set(paths)):
        if not any(in_subtree(path, root) for root in kept):
            kept.append(path)
    return tuple(kept)


def scope_paths(actor: Actor) -> tuple[str, ...] | None:
    """The org-subtree prefixes the actor may query as a whole (ledger, export, overdue).

    None means everything (admin). Otherwise the union of the leader's and
    secretary's own subtree and the inspector's group subtrees, sorted, without
    duplicates or paths already under another one; () for a plain member, who
    sees single items (their own, the disclosed lists) but no ledger.
    """
    if ADMIN in actor.roles:
        return None
    paths: list[str] = []
    for role in (LEADER, INSPECTOR, SECRETARY):
        paths.extend(_role_paths(actor, role) or ())
    return _collapse(paths)


def in_scope(actor: Actor, org_path: str) -> bool:
    """True when `org_path` lies in one of the actor's `scope_paths` (always for admin)."""
    _check_path(org_path, "org_path")
    paths = scope_paths(actor)
    return paths is None or any(in_subtree(org_path, path) for path in paths)


def can_view_lists(actor: Actor, org_path: str) -> bool:
    """True when the actor may read the three lists of the org at `org_path` (`/lists`).

    Every member reads their own org's lists (disclosure); other orgs need scope.
    """
    return org_path == actor.org_path or in_scope(actor, org_path)


def can_view(actor: Actor, item: ItemView) -> bool:
    """True when the actor may see the item at all: in a reply, a card or an export row."""
    if any(
        _role_covers(actor, role, item.org_path) for role in (ADMIN, LEADER, INSPECTOR, SECRETARY)
    ):
        return True
    if item.responsible_id is not None and item.responsible_id == actor.member_id:
        return True
    # Disclosure covers the org itself, not its subtree: a general branch's
    # members do not read each branch's lists, nor problems anywhere.
    return item.kind in THREE_LISTS and item.org_path == actor.org_path


def _refuse(code: str, item: ItemView, action: str, **extra: object) -> PermissionRefused:
    return PermissionRefused(code, {"action": action, "number": item.number, **extra})


def check(actor: Actor, action: str, item: ItemView, *, requested_by_id: int | None = None) -> None:
    """Return when the actor may take `action` on `item`; raise PermissionRefused otherwise.

    The item's status is not judged here (see `models.states.next_status`).
    Checks, in order:

    1. `unknown_action` — the action is not one of `ACTIONS`;
    2. `out_of_scope` — the actor may not see the item (`can_view`), or holds
       a role that could take the action but not with the item in its scope;
    3. `role_required` — no role of the actor (nor being responsible) allows it;
    4. `own_submission` — verify or reject by the member who submitted the
       item, admins included (separation of duties);
    5. `own_request` — deciding an extension `requested_by_id` the actor.
    """
    if action not in ACTIONS:
        raise PermissionRefused(UNKNOWN_ACTION, {"action": action, "number": item.number})
    if not can_view(actor, item):
        raise _refuse(OUT_OF_SCOPE, item, action)
    if action == VIEW:
        return
    rule = RULES[action]
    allowed_roles = rule.roles | {ADMIN}
    allowed = any(_role_covers(actor, role, item.org_path) for role in allowed_roles) or (
        rule.responsible and item.responsible_id == actor.member_id
    )
    if not allowed:
        if actor.roles & allowed_roles:
            raise _refuse(OUT_OF_SCOPE, item, action)
        raise _refuse(ROLE_REQUIRED, item, action, roles=_role_names(rule))
    if action in (Action.VERIFY, Action.REJECT) and item.submitted_by_id == actor.member_id:
        raise _refuse(OWN_SUBMISSION, item, action)
    if action == Action.EXTEND_DECIDE and requested_by_id == actor.member_id:
        raise _refuse(OWN_REQUEST, item, action)


def _role_names(rule: Rule) -> tuple[str, ...]:
    # In the directory's order, so the message reads the same every time.
    names = [role for role in ROLES if role in rule.roles]
    if rule.responsible:
        names.append("responsible")
    return tuple(names)


def can_create(actor: Actor, kind: str, org_path: str) -> None:
    """Return when the actor may create an item of `kind` in the org at `org_path`.

    Problems: inspectors and leaders in scope, admin. The three lists: also the
    secretary of the org's subtree. Raises PermissionRefused with `code`
    `unknown_kind`, `role_required` (no role of the actor creates this kind
    anywhere) or `out_of_scope` (a role that could, but not for this org);
    `params` hold `action` ("create"), `kind` and `org_path`.
    """
    _check_path(org_path, "org_path")
    params = {"action": "create", "kind": kind, "org_path": org_path}
    creators = CREATORS.get(kind)
    if creators is None:
        raise PermissionRefused(UNKNOWN_KIND, params)
    allowed_roles = creators | {ADMIN}
    if any(_role_covers(actor, role, org_path) for role in allowed_roles):
        return
    if actor.roles & allowed_roles:
        raise PermissionRefused(OUT_OF_SCOPE, params)
    names = tuple(role for role in ROLES if role in creators)
    raise PermissionRefused(ROLE_REQUIRED, {**params, "roles": names})


def allowed_actions(
    actor: Actor, item: ItemView, *, requested_by_id: int | None = None
) -> frozenset[Action]:
    """The actions to offer as buttons: both `check` and the item's status allow them.

    `requested_by_id` is the requester of a pending extension, or None when
    there is none: deciding an extension is only offered while one is pending.
    Empty when the actor may not see the item. Reasons are not judged here; the
    action that needs one asks for it.
    """
    if not can_view(actor, item):
        return frozenset()
    offered: set[Action] = set()
    for action in actions_allowed_in(item.status):
        if action == Action.EXTEND_DECIDE and requested_by_id is None:
            continue
        try:
            check(actor, action, item, requested_by_id=requested_by_id)
        except PermissionRefused:
            continue
        offered.add(action)
    return frozenset(offered)


__all__ = [
    "ACTIONS",
    "CREATORS",
    "RULES",
    "THREE_LISTS",
    "VIEW",
    "Actor",
    "ItemView",
    "PermissionRefused",
    "Rule",
    "allowed_actions",
    "can_create",
    "can_view",
    "can_view_lists",
    "check",
    "in_scope",
    "in_subtree",
    "scope_paths",
]
