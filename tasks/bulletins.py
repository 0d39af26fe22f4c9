"""The bulletin actor: the "four ones" (四个一) owed to the chats configured for them.

The scheduler enqueues `bulletin` by name; the work is models.bulletins'.
"""

from __future__ import annotations

import logging

import dramatiq

from models.bulletins import bulletin_facts, default_period, owe_bulletins
from models.db import transaction
from models.rankings import parse_period
from tasks import runtime
from tasks.broker import configured_broker

log = logging.getLogger(__name__)

#: A weekly report draws a chart and writes the scope's whole ledger as .xlsx.
BULLETIN_TIME_LIMIT = 15 * 60 * 1000  # ms
#: Retries of a bulletin that raised (the database went away); each is harmless.
BULLETIN_MAX_RETRIES = 3
#: First back-off of such a retry; it doubles each time.
BULLETIN_MIN_BACKOFF = 60_000  # ms


@dramatiq.actor(
    broker=configured_broker(),
    max_retries=BULLETIN_MAX_RETRIES,
    min_backoff=BULLETIN_MIN_BACKOFF,
    time_limit=BULLETIN_TIME_LIMIT,
)
def bulletin(kind: str, period: str | None = None) -> None:
    """Owe the `kind` bulletin (daily|weekly|monthly|quarterly) for `period` to
    every chat of BULLETIN_CHATS configured for it: one notification per chat
    (stage "bulletin-<kind>", occurrence the period key), with its text in zh
    and en and, weekly, a PNG chart and the scope's .xlsx as attachments. The
    delivery jobs send the rows.

    `period` None: daily → today (enqueue it in the evening); weekly, monthly,
    quarterly → the last complete week, month or quarter (enqueue it at the
    start of the next one). Otherwise a key: "2026-03-02", "2026-W10",
    "2026-03", "2026-Q1".

    Running twice is harmless: a chat already owed the period's bulletin is
    skipped before anything is built, and the outbox key (stage, chat, period)
    is unique. A quiet day's daily digest is not sent at all.
    """
    settings = runtime().settings
    with transaction(runtime().engine) as session:
        facts = bulletin_facts(
            session, zone=settings.zone, warn_days=settings.WARN_DAYS, lang=settings.LANGUAGE
        )
        chosen = parse_period(period, kind) if period else default_period(kind, facts.today)
        results = owe_bulletins(session, kind, chosen, settings.BULLETIN_CHATS, bf=facts)
    for result in results:
        log.info(
            "bulletin %s %s → chat %s (%s): %s",
            kind,
            chosen.key,
            result.chat_id,
            result.scope_code or "all",
            result.outcome,
        )
