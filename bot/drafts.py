"""Conversations: /new (one-shot and guided), /commit /task /duty, /submit … /done,
reasons asked for by buttons, reply-to-attach, /cancel.

Every step is a row (models.drafts), written as the message arrives, and every
handler reads the row, never memory: a restart — even kill -9 — resumes a
flow where it stood (DESIGN "Conversations"). The flows:

- ``attach`` — opened by a one-shot creation: photos, locations, files, voice,
  video and text sent in the next minutes are attached to the new item at once.
- ``new`` — the guided /new, one question per step (STEPS); buttons carry the
  draft's nonce and are only good for the step they were drawn for.
- ``submit`` — /submit N collects evidence INTO THE DRAFT; /done attaches it
  all and submits in one transaction; /cancel drops it, nothing attached.
  /done with no evidence at all asks once, with a button, whether to submit
  without (SPEC §7: evidence is asked for once, and results matter more than
  screenshots — the verifier judges a bare submission).
- ``reason`` — opened by the action buttons (bot/actions.py) with data
  {"action", "version"}: the member's next text is the reason.

With no flow open, a reply to a bot message about #N attaches to #N.
EVIDENCE_DIR, when set, also keeps each file under its sha256; the copy is
made when the evidence is attached, and a failed download keeps the row.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any

from sqlmodel import Session, select
from telegram import Message, Update
from telegram.error import BadRequest, TelegramError
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot import callbacks
from bot.cards import Card, item_card
from bot.guard import Who, command, guess_lang, is_group, lookup, reply
from bot.replies import card_item, markup, record_sent
from bot.services import Context, Services
from bot.texts import SEVERITY, TEXTS, kind_word, refusal, severity_word, t
from models.deadlines import default_due_date, due_from_workdays
from models.drafts import clear_draft, draft_data, get_draft, start_draft, update_draft
from models.ledger import (
    InputRefused,
    NewEvidence,
    NewItem,
    act,
    attach_evidence,
    check_new_item,
    create_item,
    get_item,
    view_of,
)
from models.limits import DESCRIPTION_MAX, NAME_MAX, TITLE_MAX
from models.orgs import resolve_org
from models.permissions import Actor, PermissionRefused, can_create, check, scope_paths
from models.sheets import parse_date
from models.states import Action, Refused, next_status
from models.summaries import Facts, summarize
from models.tables import Draft, Evidence, Item, Org

log = logging.getLogger(__name__)

#: The kinds each creating command adds (SPEC §4).
KIND_OF_COMMAND = {
    "new": "problem",
    "commit": "commitment",
    "task": "task",
    "duty": "responsibility",
}
#: The guided /new's questions, in order.
STEPS = ("org", "category", "severity", "description", "evidence", "due", "confirm")
#: A due date typed as this many digits at most is "N working days"; longer is a date (20260310).
WORKDAY_DIGITS = 3
#: Words that answer a question the way its button would.
SKIP_WORDS = frozenset({"跳过", "无", "skip", "none", "-"})
DONE_WORDS = frozenset({"完成", "好了", "done"})
CONFIRM_WORDS = frozenset({"确认", "确定", "是", "yes", "y", "ok"})
#: Button arguments of the guided /new → the step they answer.
NEW_BUTTONS = {
    "org": "org",
    "skip": "category",
    "sev.general": "severity",
    "sev.serious": "severity",
    "sev.severe": "severity",
    "done": "evidence",
    "due": "due",
    "ok": "confirm",
    "no": "confirm",
}
#: Flows that hold what the member gathered: another flow must not silently replace them.
GATHERING = frozenset({"new", "submit"})
#: Refusals a reason draft survives: the member may simply send a better reason.
REASON_RETRY = frozenset({"reason_required", "reason_too_long", "too_long"})

_SEPARATOR = re.compile(r"[|｜]")
_WORKDAYS = re.compile(rf"^(\d{{1,{WORKDAY_DIGITS}}})\s*(?:个?工作日|天|d|days?)?$", re.IGNORECASE)
_NUMBER = re.compile(r"^[#＃]?(\d{1,12})$")
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,10}$")
#: Severity words people type (一般/较重/严重, general/serious/severe) → the stored value.
_SEVERITY_WORDS = {
    word.lower(): value for value, words in SEVERITY.items() for word in (value, *words)
}


class FlowRefused(Refused):
    """A flow cannot start or go on: another one holds gathered material, or the step moved."""


# -- the pieces of a flow ------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One piece of evidence as it arrived: what an Evidence row will hold."""

    kind: str
    message_id: int = 0
    file_id: str | None = None
    file_unique_id: str | None = None
    file_name: str | None = None
    text: str | None = None
    latitude: float | None = None
    longitude: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    def evidence(self, archived: Archived | None = None) -> NewEvidence:
        return NewEvidence(
            kind=self.kind,
            file_id=self.file_id,
            file_unique_id=self.file_unique_id,
            file_name=self.file_name,
            text=self.text,
            latitude=self.latitude,
            longitude=self.longitude,
            sha256=archived.sha256 if archived else None,
            archived_path=archived.path if archived else None,
        )


@dataclass(frozen=True)
class Archived:
    """Where EVIDENCE_DIR keeps a file, and its digest."""

    sha256: str
    path: str


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


@dataclass(frozen=True)
class Form:
    """`ORG | TITLE | DUE | SEVERITY` as typed after /new, /commit, /task, /duty."""

    org: str
    title: str
    due: str = ""
    severity: str = ""


def flow_of(draft: Draft | None) -> Flow | None:
    """The draft as a Flow, None for no draft."""
    return None if draft is None else snapshot(draft)


def snapshot(draft: Draft) -> Flow:
    return Flow(draft.flow, draft.step, draft.item_number, draft_data(draft))


def entry_of(message: Message) -> Entry:
    """The evidence a message carries; text messages are kind "text"."""
    mid = message.message_id
    caption = message.caption or None
    if message.photo:
        size = message.photo[-1]  # the largest
        return Entry("photo", mid, size.file_id, size.file_unique_id, text=caption)
    for kind, attachment in (
        ("document", message.document),
        ("voice", message.voice),
        ("voice", message.audio),
        ("video", message.video),
        ("video", message.video_note),
    ):
        if attachment is not None:
            name = getattr(attachment, "file_name", None)
            return Entry(
                kind,
                mid,
                attachment.file_id,
                attachment.file_unique_id,
                file_name=name[:NAME_MAX] if name else None,
                text=caption,
            )
    if message.venue is not None:
        venue = message.venue
        where = venue.location
        text = " ".join(part for part in (venue.title, venue.address) if part)
        return Entry("location", mid, text=text, latitude=where.latitude, longitude=where.longitude)
    if message.location is not None:
        where = message.location
        return Entry("location", mid, latitude=where.latitude, longitude=where.longitude)
    return Entry("text", mid, text=message.text or "")


def checked_entry(entry: Entry) -> Entry:
    """The entry, or InputRefused "too_long" when its text could never be attached."""
    if entry.text is not None and len(entry.text) > DESCRIPTION_MAX:
        raise InputRefused(
            "too_long", {"field": "text", "length": len(entry.text), "max": DESCRIPTION_MAX}
        )
    return entry


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


def parse_due(text: str, facts: Facts) -> date:
    """A due date: `N` (working days from today, "5天" too) or a date as people type it."""
    text = text.strip()
    workdays = _WORKDAYS.match(text)
    if workdays:
        return due_from_workdays(facts.today, int(workdays.group(1)), facts.calendar)
    try:
        return parse_date(text)
    except ValueError:
        raise InputRefused("bad_date", {"value": text}) from None


def parse_number(text: str) -> int:
    match = _NUMBER.match(text.strip())
    if match is None:
        raise InputRefused("bad_number", {"value": text.strip()})
    return int(match.group(1))


def title_from(description: str) -> str:
    """A guided finding's title: the description's first line, cut to the title limit."""
    first = next((line.strip() for line in description.splitlines() if line.strip()), "")
    return first if len(first) <= TITLE_MAX else first[: TITLE_MAX - 1] + "…"


def new_nonce() -> int:
    """Marks one flow's buttons, so a button of an earlier flow does nothing."""
    return secrets.randbelow(999_999_999) + 1


def _arguments(update: Update) -> str:
    # The raw text after the command (context.args would lose the "|" spacing).
    text = update.effective_message.text if update.effective_message else None
    parts = (text or "").split(maxsplit=1)
    return parts[1].strip() if len(parts) > 1 else ""


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
    if isinstance(refused, FlowRefused):
        return t(lang, refused.code, **params)
    return refusal(lang, refused)


def field_word(lang: str, name: str) -> str:
    """The field a limit applies to, in the reader's words ("标题", "title")."""
    key = f"field_{name}"
    return t(lang, key) if key in TEXTS else name


def reason_intro(lang: str, action: str, number: int, reason: str) -> str:
    """What happened, above the card, after an action with a reason."""
    # The action commands' own words where they have them (bot/actions.py), so
    # `/reject N REASON` and the Reject button read the same.
    key = f"did_{action}"
    if key not in TEXTS:
        key = "reason_done"
    return t(lang, key, number=number, reason=reason)


def ask(lang: str, flow: Flow) -> Card:
    """The guided /new's current question, with its buttons."""
    data, nonce = flow.data, int(flow.data.get("nonce", 0))

    def button(label: str, arg: str, number: int = 0) -> tuple[str, str]:
        return label, callbacks.encode("new_flow", number, nonce, arg)

    step = STEPS.index(flow.step) + 1 if flow.step in STEPS else 1
    head = t(lang, "new_step", step=step, steps=len(STEPS))
    if flow.step == "category":
        return Card(
            f"{head}{t(lang, 'new_ask_category')}", ((button(t(lang, "btn_skip"), "skip"),),)
        )
    if flow.step == "severity":
        row = tuple(button(severity_word(lang, value), f"sev.{value}") for value in SEVERITY)
        return Card(f"{head}{t(lang, 'new_ask_severity')}", (row,))
    if flow.step == "description":
        return Card(f"{head}{t(lang, 'new_ask_description', max=DESCRIPTION_MAX)}")
    if flow.step == "evidence":
        count = len(data.get("evidence", []))
        text = f"{head}{t(lang, 'new_ask_evidence', count=count)}"
        return Card(text, ((button(t(lang, "btn_done"), "done"),),))
    if flow.step == "due":
        default = data.get("default_due", "")
        text = f"{head}{t(lang, 'new_ask_due', due=default)}"
        return Card(text, ((button(t(lang, "btn_due_default", due=default), "due"),),))
    if flow.step == "confirm":
        none = t(lang, "none_word")
        text = head + t(
            lang,
            "new_confirm",
            org=data.get("org", ""),
            category=data.get("category") or none,
            severity=severity_word(lang, data.get("severity", "general")),
            title=title_from(data.get("description", "")),
            description=data.get("description", ""),
            count=len(data.get("evidence", [])),
            due=data.get("due", ""),
        )
        return Card(
            text[:4000],
            ((button(t(lang, "btn_confirm"), "ok"), button(t(lang, "btn_cancel"), "no")),),
        )
    return Card(f"{head}{t(lang, 'new_ask_org')}")


def pick_org(lang: str, flow: Flow, value: str, choices: list[tuple[int, str]]) -> Card:
    """Buttons for the orgs an ambiguous name fragment matched."""
    nonce = int(flow.data.get("nonce", 0))
    rows = tuple(
        ((label, callbacks.encode("new_flow", org_id, nonce, "org")),) for org_id, label in choices
    )
    return Card(t(lang, "new_pick_org", value=value), rows)


# -- one handler at a time per person ----------------------------------------------------------


class Turns:
    """Runs one person's updates through these handlers one at a time, in arrival order.

    The Application processes updates concurrently, so a photo sent right
    after /submit (or queued while the bot was down and fetched in one batch)
    could otherwise be handled before the draft exists. python-telegram-bot
    starts the handlers of consecutive updates in order; the lock is taken
    before the first await, and asyncio's locks are fair (FIFO). Holds locks
    only while someone waits on them: nothing that matters lives here, and a
    second bot process is kept consistent by the draft's row lock instead.
    """

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def of(self, user_id: int) -> AsyncIterator[None]:
        # No await before the lock is taken: that is what keeps arrival order.
        lock, users = self._locks.get(user_id) or (asyncio.Lock(), 0)
        self._locks[user_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[user_id]
            if users <= 1:
                del self._locks[user_id]
            else:
                self._locks[user_id] = (lock, users - 1)


_TURNS = Turns()

Callback = Callable[[Update, Context], Coroutine[Any, Any, None]]


def in_turn(handler: Callable[[Update, Context], Awaitable[None]]) -> Callback:
    """Wrap a handler so each person's updates reach it one at a time, in order."""

    @functools.wraps(handler)
    async def wrapped(update: Update, context: Context) -> None:
        user = update.effective_user
        if user is None:
            await handler(update, context)
            return
        async with _TURNS.of(user.id):
            await handler(update, context)

    return wrapped


def explained(
    handler: Callable[[Update, Context, Who], Awaitable[None]],
) -> Callable[[Update, Context, Who], Awaitable[None]]:
    """Answer a refusal with `explain` (naming the field, the scope or the open flow)."""

    @functools.wraps(handler)
    async def wrapped(update: Update, context: Context, who: Who) -> None:
        try:
            await handler(update, context, who)
        except Refused as refused:
            await reply(update, explain(who.lang, refused))

    return wrapped


# -- database work (each function runs inside one `services.db` transaction) -----------------


def locked_draft(session: Session, member_id: int) -> Draft | None:
    """The member's open draft, locked until the transaction ends (PostgreSQL; SQLite
    serialises writers already), so two messages never both append to an old copy."""
    session.get(Draft, member_id, with_for_update=True)
    return get_draft(session, member_id)


def refuse_if_gathering(draft: Draft | None) -> None:
    """Refuse to replace a flow that holds gathered material; /done or /cancel it first."""
    if draft is None or draft.flow not in GATHERING:
        return
    count = len(draft_data(draft).get("evidence", []))
    if draft.flow == "submit":
        raise FlowRefused("busy_submit", {"number": draft.item_number, "count": count})
    raise FlowRefused("busy_new", {"count": count})


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


def may_submit(session: Session, actor: Actor, item: Item) -> None:
    """Refuse unless the actor may submit the item now (permission and status)."""
    check(actor, Action.SUBMIT, view_of(session, item))
    next_status(item.status, Action.SUBMIT)


def may_attach(session: Session, actor: Actor, number: int) -> None:
    item = get_item(session, number)
    check(actor, Action.ATTACH, view_of(session, item))
    next_status(item.status, Action.ATTACH)


def already_attached(session: Session, number: int, entry: Entry) -> bool:
    """Whether this very file is in the item's pocket (Telegram may deliver a message twice)."""
    if entry.file_unique_id is None:
        return False
    return (
        session.exec(
            select(Evidence.id).where(
                Evidence.item_number == number, Evidence.file_unique_id == entry.file_unique_id
            )
        ).first()
        is not None
    )


def add_entry(data: dict[str, Any], entry: Entry) -> bool:
    """Append to the draft's evidence unless the same message or file is there already."""
    entries: list[dict[str, Any]] = data.setdefault("evidence", [])
    for known in entries:
        if known.get("message_id") == entry.message_id and entry.message_id:
            return False
        if entry.file_unique_id and known.get("file_unique_id") == entry.file_unique_id:
            return False
    entries.append(entry.to_json())
    return True


def evidence_count(session: Session, number: int) -> int:
    return len(session.exec(select(Evidence.id).where(Evidence.item_number == number)).all())


def card_for(
    session: Session, services: Services, who: Who, item: Item, intro: str | None
) -> tuple[Card, int, int]:
    """The item's card for the member, with its number and version."""
    summary = summarize(session, item, services.facts(session), reader=who.actor)
    assert item.number is not None
    return item_card(who.lang, summary, intro=intro), item.number, item.version


# -- sending ------------------------------------------------------------------------------------


async def send(
    update: Update,
    context: Context,
    who: Who,
    card: Card,
    *,
    number: int | None = None,
    version: int = 0,
) -> None:
    """Answer in the update's chat; a message about an item is recorded for replies and edits."""
    message = update.effective_message
    if message is None:
        return
    sent = await message.reply_text(card.text, reply_markup=markup(card), do_quote=False)
    if number is not None:
        await record_sent(
            context.services, sent, item_number=number, member_id=who.member_id, version=version
        )


async def archive(context: Context, entry: Entry) -> Archived | None:
    """Keep the entry's file under EVIDENCE_DIR/<sha256[:2]>/<sha256><ext>, when set.

    A failed download is logged and returns None: the evidence row is written
    anyway with its file_id, from which the file can still be fetched.
    """
    folder = context.services.settings.EVIDENCE_DIR
    if not folder or entry.file_id is None:
        return None
    try:
        file = await context.bot.get_file(entry.file_id)
        data = bytes(await file.download_as_bytearray())
    except (TelegramError, OSError) as error:
        log.warning(
            "evidence %s (message %s) kept without an archive copy: %s",
            entry.file_unique_id,
            entry.message_id,
            error,
        )
        return None
    digest = hashlib.sha256(data).hexdigest()
    suffix = Path(entry.file_name or file.file_path or "").suffix.lower()
    path = Path(folder) / digest[:2] / (digest + (suffix if _SUFFIX.match(suffix) else ""))
    try:
        await asyncio.to_thread(_store, path, data)
    except OSError as error:
        log.warning("evidence %s not archived at %s: %s", entry.file_unique_id, path, error)
        return None
    return Archived(digest, str(path))


def _store(path: Path, data: bytes) -> None:
    # Content-addressed: the same bytes are stored once; written aside, then renamed.
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f"{path.name}.{uuid.uuid4().hex}.part")
    part.write_bytes(data)
    os.replace(part, path)


async def archive_all(context: Context, entries: list[Entry]) -> dict[int, Archived]:
    """Archive copies of the entries' files, by message id."""
    kept: dict[int, Archived] = {}
    for entry in entries:
        archived = await archive(context, entry)
        if archived is not None:
            kept[entry.message_id] = archived
    return kept


# -- /new, /commit, /task, /duty -----------------------------------------------------------------


async def create_at_once(
    update: Update, context: Context, who: Who, command: str, text: str
) -> None:
    """`/new ORG | TITLE | DUE [| SEVERITY]`: create, show the card, open the attach window."""
    form = parse_form(text)
    if form is None:
        await reply(update, t(who.lang, "create_usage", command=command))
        return
    kind = KIND_OF_COMMAND[command]
    services = context.services

    def work(session: Session) -> tuple[Card, int, int]:
        refuse_if_gathering(locked_draft(session, who.member_id))
        may_create_somewhere(who.actor, kind)
        facts = services.facts(session)
        org = resolve(session, who.actor, form.org)
        severity = parse_severity(form.severity) if form.severity else "general"
        if form.due:
            due = parse_due(form.due, facts)
        else:
            due = default_due_date(facts.today, severity, facts.calendar)
        new = NewItem(kind=kind, org_id=org.id, title=form.title, severity=severity, due_date=due)  # type: ignore[arg-type]
        item = create_item(session, who.actor, new, today=facts.today)
        start_draft(session, who.member_id, "attach", item_number=item.number)
        intro = "\n".join(
            (
                t(who.lang, "created", kind=kind_word(who.lang, kind), number=item.number),
                t(who.lang, "attach_hint", number=item.number),
            )
        )
        return card_for(session, services, who, item, intro)

    card, number, version = await services.db(work)
    await send(update, context, who, card, number=number, version=version)


@in_turn
@command()
@explained
async def new(update: Update, context: Context, who: Who) -> None:
    """Log a finding: `/new ORG | TITLE | DUE` at once, or step by step with no arguments."""
    text = _arguments(update)
    if text:
        await create_at_once(update, context, who, "new", text)
        return
    services = context.services

    def work(session: Session) -> tuple[Flow, bool]:
        may_create_somewhere(who.actor, "problem")
        draft = locked_draft(session, who.member_id)
        if draft is not None and draft.flow == "new":
            return snapshot(draft), True
        refuse_if_gathering(draft)
        data = {"nonce": new_nonce(), "kind": "problem", "evidence": []}
        return snapshot(start_draft(session, who.member_id, "new", step="org", data=data)), False

    flow, resumed = await services.db(work)
    card = ask(who.lang, flow)
    if resumed:
        card = Card(f"{t(who.lang, 'new_resume')}\n{card.text}", card.buttons)
    await send(update, context, who, card)


def _list_command(command_name: str) -> Callback:
    @in_turn
    @command()
    @explained
    async def add_to_list(update: Update, context: Context, who: Who) -> None:
        """Add to the three lists: `/commit|/task|/duty ORG | TITLE | DUE`."""
        text = _arguments(update)
        if not text:
            await reply(update, t(who.lang, "create_usage", command=command_name))
            return
        await create_at_once(update, context, who, command_name, text)

    add_to_list.__name__ = add_to_list.__qualname__ = command_name
    return add_to_list


commit = _list_command("commit")
task = _list_command("task")
duty = _list_command("duty")


# -- the guided /new ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """An answer to the guided /new's current question: typed, or a button."""

    text: str = ""
    org_id: int | None = None
    skip: bool = False
    severity: str | None = None
    done: bool = False
    default_due: bool = False


@dataclass(frozen=True)
class Step:
    """What an answer led to: the flow as it now stands, or orgs to choose from."""

    flow: Flow
    choices: list[tuple[int, str]] = field(default_factory=list)
    value: str = ""


def take(session: Session, actor: Actor, facts: Facts, flow: Flow, answer: Answer) -> str:
    """Apply an answer to `flow.data` (in place); the next step. Raises a Refused."""
    data, step = flow.data, flow.step
    if step == "org":
        if answer.org_id is not None:
            chosen = session.get(Org, answer.org_id)
            try:
                # Re-resolved in scope: a forged id outside it fails here, naming nothing.
                org = resolve(session, actor, chosen.code if chosen else "")
            except InputRefused:
                raise InputRefused("unknown_org", {"value": answer.org_id}) from None
        else:
            org = resolve(session, actor, answer.text)
        can_create(actor, data["kind"], org.path)
        data["org_id"], data["org"] = org.id, f"{org.code} {org.name}"
        return "category"
    if step == "category":
        category = "" if answer.skip or answer.text.lower() in SKIP_WORDS else answer.text
        check_new_item(NewItem(data["kind"], data["org_id"], title="-", category=category))
        data["category"] = category
        return "severity"
    if step == "severity":
        data["severity"] = answer.severity or parse_severity(answer.text)
        return "description"
    if step == "description":
        new = NewItem(
            data["kind"],
            data["org_id"],
            title=title_from(answer.text),
            description=answer.text,
            category=data.get("category", ""),
        )
        data["description"] = check_new_item(new).description
        return "evidence"
    if step == "evidence":
        severity = data.get("severity", "general")
        data["default_due"] = default_due_date(facts.today, severity, facts.calendar).isoformat()
        return "due"
    if step == "due":
        due = date.fromisoformat(data["default_due"]) if answer.default_due else None
        due = due or parse_due(answer.text, facts)
        if due < facts.today:
            raise InputRefused("due_in_past", {"due": due.isoformat()})
        data["due"] = due.isoformat()
        return "confirm"
    return step


async def answer_new(
    update: Update, context: Context, who: Who, flow: Flow, answer: Answer
) -> Flow | None:
    """Move the guided /new on by one answer and ask the next question (or offer orgs).

    Returns the flow as it now stands, or None when the answer was refused
    (the member was told why and asked again) or the flow has moved on.
    """
    services = context.services

    def work(session: Session) -> Step | None:
        draft = locked_draft(session, who.member_id)
        now = flow_of(draft)
        if draft is None or now is None or now.name != "new" or now.step != flow.step:
            return None
        try:
            step = take(session, who.actor, services.facts(session), now, answer)
        except InputRefused as refused:
            if refused.code != "ambiguous_org":
                raise
            return Step(now, candidates(session, who.actor, refused), answer.text)
        return Step(snapshot(update_draft(session, draft, step=step, data=now.data)))

    try:
        outcome = await services.db(work)
    except Refused as refused:
        card = ask(who.lang, flow)
        await send(
            update, context, who, Card(f"{explain(who.lang, refused)}\n\n{card.text}", card.buttons)
        )
        return None
    if outcome is None:
        await reply(update, t(who.lang, "button_stale"))
        return None
    if outcome.choices:
        await send(
            update, context, who, pick_org(who.lang, outcome.flow, outcome.value, outcome.choices)
        )
        return None
    await send(update, context, who, ask(who.lang, outcome.flow))
    return outcome.flow


async def gather_for_new(
    update: Update, context: Context, who: Who, flow: Flow, entry: Entry
) -> None:
    """Keep evidence sent during the guided /new (at any step), and ask the question again."""

    def work(session: Session) -> tuple[Flow, int] | None:
        draft = locked_draft(session, who.member_id)
        now = flow_of(draft)
        if draft is None or now is None or now.name != "new":
            return None
        add_entry(now.data, entry)
        return snapshot(update_draft(session, draft, data=now.data)), len(now.data["evidence"])

    outcome = await context.services.db(work)
    if outcome is None:
        await reply(update, t(who.lang, "button_stale"))
        return
    now, count = outcome
    card = ask(who.lang, now)
    text = t(who.lang, "new_evidence_got", count=count)
    if now.step != "evidence":
        text = f"{text}\n\n{card.text}"
    await send(update, context, who, Card(text, card.buttons))


async def create_guided(update: Update, context: Context, who: Who, flow: Flow) -> bool:
    """Create the guided /new's item with its evidence, show the card, open the attach window.

    Returns False when the flow had moved on (nothing created).
    """
    services = context.services
    archived = await archive_all(context, flow.entries)

    def work(session: Session) -> tuple[Card, int, int] | None:
        draft = locked_draft(session, who.member_id)
        now = flow_of(draft)
        if now is None or now.name != "new" or now.step != "confirm":
            return None
        if now.data.get("nonce") != flow.data.get("nonce"):
            return None
        data, facts = now.data, services.facts(session)
        new = NewItem(
            kind=data["kind"],
            org_id=data["org_id"],
            title=title_from(data["description"]),
            description=data["description"],
            category=data.get("category", ""),
            severity=data.get("severity", "general"),
            due_date=date.fromisoformat(data["due"]),
        )
        item = create_item(session, who.actor, new, today=facts.today)
        assert item.number is not None
        for entry in now.entries:
            attach_evidence(
                session, who.actor, item.number, entry.evidence(archived.get(entry.message_id))
            )
        start_draft(session, who.member_id, "attach", item_number=item.number)
        intro = "\n".join(
            (
                t(who.lang, "created", kind=kind_word(who.lang, item.kind), number=item.number),
                t(who.lang, "attach_hint", number=item.number),
            )
        )
        return card_for(session, services, who, item, intro)

    outcome = await services.db(work)
    if outcome is None:
        return False
    card, number, version = outcome
    await send(update, context, who, card, number=number, version=version)
    return True


async def confirm_new(update: Update, context: Context, who: Who, flow: Flow) -> None:
    """The guided /new confirmed: create, or say why not and ask again."""
    try:
        created = await create_guided(update, context, who, flow)
    except Refused as refused:
        card = ask(who.lang, flow)
        text = f"{explain(who.lang, refused)}\n\n{card.text}"
        await send(update, context, who, Card(text, card.buttons))
        return
    if not created:
        await reply(update, t(who.lang, "button_stale"))


# -- /submit, /done, /cancel ---------------------------------------------------------------------


async def start_submission(
    context: Context, who: Who, number: int, report: Entry | None, version: int = 0
) -> tuple[int, int]:
    """Open (or continue) the submit flow for #number: (evidence so far, item version).

    Refuses at once whoever may not submit the item; `version`, from a Submit
    button, refuses a button drawn for an older state of the item.
    """

    def work(session: Session) -> tuple[int, int]:
        draft = locked_draft(session, who.member_id)
        item = get_item(session, number)
        if version and version != item.version:
            raise InputRefused("stale", {"number": number})
        if draft is not None and draft.flow == "submit" and draft.item_number == number:
            data = draft_data(draft)
        else:
            refuse_if_gathering(draft)
            may_submit(session, who.actor, item)
            data = {"nonce": new_nonce(), "evidence": []}
            draft = start_draft(session, who.member_id, "submit", item_number=number, data=data)
        if report is not None:
            add_entry(data, report)
        update_draft(session, draft, data=data)
        return len(data["evidence"]), item.version

    return await context.services.db(work)


async def say_submission_open(
    update: Update, context: Context, who: Who, number: int, count: int, version: int
) -> None:
    text = t(who.lang, "submit_open", number=number)
    if count:
        text = f"{text}\n{t(who.lang, 'submit_got', number=number, count=count)}"
    await send(update, context, who, Card(text), number=number, version=version)


@in_turn
@command()
@explained
async def submit(update: Update, context: Context, who: Who) -> None:
    """Submit #N's rectification: `/submit N [report]`, then evidence, then /done."""
    text = _arguments(update)
    if not text:
        await reply(update, t(who.lang, "submit_usage"))
        return
    first, _, report = text.partition(" ")
    number = parse_number(first)
    entry = None
    if report.strip() and update.effective_message is not None:
        mid = update.effective_message.message_id
        entry = checked_entry(Entry("text", mid, text=report.strip()))
    count, version = await start_submission(context, who, number, entry)
    await say_submission_open(update, context, who, number, count, version)


async def gather_for_submission(
    update: Update, context: Context, who: Who, flow: Flow, entry: Entry
) -> None:
    """Keep one piece of evidence in the submit draft and say how many there are."""
    entry = checked_entry(entry)

    def work(session: Session) -> tuple[int, int, int] | None:
        draft = locked_draft(session, who.member_id)
        if draft is None or draft.flow != "submit" or draft.item_number != flow.number:
            return None
        data = draft_data(draft)
        add_entry(data, entry)
        update_draft(session, draft, data=data)
        assert draft.item_number is not None
        return (
            draft.item_number,
            len(data["evidence"]),
            get_item(session, draft.item_number).version,
        )

    outcome = await context.services.db(work)
    if outcome is None:
        await reply(update, t(who.lang, "button_stale"))
        return
    number, count, version = outcome
    card = Card(t(who.lang, "submit_got", number=number, count=count))
    await send(update, context, who, card, number=number, version=version)


async def finish_submission(
    update: Update, context: Context, who: Who, flow: Flow, *, anyway: bool = False
) -> bool:
    """Attach the draft's evidence and submit, in one transaction; then show the card.

    With no evidence, and unless `anyway`, asks once whether to submit without
    it and returns False.
    """
    services = context.services
    number = flow.number
    assert number is not None
    entries = flow.entries
    if not entries and not anyway:
        nonce = int(flow.data.get("nonce", 0))
        button = (
            t(who.lang, "btn_submit_anyway"),
            callbacks.encode("submit_flow", number, nonce, "go"),
        )
        await send(
            update, context, who, Card(t(who.lang, "submit_empty", number=number), ((button,),))
        )
        return False
    archived = await archive_all(context, entries)

    def work(session: Session) -> tuple[Card, int, int] | None:
        draft = locked_draft(session, who.member_id)
        now = flow_of(draft)
        if now is None or now.name != "submit" or now.number != number:
            return None
        if now.data.get("nonce") != flow.data.get("nonce"):
            return None
        gathered = now.entries  # what the row holds now is what gets attached
        for entry in gathered:
            attach_evidence(
                session, who.actor, number, entry.evidence(archived.get(entry.message_id))
            )
        item = act(session, who.actor, number, Action.SUBMIT)
        clear_draft(session, who.member_id)
        intro = t(who.lang, "submitted", number=number, count=len(gathered))
        return card_for(session, services, who, item, intro)

    outcome = await services.db(work)
    if outcome is None:
        await reply(update, t(who.lang, "button_stale"))
        return False
    card, _, item_version = outcome
    await send(update, context, who, card, number=number, version=item_version)
    return True


async def current_flow(context: Context, who: Who) -> Flow | None:
    return await context.services.db(lambda session: flow_of(get_draft(session, who.member_id)))


@in_turn
@command()
@explained
async def done(update: Update, context: Context, who: Who) -> None:
    """Finish the open step: submit the evidence, end the evidence step or the attach window."""
    flow = await current_flow(context, who)
    if flow is None:
        await reply(update, t(who.lang, "nothing_to_finish"))
    elif flow.name == "submit":
        await finish_submission(update, context, who, flow)
    elif flow.name == "new":
        if flow.step == "evidence":
            await answer_new(update, context, who, flow, Answer(done=True))
        else:
            card = ask(who.lang, flow)
            await send(
                update,
                context,
                who,
                Card(f"{t(who.lang, 'new_answer_first')}\n\n{card.text}", card.buttons),
            )
    elif flow.name == "attach":
        number = flow.number

        def work(session: Session) -> tuple[int, int]:
            clear_draft(session, who.member_id)
            assert number is not None
            return evidence_count(session, number), get_item(session, number).version

        count, version = await context.services.db(work)
        card = Card(t(who.lang, "attach_finished", number=number, count=count))
        await send(update, context, who, card, number=number, version=version)
    elif flow.name == "reason":
        await reply(update, t(who.lang, "reason_wanted"))
    else:
        await context.services.db(lambda session: clear_draft(session, who.member_id))
        await reply(update, t(who.lang, "nothing_to_finish"))


@in_turn
@command()
@explained
async def cancel(update: Update, context: Context, who: Who) -> None:
    """Close whatever flow is open; a submission is dropped with nothing attached."""

    def work(session: Session) -> Flow | None:
        flow = flow_of(locked_draft(session, who.member_id))
        if flow is not None:
            clear_draft(session, who.member_id)
        return flow

    flow = await context.services.db(work)
    if flow is None:
        await reply(update, t(who.lang, "nothing_to_cancel"))
    elif flow.name == "submit":
        await reply(update, t(who.lang, "submit_cancelled", number=flow.number))
    else:
        await reply(update, t(who.lang, "cancelled"))


# -- reasons and attachments ---------------------------------------------------------------------


async def give_reason(update: Update, context: Context, who: Who, flow: Flow, text: str) -> None:
    """The reason an action button asked for: act with it, then show the card."""
    services = context.services
    action = str(flow.data.get("action", ""))
    button_version = flow.data.get("version")
    number = flow.number
    assert number is not None

    def work(session: Session) -> tuple[Card, int, int] | None:
        draft = locked_draft(session, who.member_id)
        if draft is None or draft.flow != "reason" or draft.item_number != number:
            return None
        item = act(session, who.actor, number, action, reason=text, version=button_version)
        clear_draft(session, who.member_id)
        intro = reason_intro(who.lang, action, number, text.strip())
        return card_for(session, services, who, item, intro)

    try:
        outcome = await services.db(work)
    except Refused as refused:
        if refused.code in REASON_RETRY:
            await reply(update, f"{explain(who.lang, refused)}\n{t(who.lang, 'reason_again')}")
            return
        await services.db(lambda session: clear_draft(session, who.member_id))
        await reply(update, explain(who.lang, refused))
        return
    if outcome is None:
        await reply(update, t(who.lang, "button_stale"))
        return
    card, _, item_version = outcome
    await send(update, context, who, card, number=number, version=item_version)


async def attach_now(
    update: Update, context: Context, who: Who, number: int, entry: Entry, window: bool
) -> None:
    """Attach one piece of evidence to #number at once: "#N: attached".

    `window`: it came in the attach window after a creation, which this
    keeps open a little longer.
    """
    services = context.services
    entry = checked_entry(entry)

    def precheck(session: Session) -> bool:
        may_attach(session, who.actor, number)
        return already_attached(session, number, entry)

    duplicate = await services.db(precheck)
    archived = None if duplicate else await archive(context, entry)

    def work(session: Session) -> tuple[int, int]:
        if not duplicate:
            attach_evidence(session, who.actor, number, entry.evidence(archived))
        if window:
            draft = locked_draft(session, who.member_id)
            if draft is not None and draft.flow == "attach":
                update_draft(session, draft)
        return evidence_count(session, number), get_item(session, number).version

    count, version = await services.db(work)
    key = "already_attached" if duplicate else "attached"
    await send(
        update,
        context,
        who,
        Card(t(who.lang, key, number=number, count=count)),
        number=number,
        version=version,
    )


@in_turn
@command()
@explained
async def collect(update: Update, context: Context, who: Who) -> None:
    """Take a free message: the open flow's answer or evidence, or a reply to an item's card."""
    message = update.effective_message
    if message is None:
        return
    replied = message.reply_to_message

    def look(session: Session) -> tuple[Flow | None, int | None]:
        flow = flow_of(get_draft(session, who.member_id))
        number = card_item(session, message.chat_id, replied.message_id) if replied else None
        return flow, number

    flow, card_number = await context.services.db(look)
    entry = entry_of(message)
    if card_number is not None and (flow is None or flow.name == "attach"):
        await attach_now(update, context, who, card_number, entry, window=False)
    elif flow is None:
        await reply(update, t(who.lang, "no_flow_hint"))
    elif flow.name == "submit":
        await gather_for_submission(update, context, who, flow, entry)
    elif flow.name == "attach":
        assert flow.number is not None
        await attach_now(update, context, who, flow.number, entry, window=True)
    elif flow.name == "reason":
        if entry.kind != "text":
            await reply(update, t(who.lang, "reason_wanted"))
        else:
            await give_reason(update, context, who, flow, entry.text or "")
    elif flow.name == "new":
        await new_message(update, context, who, flow, entry)
    else:
        await reply(update, t(who.lang, "no_flow_hint"))


async def new_message(update: Update, context: Context, who: Who, flow: Flow, entry: Entry) -> None:
    """A message during the guided /new: evidence (at any step), or the current answer."""
    text = (entry.text or "").strip()
    if entry.kind != "text" or (flow.step == "evidence" and text.lower() not in DONE_WORDS):
        await gather_for_new(update, context, who, flow, checked_entry(entry))
    elif flow.step == "evidence":
        await answer_new(update, context, who, flow, Answer(done=True))
    elif flow.step == "confirm":
        if text.lower() in CONFIRM_WORDS:
            await confirm_new(update, context, who, flow)
        else:
            card = ask(who.lang, flow)
            await send(
                update,
                context,
                who,
                Card(f"{t(who.lang, 'new_use_buttons')}\n\n{card.text}", card.buttons),
            )
    else:
        await answer_new(update, context, who, flow, Answer(text=text))


# -- buttons -------------------------------------------------------------------------------------


@in_turn
async def press(update: Update, context: Context) -> None:
    """Take a button of the conversations: Submit on a card, a guided /new answer, submit anyway."""
    query = update.callback_query
    user = update.effective_user
    if query is None or user is None:
        return
    services = context.services
    default = services.settings.LANGUAGE
    who = await services.db(lambda session: lookup(session, user.id, default))
    if who is None:
        await query.answer(t(guess_lang(update, default), "unbound"), show_alert=True)
        return
    pressed = callbacks.decode(query.data)
    if pressed is None:
        await query.answer(t(who.lang, "button_invalid"), show_alert=True)
        return
    if is_group(update):
        await query.answer(t(who.lang, "private_only"), show_alert=True)
        return
    try:
        if pressed.action == "submit":
            await press_submit(update, context, who, pressed)
        elif pressed.action == "new_flow":
            await press_new(update, context, who, pressed)
        elif pressed.action == "submit_flow":
            await press_submit_anyway(update, context, who, pressed)
        else:
            await query.answer(t(who.lang, "button_invalid"), show_alert=True)
    except Refused as refused:
        await query.answer(explain(who.lang, refused), show_alert=True)


async def press_submit(
    update: Update, context: Context, who: Who, pressed: callbacks.Press
) -> None:
    """The Submit button on a card: open the submit flow, as /submit N would."""
    query = update.callback_query
    assert query is not None
    # A refusal propagates before the answer, so the press is answered exactly once.
    count, version = await start_submission(
        context, who, pressed.number, None, version=pressed.version or -1
    )
    await query.answer(t(who.lang, "submit_opened", number=pressed.number))
    await say_submission_open(update, context, who, pressed.number, count, version)


async def _drop_buttons(update: Update) -> None:
    # The question is answered: its buttons go, so nobody presses them twice.
    query = update.callback_query
    if query is None:
        return
    with contextlib.suppress(BadRequest):
        await query.edit_message_reply_markup(reply_markup=None)


async def press_new(update: Update, context: Context, who: Who, pressed: callbacks.Press) -> None:
    """A button of the guided /new: an org, skip, a severity, done, the default date, confirm."""
    query = update.callback_query
    assert query is not None
    step = NEW_BUTTONS.get(pressed.arg)
    flow = await current_flow(context, who)
    if (
        step is None
        or flow is None
        or flow.name != "new"
        or flow.step != step
        or flow.data.get("nonce") != pressed.version
    ):
        await query.answer(t(who.lang, "button_stale"))
        await _drop_buttons(update)
        return
    if pressed.arg == "no":
        await context.services.db(lambda session: clear_draft(session, who.member_id))
        await query.answer()
        await _drop_buttons(update)
        await reply(update, t(who.lang, "cancelled"))
        return
    await query.answer()
    await _drop_buttons(update)
    if pressed.arg == "ok":
        await confirm_new(update, context, who, flow)
        return
    answer = Answer(
        org_id=pressed.number if pressed.arg == "org" else None,
        skip=pressed.arg == "skip",
        severity=pressed.arg.removeprefix("sev.") if pressed.arg.startswith("sev.") else None,
        done=pressed.arg == "done",
        default_due=pressed.arg == "due",
    )
    await answer_new(update, context, who, flow, answer)


async def press_submit_anyway(
    update: Update, context: Context, who: Who, pressed: callbacks.Press
) -> None:
    """ "Submit without evidence": the one time the bot asks (SPEC §7), answered yes."""
    query = update.callback_query
    assert query is not None
    flow = await current_flow(context, who)
    if (
        pressed.arg != "go"
        or flow is None
        or flow.name != "submit"
        or flow.number != pressed.number
        or flow.data.get("nonce") != pressed.version
    ):
        await query.answer(t(who.lang, "button_stale"))
        await _drop_buttons(update)
        return
    await query.answer()
    await _drop_buttons(update)
    try:
        await finish_submission(update, context, who, flow, anyway=True)
    except Refused as refused:
        await reply(update, explain(who.lang, refused))


def handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    """The conversations: their commands, their buttons, then free messages (after commands)."""
    evidence = (
        (filters.TEXT & ~filters.COMMAND)
        | filters.PHOTO
        | filters.Document.ALL
        | filters.VOICE
        | filters.AUDIO
        | filters.VIDEO
        | filters.VIDEO_NOTE
        | filters.LOCATION
    )
    # Free messages only in private chats: a work chat's talk is not evidence,
    # and nothing there should make the bot answer.
    free = filters.UpdateType.MESSAGE & filters.ChatType.PRIVATE & evidence
    return [
        CommandHandler("new", new),
        CommandHandler("commit", commit),
        CommandHandler("task", task),
        CommandHandler("duty", duty),
        CommandHandler("submit", submit),
        CommandHandler("done", done),
        CommandHandler("cancel", cancel),
        CallbackQueryHandler(press, pattern=r"^(nw|sb|sub):"),
        MessageHandler(free, collect),
    ]
