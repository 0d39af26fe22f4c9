"""Scope and permissions (SPEC §1, §3 "Disclosure"), against tables written by hand."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.permissions import (
    ACTIONS,
    RULES,
    Actor,
    ItemView,
    PermissionRefused,
    allowed_actions,
    can_create,
    can_view,
    can_view_lists,
    check,
    in_scope,
    in_subtree,
    scope_paths,
)
from models.roles import ITEM_KINDS, STATUSES
from models.states import Action, Refused, actions_allowed_in

# The district: committee 1 → general branch 5 → branch 23. Branch 50 sits
# beside general branch 5 so that "/1/5/" is a string prefix of "/1/50/" without
# being its ancestor. Committee 2 is somewhere else entirely.
COMMITTEE = "/1/"
GENERAL = "/1/5/"
BRANCH = "/1/5/23/"
NEIGHBOUR = "/1/50/"
ELSEWHERE = "/2/"
ELSEWHERE_BRANCH = "/2/7/"

ADMIN = Actor(1, frozenset({"admin", "member"}), ELSEWHERE)
LEADER = Actor(2, frozenset({"leader", "member"}), GENERAL)
# The inspector's own org is elsewhere, so disclosure never lends them a view.
INSPECTOR = Actor(3, frozenset({"inspector", "member"}), ELSEWHERE, (GENERAL,))
SECRETARY = Actor(4, frozenset({"secretary", "member"}), GENERAL)
RESPONSIBLE = Actor(5, frozenset({"member"}), BRANCH)
BYSTANDER = Actor(6, frozenset({"member"}), BRANCH)
SUBMITTER_ID = 99

ACTORS = {
    "admin": ADMIN,
    "leader": LEADER,
    "inspector": INSPECTOR,
    "secretary": SECRETARY,
    "responsible": RESPONSIBLE,
    "bystander": BYSTANDER,
}

INSIDE = ItemView(
    number=1,
    kind="problem",
    org_path=BRANCH,
    status="submitted",
    responsible_id=RESPONSIBLE.member_id,
    creator_id=INSPECTOR.member_id,
    submitted_by_id=SUBMITTER_ID,
)
# In the neighbour branch: out of everyone's scope but the admin's.
OUTSIDE = ItemView(
    number=2,
    kind="problem",
    org_path=NEIGHBOUR,
    status="submitted",
    responsible_id=55,
    creator_id=SUBMITTER_ID,
    submitted_by_id=SUBMITTER_ID,
)

COLUMNS = (
    "view",
    "acknowledge",
    "plan",
    "note",
    "attach",
    "submit",
    "verify",
    "reject",
    "cancel",
    "reopen",
    "extend_request",
    "extend_decide",
    "split",
    "delegate",
)
ok, scope, role = "ok", "out_of_scope", "role_required"
Y, S, R = ok, scope, role
# fmt: off
# Who may do what to a problem in branch 23 (SPEC §1, §3). Y allowed,
# R role_required, S out_of_scope.
EXPECTED_INSIDE = {
    #              view ack plan note atch subm verf rejc canc reop extR extD splt delg
    "admin":       (Y,  Y,  Y,   Y,   Y,   Y,   Y,   Y,   Y,   Y,   Y,   Y,   Y,   Y),
    "leader":      (Y,  R,  R,   R,   Y,   R,   R,   R,   Y,   Y,   R,   Y,   Y,   R),
    "inspector":   (Y,  R,  R,   Y,   Y,   R,   Y,   Y,   R,   R,   R,   Y,   Y,   R),
    "secretary":   (Y,  Y,  Y,   Y,   Y,   Y,   R,   R,   R,   R,   Y,   R,   R,   Y),
    "responsible": (Y,  Y,  Y,   Y,   Y,   Y,   R,   R,   R,   R,   Y,   R,   R,   R),
    "bystander":   (S,  S,  S,   S,   S,   S,   S,   S,   S,   S,   S,   S,   S,   S),
}
# A problem in branch 50 (beside general branch 5): only the admin reaches it.
EXPECTED_OUTSIDE = {
    #              view ack plan note atch subm verf rejc canc reop extR extD splt delg
    "admin":       (Y,  Y,  Y,   Y,   Y,   Y,   Y,   Y,   Y,   Y,   Y,   Y,   Y,   Y),
    "leader":      (S,  S,  S,   S,   S,   S,   S,   S,   S,   S,   S,   S,   S,   S),
    "inspector":   (S,  S,  S,   S,   S,   S,   S,   S,   S,   S,   S,   S,   S,   S),
    "secretary":   (S,  S,  S,   S,   S,   S,   S,   S,   S,   S,   S,   S,   S,   S),
    "responsible": (S,  S,  S,   S,   S,   S,   S,   S,   S,   S,   S,   S,   S,   S),
    "bystander":   (S,  S,  S,   S,   S,   S,   S,   S,   S,   S,   S,   S,   S,   S),
}
# fmt: on

MATRIX = [
    (who, action, where, table[who][index])
    for where, table in (("inside", EXPECTED_INSIDE), ("outside", EXPECTED_OUTSIDE))
    for who in ACTORS
    for index, action in enumerate(COLUMNS)
]


def _outcome(actor: Actor, action: str, item: ItemView, **kwargs: int | None) -> str:
    try:
        check(actor, action, item, **kwargs)
    except PermissionRefused as refused:
        return refused.code
    return ok


def _item(**changes: Any) -> ItemView:
    return dataclasses.replace(INSIDE, **changes)


def test_the_matrix_covers_every_action_check_knows() -> None:
    assert set(COLUMNS) == set(ACTIONS)
    assert set(RULES) | {"view"} == set(ACTIONS)


@pytest.mark.parametrize(("who", "action", "where", "expected"), MATRIX)
def test_every_role_action_and_scope_is_decided_as_the_table_says(
    who: str, action: str, where: str, expected: str
) -> None:
    item = INSIDE if where == "inside" else OUTSIDE
    assert _outcome(ACTORS[who], action, item) == expected


@pytest.mark.parametrize("who", ACTORS)
def test_can_view_agrees_with_the_view_column(who: str) -> None:
    assert can_view(ACTORS[who], INSIDE) is (EXPECTED_INSIDE[who][0] == ok)
    assert can_view(ACTORS[who], OUTSIDE) is (EXPECTED_OUTSIDE[who][0] == ok)


def test_an_unknown_action_is_refused_with_its_own_code() -> None:
    with pytest.raises(PermissionRefused) as refused:
        check(ADMIN, "approve", INSIDE)
    assert refused.value.code == "unknown_action"


def test_a_refusal_names_the_action_the_item_and_the_roles_that_could() -> None:
    with pytest.raises(PermissionRefused) as refused:
        check(SECRETARY, "verify", INSIDE)
    error = refused.value
    assert isinstance(error, Refused)
    assert error.params == {"action": "verify", "number": 1, "roles": ("inspector",)}
    assert str(error) == "Your role does not allow you to verify."


def test_a_role_required_refusal_mentions_the_responsible_person_when_they_could() -> None:
    with pytest.raises(PermissionRefused) as refused:
        check(LEADER, "submit", INSIDE)
    assert refused.value.params["roles"] == ("secretary", "responsible")


# --- separation of duties ----------------------------------------------------


@pytest.mark.parametrize("action", ["verify", "reject"])
def test_submitter_cannot_verify_or_reject_their_own_submission_as_inspector(action: str) -> None:
    item = _item(submitted_by_id=INSPECTOR.member_id)
    with pytest.raises(PermissionRefused) as refused:
        check(INSPECTOR, action, item)
    assert refused.value.code == "own_submission"
    assert refused.value.params == {"action": action, "number": 1}


@pytest.mark.parametrize("action", ["verify", "reject"])
def test_submitter_cannot_verify_or_reject_their_own_submission_even_as_admin(action: str) -> None:
    item = _item(submitted_by_id=ADMIN.member_id)
    assert _outcome(ADMIN, action, item) == "own_submission"


def test_a_secretary_who_is_also_an_inspector_cannot_verify_what_they_submitted() -> None:
    both = Actor(7, frozenset({"secretary", "inspector"}), BRANCH, (GENERAL,))
    item = _item(submitted_by_id=7)
    assert _outcome(both, "submit", _item(status="in_progress")) == ok
    assert _outcome(both, "verify", item) == "own_submission"
    assert _outcome(both, "reject", item) == "own_submission"
    assert _outcome(INSPECTOR, "verify", item) == ok


def test_the_submitter_is_offered_no_verify_or_reject_button() -> None:
    item = _item(submitted_by_id=INSPECTOR.member_id)
    assert allowed_actions(INSPECTOR, item) == {"attach"}
    assert {"verify", "reject"} <= allowed_actions(ADMIN, item)


def test_the_submitter_may_still_do_everything_else_their_roles_allow() -> None:
    item = _item(submitted_by_id=ADMIN.member_id)
    assert _outcome(ADMIN, "cancel", item) == ok
    assert _outcome(ADMIN, "attach", item) == ok


@pytest.mark.parametrize("decider", [LEADER, INSPECTOR, ADMIN])
def test_nobody_decides_an_extension_they_asked_for(decider: Actor) -> None:
    mine = _outcome(decider, "extend_decide", INSIDE, requested_by_id=decider.member_id)
    theirs = _outcome(decider, "extend_decide", INSIDE, requested_by_id=RESPONSIBLE.member_id)
    assert (mine, theirs) == ("own_request", ok)


def test_the_requester_of_an_extension_is_offered_no_decision_on_it() -> None:
    item = _item(status="in_progress")
    assert "extend_decide" not in allowed_actions(LEADER, item, requested_by_id=LEADER.member_id)
    assert "extend_decide" in allowed_actions(LEADER, item, requested_by_id=RESPONSIBLE.member_id)


# --- several roles -------------------------------------------------------------


def test_several_roles_add_up_each_in_its_own_scope() -> None:
    # Secretary of branch 23, inspector for committee 2.
    both = Actor(8, frozenset({"secretary", "inspector", "member"}), BRANCH, (ELSEWHERE,))
    here = _item(status="open")
    there = _item(number=3, org_path=ELSEWHERE_BRANCH, responsible_id=70)
    assert _outcome(both, "acknowledge", here) == ok
    assert _outcome(both, "verify", there) == ok
    # Holding the role is not enough: it must cover the item.
    assert _outcome(both, "verify", here) == "out_of_scope"
    assert _outcome(both, "acknowledge", there) == "out_of_scope"
    assert _outcome(both, "cancel", here) == "role_required"


def test_a_leader_who_is_also_an_inspector_gets_both_sets_of_buttons() -> None:
    both = Actor(9, frozenset({"leader", "inspector"}), GENERAL, (GENERAL,))
    assert allowed_actions(both, INSIDE) == {"attach", "verify", "reject", "cancel"}


def test_several_roles_widen_the_ledger_scope_to_the_union() -> None:
    both = Actor(10, frozenset({"leader", "inspector"}), GENERAL, (ELSEWHERE,))
    assert scope_paths(both) == (GENERAL, ELSEWHERE)
    assert in_scope(both, BRANCH) and in_scope(both, ELSEWHERE_BRANCH)
    assert not in_scope(both, NEIGHBOUR)


# --- prefixes and paths ----------------------------------------------------------


@pytest.mark.parametrize(
    ("org_path", "root_path", "inside"),
    [
        ("/1/5/23/", "/1/5/", True),
        ("/1/5/", "/1/5/", True),
        ("/1/50/", "/1/5/", False),
        ("/1/5/", "/1/5/23/", False),
        ("/11/", "/1/", False),
        ("/1/", "/11/", False),
        ("/21/5/", "/1/5/", False),
        ("/1/5/23/9/", "/1/", True),
    ],
)
def test_a_subtree_is_a_prefix_of_whole_path_segments(
    org_path: str, root_path: str, inside: bool
) -> None:
    assert in_subtree(org_path, root_path) is inside


def test_a_leader_of_5_does_not_see_branch_50() -> None:
    assert can_view(LEADER, OUTSIDE) is False
    assert in_scope(LEADER, NEIGHBOUR) is False


def test_an_inspection_group_over_5_does_not_cover_branch_50() -> None:
    assert _outcome(INSPECTOR, "verify", OUTSIDE) == "out_of_scope"
    assert in_scope(INSPECTOR, NEIGHBOUR) is False


@pytest.mark.parametrize("path", ["/1/5", "1/5/", "/", "", "/1//5/", "/a/b/", " /1/5/"])
def test_an_actor_with_a_malformed_path_cannot_be_built(path: str) -> None:
    with pytest.raises(ValueError):
        Actor(1, frozenset({"leader"}), path)
    with pytest.raises(ValueError):
        Actor(1, frozenset({"inspector"}), GENERAL, (path,))


@pytest.mark.parametrize("path", ["/1/5", "/", "1/5/23/"])
def test_an_item_with_a_malformed_path_cannot_be_built(path: str) -> None:
    with pytest.raises(ValueError):
        _item(org_path=path)


@pytest.mark.parametrize("path", ["/1/5", "/"])
def test_in_scope_refuses_a_malformed_path_rather_than_guess(path: str) -> None:
    with pytest.raises(ValueError):
        in_scope(LEADER, path)


def test_an_actor_with_an_unknown_role_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="chairman"):
        Actor(1, frozenset({"chairman"}), GENERAL)


def test_an_actor_stores_roles_and_groups_in_immutable_form() -> None:
    actor = Actor(1, {"leader"}, GENERAL, [ELSEWHERE])  # type: ignore[arg-type]
    assert actor.roles == frozenset({"leader"}) and isinstance(actor.roles, frozenset)
    assert actor.group_paths == (ELSEWHERE,)
    hash(actor)


@pytest.mark.parametrize(("kind", "status"), [("finding", "open"), ("problem", "done")])
def test_an_item_with_an_unknown_kind_or_status_cannot_be_built(kind: str, status: str) -> None:
    with pytest.raises(ValueError):
        _item(kind=kind, status=status)


# --- ledger scope ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("actor", "expected"),
    [
        (ADMIN, None),
        (LEADER, (GENERAL,)),
        (INSPECTOR, (GENERAL,)),
        (SECRETARY, (GENERAL,)),
        (RESPONSIBLE, ()),
        (
            Actor(11, frozenset({"inspector"}), BRANCH, (BRANCH, NEIGHBOUR, GENERAL)),
            (GENERAL, NEIGHBOUR),
        ),
        (
            Actor(12, frozenset({"inspector"}), BRANCH, (ELSEWHERE, COMMITTEE, COMMITTEE)),
            (COMMITTEE, ELSEWHERE),
        ),
        (Actor(13, frozenset({"leader", "inspector"}), GENERAL, (COMMITTEE,)), (COMMITTEE,)),
        (Actor(14, frozenset({"secretary", "leader"}), BRANCH), (BRANCH,)),
        (Actor(15, frozenset({"inspector"}), BRANCH), ()),
    ],
)
def test_scope_paths_are_the_union_without_overlaps(
    actor: Actor, expected: tuple[str, ...] | None
) -> None:
    assert scope_paths(actor) == expected


def test_an_admin_is_in_scope_everywhere_and_a_plain_member_nowhere() -> None:
    assert all(in_scope(ADMIN, path) for path in (COMMITTEE, NEIGHBOUR, ELSEWHERE_BRANCH))
    assert not any(in_scope(RESPONSIBLE, path) for path in (COMMITTEE, GENERAL, BRANCH))


def test_a_general_branch_secretary_sees_their_branches() -> None:
    assert in_scope(SECRETARY, BRANCH)
    assert can_view(SECRETARY, INSIDE)
    assert not in_scope(SECRETARY, COMMITTEE)


def test_a_branch_secretary_does_not_see_the_general_branch_above() -> None:
    branch_secretary = Actor(16, frozenset({"secretary"}), BRANCH)
    assert not can_view(branch_secretary, _item(org_path=GENERAL, responsible_id=70))
    assert can_view(branch_secretary, INSIDE)


# --- disclosure ------------------------------------------------------------------

LISTS = ("commitment", "task", "responsibility")


@pytest.mark.parametrize("kind", LISTS)
def test_every_member_sees_the_three_lists_of_their_own_org(kind: str) -> None:
    assert can_view(BYSTANDER, _item(kind=kind, responsible_id=70))


def test_problems_stay_within_scope_even_in_the_members_own_org() -> None:
    assert not can_view(BYSTANDER, _item(kind="problem", responsible_id=70))


@pytest.mark.parametrize("kind", LISTS)
def test_disclosure_is_the_own_org_only_not_the_one_above_or_below(kind: str) -> None:
    general_member = Actor(17, frozenset({"member"}), GENERAL)
    assert not can_view(general_member, _item(kind=kind, org_path=BRANCH, responsible_id=70))
    assert not can_view(BYSTANDER, _item(kind=kind, org_path=GENERAL, responsible_id=70))
    assert not can_view(BYSTANDER, _item(kind=kind, org_path=NEIGHBOUR, responsible_id=70))


def test_a_disclosed_list_is_for_reading_not_for_acting() -> None:
    commitment = _item(kind="commitment", status="open", responsible_id=70)
    assert _outcome(BYSTANDER, "view", commitment) == ok
    assert _outcome(BYSTANDER, "acknowledge", commitment) == "role_required"
    assert _outcome(BYSTANDER, "attach", commitment) == "role_required"
    assert allowed_actions(BYSTANDER, commitment) == frozenset()


def test_an_inspector_who_reads_a_disclosed_list_cannot_verify_it_outside_their_groups() -> None:
    # Inspector whose own branch is 23 but whose group covers committee 2 only.
    inspector = Actor(18, frozenset({"inspector", "member"}), BRANCH, (ELSEWHERE,))
    commitment = _item(kind="commitment", responsible_id=70)
    assert _outcome(inspector, "view", commitment) == ok
    assert _outcome(inspector, "verify", commitment) == "out_of_scope"


def test_the_responsible_member_sees_their_item_wherever_it_is() -> None:
    far = _item(org_path=ELSEWHERE_BRANCH, status="open")
    assert can_view(RESPONSIBLE, far)
    assert _outcome(RESPONSIBLE, "submit", far) == ok
    assert not can_view(BYSTANDER, far)


@pytest.mark.parametrize(
    ("actor", "org_path", "expected"),
    [
        (BYSTANDER, BRANCH, True),
        (BYSTANDER, GENERAL, False),
        (BYSTANDER, NEIGHBOUR, False),
        (LEADER, BRANCH, True),
        (LEADER, NEIGHBOUR, False),
        (INSPECTOR, BRANCH, True),
        (INSPECTOR, ELSEWHERE, True),  # their own org: disclosure applies to inspectors too
        (ADMIN, NEIGHBOUR, True),
    ],
)
def test_lists_can_be_read_for_the_own_org_or_one_in_scope(
    actor: Actor, org_path: str, expected: bool
) -> None:
    assert can_view_lists(actor, org_path) is expected


# --- creating ----------------------------------------------------------------------

# fmt: off
# (role, kind) → (in branch 23, in branch 50)
EXPECTED_CREATE = {
    ("admin", "problem"): (ok, ok),
    ("admin", "commitment"): (ok, ok),
    ("admin", "task"): (ok, ok),
    ("admin", "responsibility"): (ok, ok),
    ("leader", "problem"): (ok, scope),
    ("leader", "commitment"): (ok, scope),
    ("leader", "task"): (ok, scope),
    ("leader", "responsibility"): (ok, scope),
    ("inspector", "problem"): (ok, scope),
    ("inspector", "commitment"): (ok, scope),
    ("inspector", "task"): (ok, scope),
    ("inspector", "responsibility"): (ok, scope),
    ("secretary", "problem"): (role, role),
    ("secretary", "commitment"): (ok, scope),
    ("secretary", "task"): (ok, scope),
    ("secretary", "responsibility"): (ok, scope),
    ("responsible", "problem"): (role, role),
    ("responsible", "commitment"): (role, role),
    ("responsible", "task"): (role, role),
    ("responsible", "responsibility"): (role, role),
    ("bystander", "problem"): (role, role),
    ("bystander", "commitment"): (role, role),
    ("bystander", "task"): (role, role),
    ("bystander", "responsibility"): (role, role),
}
# fmt: on


def test_the_create_table_covers_every_role_and_kind() -> None:
    assert {kind for _, kind in EXPECTED_CREATE} == set(ITEM_KINDS)
    assert {who for who, _ in EXPECTED_CREATE} == set(ACTORS)


def _create_outcome(actor: Actor, kind: str, org_path: str) -> str:
    try:
        can_create(actor, kind, org_path)
    except PermissionRefused as refused:
        return refused.code
    return ok


@pytest.mark.parametrize(("who", "kind"), sorted(EXPECTED_CREATE))
def test_creating_is_decided_by_role_kind_and_scope_as_the_table_says(who: str, kind: str) -> None:
    inside, outside = EXPECTED_CREATE[(who, kind)]
    assert _create_outcome(ACTORS[who], kind, BRANCH) == inside
    assert _create_outcome(ACTORS[who], kind, NEIGHBOUR) == outside


def test_creating_an_unknown_kind_is_refused_with_its_own_code() -> None:
    with pytest.raises(PermissionRefused) as refused:
        can_create(ADMIN, "finding", BRANCH)
    assert refused.value.code == "unknown_kind"
    assert refused.value.params == {"action": "create", "kind": "finding", "org_path": BRANCH}


# --- buttons -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actor", "status", "requested_by_id", "expected"),
    [
        (
            RESPONSIBLE,
            "open",
            None,
            {"acknowledge", "plan", "note", "attach", "submit", "extend_request"},
        ),
        (RESPONSIBLE, "in_progress", None, {"plan", "note", "attach", "submit", "extend_request"}),
        (RESPONSIBLE, "submitted", None, {"attach"}),
        (RESPONSIBLE, "closed", None, set()),
        (
            SECRETARY,
            "open",
            None,
            {"acknowledge", "plan", "note", "attach", "submit", "extend_request", "delegate"},
        ),
        (
            SECRETARY,
            "in_progress",
            5,
            {"plan", "note", "attach", "submit", "extend_request", "delegate"},
        ),
        (INSPECTOR, "open", None, {"note", "attach", "split"}),
        (INSPECTOR, "in_progress", 5, {"note", "attach", "split", "extend_decide"}),
        (INSPECTOR, "submitted", None, {"attach", "verify", "reject"}),
        (INSPECTOR, "submitted", 5, {"attach", "verify", "reject", "extend_decide"}),
        (INSPECTOR, "closed", None, set()),
        (LEADER, "open", None, {"attach", "cancel", "split"}),
        (LEADER, "submitted", 5, {"attach", "cancel", "extend_decide"}),
        (LEADER, "closed", None, {"reopen"}),
        (LEADER, "cancelled", None, set()),
        (ADMIN, "closed", None, {"reopen"}),
        (ADMIN, "cancelled", None, set()),
        (ADMIN, "submitted", None, {"attach", "verify", "reject", "cancel"}),
        (BYSTANDER, "open", None, set()),
    ],
)
def test_the_buttons_are_what_both_role_and_status_allow(
    actor: Actor, status: str, requested_by_id: int | None, expected: set[str]
) -> None:
    item = _item(status=status)
    assert allowed_actions(actor, item, requested_by_id=requested_by_id) == expected


@pytest.mark.parametrize("who", ACTORS)
def test_nobody_but_the_admin_gets_a_button_outside_their_scope(who: str) -> None:
    buttons = allowed_actions(ACTORS[who], OUTSIDE, requested_by_id=SUBMITTER_ID)
    if who == "admin":
        assert buttons == {"attach", "verify", "reject", "cancel", "extend_decide"}
    else:
        assert buttons == frozenset()


# --- properties ------------------------------------------------------------------------

PATHS = st.sampled_from([COMMITTEE, GENERAL, BRANCH, NEIGHBOUR, ELSEWHERE, ELSEWHERE_BRANCH])
IDS = st.integers(min_value=1, max_value=4)
ACTOR_STRATEGY = st.builds(
    Actor,
    member_id=IDS,
    roles=st.frozensets(st.sampled_from(["admin", "leader", "inspector", "secretary", "member"])),
    org_path=PATHS,
    group_paths=st.lists(PATHS, max_size=3).map(tuple),
)
ITEM_STRATEGY = st.builds(
    ItemView,
    number=st.integers(min_value=1, max_value=1000),
    kind=st.sampled_from(ITEM_KINDS),
    org_path=PATHS,
    status=st.sampled_from(STATUSES),
    responsible_id=st.one_of(st.none(), IDS),
    creator_id=st.one_of(st.none(), IDS),
    submitted_by_id=st.one_of(st.none(), IDS),
)


@given(ACTOR_STRATEGY, ITEM_STRATEGY, st.one_of(st.none(), IDS))
def test_every_button_passes_both_the_permission_and_the_state_machine(
    actor: Actor, item: ItemView, requested_by_id: int | None
) -> None:
    buttons = allowed_actions(actor, item, requested_by_id=requested_by_id)
    assert buttons <= actions_allowed_in(item.status)
    for action in buttons:
        check(actor, action, item, requested_by_id=requested_by_id)
    for action in set(Action) - buttons:
        if action in actions_allowed_in(item.status) and (
            action != "extend_decide" or requested_by_id is not None
        ):
            with pytest.raises(PermissionRefused):
                check(actor, action, item, requested_by_id=requested_by_id)


@given(ACTOR_STRATEGY, ITEM_STRATEGY)
def test_the_submitter_never_gets_to_verify_or_reject(actor: Actor, item: ItemView) -> None:
    mine = dataclasses.replace(item, submitted_by_id=actor.member_id)
    assert not {"verify", "reject"} & allowed_actions(actor, mine)
    for action in ("verify", "reject"):
        with pytest.raises(PermissionRefused):
            check(actor, action, mine)


@given(ACTOR_STRATEGY, ITEM_STRATEGY, st.sampled_from(ACTIONS))
def test_whoever_cannot_see_an_item_can_do_nothing_with_it(
    actor: Actor, item: ItemView, action: str
) -> None:
    if not can_view(actor, item):
        assert allowed_actions(actor, item, requested_by_id=1) == frozenset()
        with pytest.raises(PermissionRefused) as refused:
            check(actor, action, item)
        assert refused.value.code == "out_of_scope"


@given(ACTOR_STRATEGY, ITEM_STRATEGY)
def test_an_item_in_the_ledger_scope_is_always_visible(actor: Actor, item: ItemView) -> None:
    if in_scope(actor, item.org_path):
        assert can_view(actor, item)
