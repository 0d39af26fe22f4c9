"""The guided /new: one question per step (STEPS), then the item with its evidence.

The flow is the ``new`` draft; its data gathers the answers and the evidence
sent along the way (at any step). Its buttons carry the draft's nonce and
are good only for the step they were drawn for: an answered question loses
its buttons, and an old button does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlmodel import Session
from telegram import Update

from bot import callbacks
from bot.arguments import typed_day
from bot.cards import Card
from bot.conversations.attach import open_window
from bot.conversations.evidence import Entry, add_entry, archive_all, checked_entry
from bot.conversations.flows import (
    NEW,
    Flow,
    current_flow,
    explain,
    flow_of,
    locked_draft,
    new_nonce,
    refuse_if_gathering,
    snapshot,
)
from bot.conversations.forms import (
    candidates,
    may_create_somewhere,
    parse_severity,
    resolve,
    title_from,
)
from bot.conversations.turns import in_turn
from bot.guard import Who, button, reply
from bot.replies import drop_buttons, send
from bot.services import Context
from models.deadlines import default_due_date
from models.drafts import clear_draft, start_draft, update_draft
from models.ledger import InputRefused, NewItem, attach_evidence, check_new_item, create_item
from models.limits import DESCRIPTION_MAX
from models.permissions import Actor, can_create
from models.states import Refused
from models.summaries import Facts
from models.tables import Org
from models.texts import SEVERITY, severity_word, t

#: The questions, in order.
STEPS = ("org", "category", "severity", "description", "evidence", "due", "confirm")
#: Words that answer a question the way its button would.
SKIP_WORDS = frozenset({"跳过", "无", "skip", "none", "-"})
DONE_WORDS = frozenset({"完成", "好了", "done"})
CONFIRM_WORDS = frozenset({"确认", "确定", "是", "yes", "y", "ok"})
#: Button arguments → the step they answer.
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


@dataclass(frozen=True)
class Answer:
    """An answer to the current question: typed, or a button."""

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


# -- the questions ---------------------------------------------------------------------------


def ask(lang: str, flow: Flow) -> Card:
    """The current question, with its buttons."""
    data, nonce = flow.data, int(flow.data.get("nonce", 0))

    def choice(label: str, arg: str) -> tuple[str, str]:
        return label, callbacks.encode("new_flow", 0, nonce, arg)

    step = STEPS.index(flow.step) + 1 if flow.step in STEPS else 1
    head = t(lang, "new_step", step=step, steps=len(STEPS))
    if flow.step == "category":
        return Card(
            f"{head}{t(lang, 'new_ask_category')}", ((choice(t(lang, "btn_skip"), "skip"),),)
        )
    if flow.step == "severity":
        row = tuple(choice(severity_word(lang, value), f"sev.{value}") for value in SEVERITY)
        return Card(f"{head}{t(lang, 'new_ask_severity')}", (row,))
    if flow.step == "description":
        return Card(f"{head}{t(lang, 'new_ask_description', max=DESCRIPTION_MAX)}")
    if flow.step == "evidence":
        count = len(data.get("evidence", []))
        text = f"{head}{t(lang, 'new_ask_evidence', count=count)}"
        return Card(text, ((choice(t(lang, "btn_done"), "done"),),))
    if flow.step == "due":
        default = data.get("default_due", "")
        text = f"{head}{t(lang, 'new_ask_due', due=default)}"
        return Card(text, ((choice(t(lang, "btn_due_default", due=default), "due"),),))
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
            ((choice(t(lang, "btn_confirm"), "ok"), choice(t(lang, "btn_cancel"), "no")),),
        )
    return Card(f"{head}{t(lang, 'new_ask_org')}")


def ask_again(lang: str, flow: Flow, first: str) -> Card:
    """The current question again, after `first` (why it is asked again)."""
    card = ask(lang, flow)
    return Card(f"{first}\n\n{card.text}", card.buttons)


def pick_org(lang: str, flow: Flow, value: str, choices: list[tuple[int, str]]) -> Card:
    """Buttons for the orgs an ambiguous name fragment matched."""
    nonce = int(flow.data.get("nonce", 0))
    rows = tuple(
        ((label, callbacks.encode("new_flow", org_id, nonce, "org")),) for org_id, label in choices
    )
    return Card(t(lang, "new_pick_org", value=value), rows)


# -- the answers (inside one `services.db` transaction) --------------------------------------


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
        typed = data["default_due"] if answer.default_due else answer.text
        data["due"] = typed_day(typed, facts).isoformat()
        return "confirm"
    return step


# -- the steps as the member takes them --------------------------------------------------------


async def begin(update: Update, context: Context, who: Who) -> None:
    """`/new` alone: ask the first question, or the current one of an unfinished /new."""

    def work(session: Session) -> tuple[Flow, bool]:
        may_create_somewhere(who.actor, "problem")
        draft = locked_draft(session, who.member_id)
        if draft is not None and draft.flow == NEW:
            return snapshot(draft), True
        refuse_if_gathering(draft)
        data = {"nonce": new_nonce(), "kind": "problem", "evidence": []}
        return snapshot(start_draft(session, who.member_id, NEW, step="org", data=data)), False

    flow, resumed = await context.services.db(work)
    card = ask(who.lang, flow)
    if resumed:
        card = Card(f"{t(who.lang, 'new_resume')}\n{card.text}", card.buttons)
    await send(update, context, who, card)


async def answer_new(
    update: Update, context: Context, who: Who, flow: Flow, answer: Answer
) -> None:
    """Move the guided /new on by one answer and ask the next question (or offer orgs).

    A refused answer is explained and the question asked again; an answer to a
    step the flow has left is stale.
    """
    services = context.services

    def work(session: Session) -> Step | None:
        draft = locked_draft(session, who.member_id)
        now = flow_of(draft)
        if draft is None or now is None or now.name != NEW or now.step != flow.step:
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
        await send(update, context, who, ask_again(who.lang, flow, explain(who.lang, refused)))
        return
    if outcome is None:
        await reply(update, t(who.lang, "button_stale"))
    elif outcome.choices:
        card = pick_org(who.lang, outcome.flow, outcome.value, outcome.choices)
        await send(update, context, who, card)
    else:
        await send(update, context, who, ask(who.lang, outcome.flow))


async def gather_for_new(
    update: Update, context: Context, who: Who, flow: Flow, entry: Entry
) -> None:
    """Keep evidence sent during the guided /new (at any step), and ask the question again."""

    def work(session: Session) -> tuple[Flow, int] | None:
        draft = locked_draft(session, who.member_id)
        now = flow_of(draft)
        if draft is None or now is None or now.name != NEW:
            return None
        add_entry(now.data, entry)
        return snapshot(update_draft(session, draft, data=now.data)), len(now.data["evidence"])

    outcome = await context.services.db(work)
    if outcome is None:
        await reply(update, t(who.lang, "button_stale"))
        return
    now, count = outcome
    got = t(who.lang, "new_evidence_got", count=count)
    if now.step == "evidence":
        await send(update, context, who, Card(got, ask(who.lang, now).buttons))
    else:
        await send(update, context, who, ask_again(who.lang, now, got))


async def create_guided(update: Update, context: Context, who: Who, flow: Flow) -> bool:
    """Create the guided /new's item with its evidence, show the card, open the attach window.

    Returns False when the flow had moved on (nothing created).
    """
    services = context.services
    archived = await archive_all(context, flow.entries)

    def work(session: Session) -> Card | None:
        now = flow_of(locked_draft(session, who.member_id))
        if now is None or now.name != NEW or now.step != "confirm":
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
        return open_window(session, facts, who, item)

    card = await services.db(work)
    if card is None:
        return False
    await send(update, context, who, card)
    return True


async def confirm_new(update: Update, context: Context, who: Who, flow: Flow) -> None:
    """The guided /new confirmed: create, or say why not and ask again."""
    try:
        created = await create_guided(update, context, who, flow)
    except Refused as refused:
        await send(update, context, who, ask_again(who.lang, flow, explain(who.lang, refused)))
        return
    if not created:
        await reply(update, t(who.lang, "button_stale"))


async def take_message(
    update: Update, context: Context, who: Who, flow: Flow, entry: Entry
) -> None:
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
            await send(
                update, context, who, ask_again(who.lang, flow, t(who.lang, "new_use_buttons"))
            )
    else:
        await answer_new(update, context, who, flow, Answer(text=text))


@in_turn
@button(explain=explain)
async def press_new(update: Update, context: Context, who: Who, press: callbacks.Press) -> None:
    """Take a guided /new button: an org, skip, a severity, done, the default date, confirm."""
    query = update.callback_query
    assert query is not None
    step = NEW_BUTTONS.get(press.arg)
    flow = await current_flow(context, who)
    if (
        step is None
        or flow is None
        or flow.name != NEW
        or flow.step != step
        or flow.data.get("nonce") != press.version
    ):
        await query.answer(t(who.lang, "button_stale"))
        await drop_buttons(update)
        return
    await query.answer()
    await drop_buttons(update)
    if press.arg == "no":
        await context.services.db(lambda session: clear_draft(session, who.member_id))
        await reply(update, t(who.lang, "cancelled"))
    elif press.arg == "ok":
        await confirm_new(update, context, who, flow)
    else:
        answer = Answer(
            org_id=press.number if press.arg == "org" else None,
            skip=press.arg == "skip",
            severity=press.arg.removeprefix("sev.") if press.arg.startswith("sev.") else None,
            done=press.arg == "done",
            default_due=press.arg == "due",
        )
        await answer_new(update, context, who, flow, answer)
