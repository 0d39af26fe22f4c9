"""The item state machine, against a table written by hand from SPEC §3."""

from __future__ import annotations

import itertools
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.limits import REASON_MAX
from models.roles import STATUSES
from models.states import (
    Action,
    Refused,
    Status,
    TransitionRefused,
    actions_allowed_in,
    clean_reason,
    counts_rejection,
    counts_relapse,
    next_status,
    requires_reason,
)

ACTIONS = (
    "acknowledge",
    "plan",
    "note",
    "submit",
    "verify",
    "reject",
    "cancel",
    "reopen",
    "attach",
    "extend_request",
    "extend_decide",
    "split",
    "delegate",
)

# SPEC §3, one row per status: what each action leads to ("→ status") or the
# refusal code. Written out in full, not derived, so a change to the machine
# has to change this table on purpose.
EXPECTED: dict[tuple[str, str], str] = {
    # open
    ("open", "acknowledge"): "→ in_progress",
    ("open", "plan"): "→ in_progress",
    ("open", "note"): "→ in_progress",
    ("open", "submit"): "→ submitted",
    ("open", "verify"): "not_submitted",
    ("open", "reject"): "not_submitted",
    ("open", "cancel"): "→ cancelled",
    ("open", "reopen"): "not_closed",
    ("open", "attach"): "→ open",
    ("open", "extend_request"): "→ open",
    ("open", "extend_decide"): "→ open",
    ("open", "split"): "→ open",
    ("open", "delegate"): "→ open",
    # in_progress
    ("in_progress", "acknowledge"): "already_acknowledged",
    ("in_progress", "plan"): "→ in_progress",
    ("in_progress", "note"): "→ in_progress",
    ("in_progress", "submit"): "→ submitted",
    ("in_progress", "verify"): "not_submitted",
    ("in_progress", "reject"): "not_submitted",
    ("in_progress", "cancel"): "→ cancelled",
    ("in_progress", "reopen"): "not_closed",
    ("in_progress", "attach"): "→ in_progress",
    ("in_progress", "extend_request"): "→ in_progress",
    ("in_progress", "extend_decide"): "→ in_progress",
    ("in_progress", "split"): "→ in_progress",
    ("in_progress", "delegate"): "→ in_progress",
    # submitted
    ("submitted", "acknowledge"): "already_submitted",
    ("submitted", "plan"): "already_submitted",
    ("submitted", "note"): "already_submitted",
    ("submitted", "submit"): "already_submitted",
    ("submitted", "verify"): "→ closed",
    ("submitted", "reject"): "→ in_progress",
    ("submitted", "cancel"): "→ cancelled",
    ("submitted", "reopen"): "not_closed",
    ("submitted", "attach"): "→ submitted",
    ("submitted", "extend_request"): "already_submitted",
    ("submitted", "extend_decide"): "→ submitted",
    ("submitted", "split"): "already_submitted",
    ("submitted", "delegate"): "already_submitted",
    # closed
    ("closed", "acknowledge"): "already_closed",
    ("closed", "plan"): "already_closed",
    ("closed", "note"): "already_closed",
    ("closed", "submit"): "already_closed",
    ("closed", "verify"): "already_closed",
    ("closed", "reject"): "already_closed",
    ("closed", "cancel"): "already_closed",
    ("closed", "reopen"): "→ in_progress",
    ("closed", "attach"): "already_closed",
    ("closed", "extend_request"): "already_closed",
    ("closed", "extend_decide"): "already_closed",
    ("closed", "split"): "already_closed",
    ("closed", "delegate"): "already_closed",
    # cancelled
    ("cancelled", "acknowledge"): "already_cancelled",
    ("cancelled", "plan"): "already_cancelled",
    ("cancelled", "note"): "already_cancelled",
    ("cancelled", "submit"): "already_cancelled",
    ("cancelled", "verify"): "already_cancelled",
    ("cancelled", "reject"): "already_cancelled",
    ("cancelled", "cancel"): "already_cancelled",
    ("cancelled", "reopen"): "already_cancelled",
    ("cancelled", "attach"): "already_cancelled",
    ("cancelled", "extend_request"): "already_cancelled",
    ("cancelled", "extend_decide"): "already_cancelled",
    ("cancelled", "split"): "already_cancelled",
    ("cancelled", "delegate"): "already_cancelled",
}

NEEDS_REASON = {"reject", "cancel", "reopen"}
BLANKS = [None, "", " ", "  \t\n ", "\u3000"]


def _target(expected: str) -> str | None:
    return expected.removeprefix("→ ") if expected.startswith("→ ") else None


def test_the_table_covers_every_status_and_action() -> None:
    assert set(EXPECTED) == set(itertools.product(STATUSES, ACTIONS))


def test_the_statuses_are_the_five_of_the_spec() -> None:
    assert tuple(Status) == STATUSES


def test_the_actions_are_the_ones_the_table_knows() -> None:
    assert {action.value for action in Action} == set(ACTIONS)


@pytest.mark.parametrize(("status", "action"), sorted(EXPECTED))
def test_every_status_and_action_does_what_the_spec_table_says(status: str, action: str) -> None:
    expected = EXPECTED[(status, action)]
    target = _target(expected)
    if target is not None:
        assert next_status(status, action, reason="整改不到位") == target
    else:
        with pytest.raises(TransitionRefused) as refused:
            next_status(status, action, reason="整改不到位")
        assert refused.value.code == expected
        assert refused.value.params["status"] == status
        assert refused.value.params["action"] == action


@pytest.mark.parametrize("status", STATUSES)
def test_actions_allowed_in_a_status_are_exactly_the_table_s(status: str) -> None:
    expected = {action for action in ACTIONS if _target(EXPECTED[(status, action)]) is not None}
    assert actions_allowed_in(status) == expected


def test_a_finished_item_accepts_only_a_reopen_when_closed_and_nothing_when_cancelled() -> None:
    assert actions_allowed_in("closed") == {"reopen"}
    assert actions_allowed_in("cancelled") == frozenset()


def test_closed_is_reached_only_by_verifying_a_submitted_item() -> None:
    into_closed = [key for key, value in EXPECTED.items() if value == "→ closed"]
    assert into_closed == [("submitted", "verify")]


def test_next_status_returns_a_plain_string() -> None:
    result = next_status("open", "submit")
    assert type(result) is str


def test_actions_are_strings_so_the_enum_and_the_word_are_interchangeable() -> None:
    assert next_status(Status.SUBMITTED, Action.VERIFY) == "closed"
    assert Action("verify") is Action.VERIFY
    assert "verify" in {Action.VERIFY}


@pytest.mark.parametrize("action", sorted(NEEDS_REASON))
@pytest.mark.parametrize("reason", BLANKS)
def test_reject_cancel_and_reopen_are_refused_without_a_reason(
    action: str, reason: str | None
) -> None:
    status = {"reject": "submitted", "cancel": "open", "reopen": "closed"}[action]
    with pytest.raises(TransitionRefused) as refused:
        next_status(status, action, reason)
    assert refused.value.code == "reason_required"
    assert refused.value.params == {"status": status, "action": action}


@pytest.mark.parametrize(
    ("status", "action", "target"),
    [
        ("submitted", "reject", "in_progress"),
        ("open", "cancel", "cancelled"),
        ("in_progress", "cancel", "cancelled"),
        ("submitted", "cancel", "cancelled"),
        ("closed", "reopen", "in_progress"),
    ],
)
def test_reject_cancel_and_reopen_go_through_with_a_reason(
    status: str, action: str, target: str
) -> None:
    assert next_status(status, action, "回头看发现问题反弹") == target


@pytest.mark.parametrize(
    ("status", "action"),
    [(status, action) for (status, action), value in EXPECTED.items() if value.startswith("→")],
)
def test_a_reason_of_exactly_the_limit_is_accepted(status: str, action: str) -> None:
    assert next_status(status, action, "理" * REASON_MAX) == _target(EXPECTED[(status, action)])


@pytest.mark.parametrize(
    ("status", "action"),
    [(status, action) for (status, action), value in EXPECTED.items() if value.startswith("→")],
)
def test_a_reason_over_the_limit_is_refused_even_where_it_is_optional(
    status: str, action: str
) -> None:
    with pytest.raises(TransitionRefused) as refused:
        next_status(status, action, "理" * (REASON_MAX + 1))
    assert refused.value.code == "reason_too_long"
    assert refused.value.params["length"] == REASON_MAX + 1
    assert refused.value.params["max"] == REASON_MAX


def test_whitespace_around_a_reason_does_not_count_towards_the_limit() -> None:
    assert next_status("submitted", "reject", "  " + "x" * REASON_MAX + "\n") == "in_progress"


@pytest.mark.parametrize("reason", BLANKS)
def test_actions_without_a_required_reason_go_through_without_one(reason: str | None) -> None:
    assert next_status("submitted", "verify", reason) == "closed"
    assert next_status("open", "acknowledge", reason) == "in_progress"
    assert next_status("in_progress", "attach", reason) == "in_progress"


def test_the_status_is_judged_before_the_reason() -> None:
    with pytest.raises(TransitionRefused) as refused:
        next_status("open", "reject", None)
    assert refused.value.code == "not_submitted"
    with pytest.raises(TransitionRefused) as refused:
        next_status("cancelled", "cancel", "x" * (REASON_MAX + 1))
    assert refused.value.code == "already_cancelled"


def test_cancelling_a_cancelled_item_is_refused() -> None:
    with pytest.raises(TransitionRefused) as refused:
        next_status("cancelled", "cancel", "重复撤销")
    assert refused.value.code == "already_cancelled"


def test_a_cancelled_item_cannot_be_reopened() -> None:
    with pytest.raises(TransitionRefused) as refused:
        next_status("cancelled", "reopen", "误撤销")
    assert refused.value.code == "already_cancelled"


def test_an_unknown_status_is_refused_with_its_own_code() -> None:
    with pytest.raises(TransitionRefused) as refused:
        next_status("archived", "verify")
    assert refused.value.code == "unknown_status"
    assert refused.value.params["status"] == "archived"
    with pytest.raises(TransitionRefused) as refused:
        actions_allowed_in("archived")
    assert refused.value.code == "unknown_status"


def test_an_unknown_action_is_refused_with_its_own_code() -> None:
    with pytest.raises(TransitionRefused) as refused:
        next_status("open", "approve")
    assert refused.value.code == "unknown_action"
    assert refused.value.params["action"] == "approve"


@pytest.mark.parametrize("action", ACTIONS)
def test_only_a_reopen_counts_as_a_relapse(action: str) -> None:
    assert counts_relapse(action) is (action == "reopen")


@pytest.mark.parametrize("action", ACTIONS)
def test_only_a_reject_counts_as_a_rejection(action: str) -> None:
    assert counts_rejection(action) is (action == "reject")


@pytest.mark.parametrize("action", ACTIONS)
def test_only_reject_cancel_and_reopen_require_a_reason(action: str) -> None:
    assert requires_reason(action) is (action in NEEDS_REASON)


def test_clean_reason_strips_and_turns_blank_into_none() -> None:
    assert clean_reason("reject", "  材料不全 \n") == "材料不全"
    assert clean_reason("verify", "   ") is None
    assert clean_reason("verify", None) is None


def test_clean_reason_refuses_what_next_status_refuses() -> None:
    with pytest.raises(TransitionRefused) as refused:
        clean_reason("cancel", " ")
    assert refused.value.code == "reason_required"
    with pytest.raises(TransitionRefused) as refused:
        clean_reason("note", "x" * (REASON_MAX + 1))
    assert refused.value.code == "reason_too_long"


def test_a_refusal_carries_an_english_fallback_and_survives_pickling() -> None:
    with pytest.raises(TransitionRefused) as refused:
        next_status("open", "reject", "x")
    error = refused.value
    assert isinstance(error, Refused)
    assert str(error) == "The item has not been submitted."
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.code, copy.params) == (TransitionRefused, error.code, error.params)


def test_a_refusal_with_a_code_the_fallbacks_lack_still_has_a_message() -> None:
    assert str(TransitionRefused("something_new", {"status": "open"})) == "something_new"


# --- properties --------------------------------------------------------------

REASONS = st.one_of(
    st.none(),
    st.sampled_from(["", "   ", "整改不到位", "回潮", "x" * REASON_MAX, "x" * (REASON_MAX + 1)]),
    st.text(max_size=20),
)
STEPS = st.lists(st.tuples(st.sampled_from(ACTIONS), REASONS), max_size=40)


def _reason_ok(action: str, reason: str | None) -> bool:
    text = (reason or "").strip()
    return len(text) <= REASON_MAX and (bool(text) or action not in NEEDS_REASON)


@given(STEPS)
def test_random_action_sequences_from_open_follow_the_table(
    steps: list[tuple[str, str | None]],
) -> None:
    status = "open"
    for action, reason in steps:
        before = status
        expected = _target(EXPECTED[(before, action)])
        try:
            status = next_status(before, action, reason)
        except TransitionRefused:
            # A refusal is a pure function's exception: the caller keeps `before`.
            assert expected is None or not _reason_ok(action, reason)
            assert status == before
            continue
        assert expected is not None and _reason_ok(action, reason)
        assert status == expected
        assert status in STATUSES
        if status == "closed" and before != "closed":
            assert (before, action) == ("submitted", "verify")


@given(st.sampled_from(STATUSES), st.sampled_from(ACTIONS), REASONS)
def test_a_step_succeeds_exactly_when_table_and_reason_allow_it(
    status: str, action: str, reason: str | None
) -> None:
    allowed = _target(EXPECTED[(status, action)]) is not None and _reason_ok(action, reason)
    try:
        next_status(status, action, reason)
    except TransitionRefused:
        assert not allowed
    else:
        assert allowed


@given(st.text(max_size=REASON_MAX + 20))
def test_a_rejection_goes_through_exactly_when_its_reason_is_present_and_short_enough(
    reason: str,
) -> None:
    text = reason.strip()
    try:
        assert next_status("submitted", "reject", reason) == "in_progress"
    except TransitionRefused as refused:
        assert refused.code == ("reason_too_long" if len(text) > REASON_MAX else "reason_required")
    else:
        assert 0 < len(text) <= REASON_MAX
