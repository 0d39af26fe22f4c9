"""Finding an org from what a person types: a code, or an unambiguous name fragment."""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_
from sqlmodel import Session, col, select

from models.ledger import InputRefused
from models.tables import Org

#: Candidates named in an "ambiguous" answer.
AMBIGUOUS_SHOWN = 5


def _in_paths(paths: tuple[str, ...] | None) -> ColumnElement[bool] | bool:
    if paths is None:
        return True
    if not paths:
        return False
    return or_(*(col(Org.path).startswith(path) for path in paths))


def resolve_org(session: Session, text: str, scope: tuple[str, ...] | None = None) -> Org:
    """The org `text` names within `scope` (org-path prefixes; None = everywhere).

    An exact code wins; otherwise the name must contain `text` for exactly one
    org. Raises InputRefused `unknown_org` or `ambiguous_org` (with choices).
    """
    text = text.strip()
    if not text:
        raise InputRefused("unknown_org", {"value": text})
    within = _in_paths(scope)
    exact = session.exec(select(Org).where(Org.code == text, within)).first()
    if exact is not None:
        return exact
    matches = list(
        session.exec(
            select(Org)
            .where(col(Org.name).contains(text), within)
            .order_by(Org.code)
            .limit(AMBIGUOUS_SHOWN + 1)
        ).all()
    )
    exact_names = [org for org in matches if org.name == text]
    if len(exact_names) == 1:
        return exact_names[0]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise InputRefused("unknown_org", {"value": text})
    choices = "、".join(f"{org.code} {org.name}" for org in matches[:AMBIGUOUS_SHOWN])
    raise InputRefused("ambiguous_org", {"value": text, "choices": choices})
