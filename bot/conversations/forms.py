"""What people type to log an item, read the same by the one-shot and the guided /new.

`ORG | TITLE | DUE | SEVERITY` after /new, /commit, /task, /duty; severity
words in either language; the org as a code or a name fragment, resolved
within the member's scope. Dates and numbers are bot/arguments.py's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlmodel import Session

from models.ledger import InputRefused
from models.limits import TITLE_MAX
from models.orgs import resolve_org
from models.permissions import Actor, PermissionRefused, can_create, scope_paths
from models.tables import Org
from models.texts import SEVERITY

#: The kinds each creating command adds (SPEC §4).
KIND_OF_COMMAND = {
    "new": "problem",
    "commit": "commitment",
    "task": "task",
    "duty": "responsibility",
}

_SEPARATOR = re.compile(r"[|｜]")
#: Severity words people type (一般/较重/严重, general/serious/severe) → the stored value.
_SEVERITY_WORDS = {
    word.lower(): value for value, words in SEVERITY.items() for word in (value, *words)
}


@dataclass(frozen=True)
class Form:
    """`ORG | TITLE | DUE | SEVERITY` as typed after /new, /commit, /task, /duty."""

    org: str
    title: str
    due: str = ""
    severity: str = ""


def parse_form(text: str) -> Form | None:
    """The fields of a one-shot creation, or None when ORG or TITLE is missing."""
    parts = [part.strip() for part in _SEPARATOR.split(text)]
    if len(parts) < 2 or len(parts) > 4 or not parts[0] or not parts[1]:
        return None
    parts += [""] * (4 - len(parts))
    return Form(*parts)


def parse_severity(text: str) -> str:
    """general/serious/severe from what people type (一般/较重/严重 too)."""
    value = _SEVERITY_WORDS.get(text.strip().lower())
    if value is None:
        raise InputRefused("unknown_severity", {"value": text.strip()})
    return value


def title_from(description: str) -> str:
    """A guided finding's title: the description's first line, cut to the title limit."""
    first = next((line.strip() for line in description.splitlines() if line.strip()), "")
    return first if len(first) <= TITLE_MAX else first[: TITLE_MAX - 1] + "…"


def may_create_somewhere(actor: Actor, kind: str) -> None:
    """Refuse at once a member none of whose roles creates `kind` anywhere."""
    try:
        can_create(actor, kind, actor.org_path)
    except PermissionRefused as refused:
        if refused.code != "out_of_scope":
            raise


def resolve(session: Session, actor: Actor, text: str) -> Org:
    """The org `text` names within the actor's scope (a code or an unambiguous fragment)."""
    return resolve_org(session, text, scope_paths(actor))


def candidates(session: Session, actor: Actor, refused: InputRefused) -> list[tuple[int, str]]:
    """The orgs an "ambiguous_org" refusal named, as (id, label), each re-resolved in scope."""
    found = []
    for choice in str(refused.params.get("choices", "")).split("、"):
        code = choice.strip().split(" ", 1)[0]
        if not code:
            continue
        try:
            org = resolve(session, actor, code)
        except InputRefused:
            continue
        assert org.id is not None
        found.append((org.id, f"{org.code} {org.name}"))
    return found
