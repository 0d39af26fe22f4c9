"""The member's open flow, and what every flow shares.

A flow is the member's one draft row (models.drafts): its name (FLOWS), its
step and its data. Handlers read it in a transaction, take a `Flow` snapshot
out, and lock the row again when they write, so two messages never both
append to an old copy. A flow that holds gathered material is never replaced
silently: `refuse_if_gathering` asks for /done or /cancel first.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from bot.conversations.evidence import Entry
from bot.guard import Who
from bot.services import Context
from models.drafts import draft_data, get_draft
from models.states import Refused
from models.tables import Draft
from models.texts import TEXTS, refusal, t

#: The flows (Draft.flow): the attach window after a creation, the guided /new,
#: an open /submit, and a reason an action button asked for.
ATTACH, NEW, SUBMIT, REASON = "attach", "new", "submit", "reason"
#: Flows that hold what the member gathered: another flow must not silently replace them.
GATHERING = frozenset({NEW, SUBMIT})


class FlowRefused(Refused):
    """A flow cannot start: another one holds gathered material."""


@dataclass(frozen=True)
class Flow:
    """A snapshot of the member's draft, read in one transaction and used after it."""

    name: str
    step: str
    number: int | None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def entries(self) -> list[Entry]:
        return [Entry.from_json(entry) for entry in self.data.get("evidence", [])]


def flow_of(draft: Draft | None) -> Flow | None:
    """The draft as a Flow, None for no draft."""
    return None if draft is None else snapshot(draft)


def snapshot(draft: Draft) -> Flow:
    return Flow(draft.flow, draft.step, draft.item_number, draft_data(draft))


async def current_flow(context: Context, who: Who) -> Flow | None:
    """The member's open flow, read in a transaction of its own."""
    return await context.services.db(lambda session: flow_of(get_draft(session, who.member_id)))


def new_nonce() -> int:
    """Marks one flow's buttons, so a button of an earlier flow does nothing."""
    return secrets.randbelow(999_999_999) + 1


# -- database work (each function runs inside one `services.db` transaction) -----------------


def locked_draft(session: Session, member_id: int) -> Draft | None:
    """The member's open draft, locked until the transaction ends (PostgreSQL; SQLite
    serialises writers already), so two messages never both append to an old copy."""
    session.get(Draft, member_id, with_for_update=True)
    return get_draft(session, member_id)


def refuse_if_gathering(draft: Draft | None) -> None:
    """Refuse to replace a flow that holds gathered material; /done or /cancel it first.

    Raises FlowRefused `busy_submit` (an open /submit) or `busy_new` (a guided /new).
    """
    if draft is None or draft.flow not in GATHERING:
        return
    count = len(draft_data(draft).get("evidence", []))
    if draft.flow == SUBMIT:
        raise FlowRefused("busy_submit", {"number": draft.item_number, "count": count})
    raise FlowRefused("busy_new", {"count": count})


# -- what the user reads ---------------------------------------------------------------------


def explain(lang: str, refused: Refused) -> str:
    """One sentence for a refusal, naming the field or the scope where the catalogue can't."""
    params = refused.params
    if refused.code == "too_long" and "field" in params:
        return t(
            lang,
            "too_long_field",
            field=field_word(lang, str(params["field"])),
            length=params.get("length"),
            max=params.get("max"),
        )
    if refused.code == "unknown_org":
        return t(lang, "org_not_in_scope", value=params.get("value", ""))
    if refused.code == "out_of_scope" and "number" not in params:
        return t(lang, "org_out_of_scope")
    return refusal(lang, refused)


def field_word(lang: str, name: str) -> str:
    """The field a limit applies to, in the reader's words ("标题", "title")."""
    key = f"field_{name}"
    return t(lang, key) if key in TEXTS else name
