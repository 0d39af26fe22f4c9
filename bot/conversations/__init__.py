"""Conversations: /new (one-shot and guided), /commit /task /duty, /submit … /done,
reasons asked for by buttons, reply-to-attach, /cancel.

Every step is a row (models.drafts), written as the message arrives, and every
handler reads the row, never memory: a restart — even kill -9 — resumes a
flow where it stood (DESIGN "Conversations"). One module per concern:

- ``flows`` — the open flow as a snapshot, the row lock, and the rule that a
  flow holding gathered material is never replaced silently.
- ``evidence`` — a Telegram message as evidence, and the EVIDENCE_DIR archive.
- ``turns`` — one person's updates reach these handlers one at a time, in order.
- ``forms`` — what people type to log an item (ORG | TITLE | DUE | SEVERITY).
- ``new`` — /new /commit /task /duty at once; ``guided`` — /new step by step.
- ``attach`` — the attach window after a creation, and replies to an item's messages.
- ``submit`` — /submit N, the evidence, /done; the Submit button on a card.
- ``reasons`` — the next text as the reason an action button asked for.
- ``routing`` — /done, /cancel and free messages, handed to the open flow.
"""

from __future__ import annotations

from telegram.ext import CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.conversations import guided, new, routing, submit
from bot.services import Handler


def handlers() -> list[Handler]:
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
        CommandHandler("new", new.new),
        CommandHandler("commit", new.commit),
        CommandHandler("task", new.task),
        CommandHandler("duty", new.duty),
        CommandHandler("submit", submit.submit),
        CommandHandler("done", routing.done),
        CommandHandler("cancel", routing.cancel),
        # Buttons by verb (bot/callbacks.py): Submit on a card, submit without
        # evidence, an answer of the guided /new.
        CallbackQueryHandler(submit.press_submit, pattern=r"^sub:"),
        CallbackQueryHandler(submit.press_submit_anyway, pattern=r"^sb:"),
        CallbackQueryHandler(guided.press_new, pattern=r"^nw:"),
        MessageHandler(free, routing.collect),
    ]
