"""`closeout invite`: one-time links that bind a Telegram account to a member.

    closeout invite M005 [--json] [--days N]    a link for one member
    closeout invite --all -o links.xlsx         a link for every unbound member (.csv/.xlsx)
    closeout invite --revoke CODE               revoke one invite (its code or its link)
    closeout invite M005 --revoke-all           revoke every open invite of one member

Issuing a link revokes the member's older unused links (see `models.invites`),
so the sheet printed last is the one that works.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import typer
from sqlmodel import Session, select

from cli import context
from models.db import transaction
from models.invites import (
    InviteRefused,
    create_invite,
    create_invites,
    invite_link,
    revoke_invite,
    revoke_member_invites,
    stored_bot_username,
    unbound_members,
)
from models.tables import Member, Org

#: Columns of the `--all` sheet, in this order.
SHEET_COLUMNS = ("member_code", "name", "org_code", "org_name", "link", "expires_at")
#: Name of the worksheet in an `--all` workbook.
SHEET_NAME = "invites"
#: File types `--all` writes, by extension.
OUTPUT_SUFFIXES = (".csv", ".xlsx")


def invite(
    member_code: Annotated[
        str | None, typer.Argument(metavar="MEMBER_CODE", help="The member's directory code")
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="A link for every unbound member (needs -o FILE)")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="With --all: a .csv or .xlsx file")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"member": ..., "code": ..., "link": ...}')
    ] = False,
    days: Annotated[
        int | None,
        typer.Option(min=1, help="Days the link stays valid (default: INVITE_DAYS, 14)"),
    ] = None,
    revoke: Annotated[
        str | None,
        typer.Option("--revoke", metavar="CODE", help="Revoke one invite by its code or link"),
    ] = None,
    revoke_all: Annotated[
        bool, typer.Option("--revoke-all", help="With MEMBER_CODE: revoke its open invites")
    ] = False,
) -> None:
    """Print a one-time link binding a member's Telegram account (or revoke one).

    A link binds once and expires after --days days. Issuing a new link for a
    member revokes that member's older unused links.
    """
    _check_usage(member_code, all_, output, as_json, revoke, revoke_all)
    if revoke is not None:
        _revoke_one(revoke)
    elif revoke_all:
        assert member_code is not None
        _revoke_member(member_code)
    elif all_:
        assert output is not None
        _invite_all(output, days)
    else:
        assert member_code is not None
        _invite_one(member_code, days, as_json=as_json)


def _check_usage(
    member_code: str | None,
    all_: bool,
    output: Path | None,
    as_json: bool,
    revoke: str | None,
    revoke_all: bool,
) -> None:
    # Exactly one action; options only where they mean something (usage error: exit 2).
    actions = [member_code is not None and not revoke_all, all_, revoke is not None, revoke_all]
    if sum(actions) != 1 or (revoke_all and member_code is None):
        raise typer.BadParameter(
            "give one of: MEMBER_CODE, --all -o FILE, --revoke CODE, MEMBER_CODE --revoke-all"
        )
    if all_ and output is None:
        raise typer.BadParameter("--all needs -o FILE (.csv or .xlsx)", param_hint="'-o'")
    if output is not None:
        if not all_:
            raise typer.BadParameter("-o FILE goes with --all", param_hint="'-o'")
        if output.suffix.lower() not in OUTPUT_SUFFIXES:
            raise typer.BadParameter(
                f"{output.name}: expected a .csv or .xlsx file", param_hint="'-o'"
            )
    if as_json and (all_ or revoke is not None or revoke_all):
        raise typer.BadParameter("--json goes with MEMBER_CODE alone", param_hint="'--json'")


def _bot_username(session: Session) -> str:
    # The configured name wins; else the one the bot remembered after getMe.
    configured = (context.settings().BOT_USERNAME or "").strip().lstrip("@")
    username = configured or stored_bot_username(session)
    if not username:
        raise context.refuse(
            "the bot's username is unknown: set BOT_USERNAME (e.g. BOT_USERNAME=closeout_bot)"
        )
    return username


def _days(days: int | None) -> int:
    value = days if days is not None else context.settings().INVITE_DAYS
    if value < 1:
        raise context.refuse("INVITE_DAYS is 0: links must be valid for at least 1 day (--days N)")
    return value


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).isoformat(timespec="seconds")


def _invite_one(member_code: str, days: int | None, *, as_json: bool) -> None:
    settings = context.settings()
    valid_days = _days(days)
    with transaction(context.engine()) as session:
        member = session.exec(select(Member).where(Member.code == member_code)).first()
        if member is None:
            raise context.refuse(f"no member with code {member_code!r}")
        username = _bot_username(session)
        assert member.id is not None
        invite = create_invite(session, member_id=member.id, days=valid_days)
        org = session.get(Org, member.org_id)
        link = invite_link(username, invite.code)
        bound = member.telegram_user_id is not None
    if as_json:
        print(json.dumps({"member": member_code, "code": invite.code, "link": link}))
        return
    print(link)
    where = f"{org.code} {org.name}" if org else "-"
    context.err.print(
        f"invite for {member.code} {member.name} ({where}), "
        f"valid until {_local(invite.expires_at, settings.zone)}"
        + ("; already bound: redeeming it moves the binding" if bound else "")
    )


def _invite_all(output: Path, days: int | None) -> None:
    settings = context.settings()
    valid_days = _days(days)
    partial = output.with_name(f".{output.name}.partial")
    try:
        with transaction(context.engine()) as session:
            username = _bot_username(session)
            members = unbound_members(session)
            orgs = {org.id: org for org in session.exec(select(Org)).all()}
            invites = create_invites(
                session,
                member_ids=[m.id for m in members if m.id is not None],
                days=valid_days,
            )
            rows = [
                (
                    member.code,
                    member.name,
                    orgs[member.org_id].code,
                    orgs[member.org_id].name,
                    invite_link(username, invite.code),
                    _local(invite.expires_at, settings.zone),
                )
                for member, invite in zip(members, invites, strict=True)
            ]
            # Written before the commit: if the file cannot be written, no link changes.
            _write_sheet(partial, rows, xlsx=output.suffix.lower() == ".xlsx")
        os.replace(partial, output)
    except OSError as exc:
        raise context.refuse(f"{output}: cannot write ({exc.strerror or exc})") from None
    finally:
        partial.unlink(missing_ok=True)
    if rows:
        context.err.print(f"{len(rows)} link(s) written to {output}; older unused links revoked")
    else:
        context.err.print(f"every member is bound; {output} has the header only")


def _write_sheet(path: Path, rows: Sequence[tuple[str, ...]], *, xlsx: bool) -> None:
    # CSV with a BOM, so Excel shows the Chinese names; XLSX streamed (write-only).
    if not xlsx:
        with path.open("w", newline="", encoding="utf-8-sig") as handle:
            writer = csv.writer(handle)
            writer.writerow(SHEET_COLUMNS)
            writer.writerows(rows)
        return
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(SHEET_NAME)
    for letter, width in zip("ABCDEF", (12, 12, 12, 30, 48, 26), strict=True):
        sheet.column_dimensions[letter].width = width
    sheet.append(list(SHEET_COLUMNS))
    for row in rows:
        sheet.append(list(row))
    workbook.save(path)


def _invite_code(text: str) -> str:
    # Accept the code or the whole link someone pasted.
    text = text.strip()
    if text.startswith(("https://", "http://", "t.me/")):
        query = parse_qs(urlparse(text if "://" in text else f"https://{text}").query)
        return (query.get("start") or [""])[0]
    return text


def _revoke_one(code_or_link: str) -> None:
    code = _invite_code(code_or_link)
    try:
        with transaction(context.engine()) as session:
            invite = revoke_invite(session, code=code)
            member = session.get(Member, invite.member_id)
    except InviteRefused as refused:
        raise context.refuse(str(refused)) from None
    context.err.print(f"invite {code} of {member.code if member else '?'} is revoked")


def _revoke_member(member_code: str) -> None:
    with transaction(context.engine()) as session:
        member = session.exec(select(Member).where(Member.code == member_code)).first()
        if member is None:
            raise context.refuse(f"no member with code {member_code!r}")
        assert member.id is not None
        count = revoke_member_invites(session, member_id=member.id)
    context.err.print(f"{count} open invite(s) of {member_code} revoked")
