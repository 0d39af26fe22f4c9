"""The follow-up actors: the reminder/escalation sweep and recurring responsibilities.

The scheduler enqueues `sweep` (08:30 and 14:00) and `recur` (00:10) by name;
the work is models.sweep's and models.recurrence's. Both write in the outbox
and commit, then hand the new rows to tasks.delivery (marked enqueued before
the commit, so the pump does not enqueue them a second time); should that
fail, the pump finds the rows anyway.
"""

from __future__ import annotations

import logging

import dramatiq
from sqlmodel import Session

from models import clock
from models.db import transaction
from models.delivery import Changes, OutboxWatch, mark_enqueued
from models.holidays import load_calendar
from models.recurrence import recur as recur_occurrences
from models.summaries import Facts
from models.sweep import SweepReport
from models.sweep import sweep as sweep_ladder
from settings import Settings
from tasks import runtime
from tasks.broker import configured_broker
from tasks.delivery import enqueue_changes

log = logging.getLogger(__name__)

#: A sweep of a city ledger (a million items) takes minutes the first time.
SWEEP_TIME_LIMIT = 30 * 60 * 1000  # ms
#: Retries of a follow-up that raised (the database went away); each rerun is harmless.
FOLLOWUP_MAX_RETRIES = 3
#: First back-off of such a retry; it doubles each time.
FOLLOWUP_MIN_BACKOFF = 60_000  # ms


def facts_now(session: Session, settings: Settings) -> Facts:
    """Today in the deployment's zone, the working-day calendar and the warning window."""
    return Facts(
        today=clock.today(settings.zone),
        calendar=load_calendar(session),
        warn_days=settings.WARN_DAYS,
    )


def _hand_over(changes: Changes) -> None:
    # After the commit; the rows are safe, so a failure here only waits for the pump.
    try:
        enqueue_changes(changes)
    except Exception:  # noqa: BLE001 - the pump sends what could not be enqueued
        log.warning(
            "could not enqueue %d notification(s); the pump will",
            len(changes.notifications),
            exc_info=True,
        )


@dramatiq.actor(
    broker=configured_broker(),
    max_retries=FOLLOWUP_MAX_RETRIES,
    min_backoff=FOLLOWUP_MIN_BACKOFF,
    time_limit=SWEEP_TIME_LIMIT,
)
def sweep() -> None:
    """Owe today's reminders, overdue alerts and escalations (SPEC §5's ladder):
    one notification per (item, stage, due date, recipient), level-2 inquiry
    notices as .docx attachments, risen escalation levels with their events;
    committed batch by batch, each batch's rows then enqueued for delivery.

    Running twice is harmless: the outbox keys are unique, so a second run the
    same day owes nothing new, and a level is stored only when it rises.
    """
    rt = runtime()
    settings = rt.settings
    with transaction(rt.engine) as session:

        def commit(batch: SweepReport) -> None:
            mark_enqueued(session, batch.notification_ids, now=clock.now())
            session.commit()
            changes = Changes(
                tuple(batch.notification_ids), tuple(number for number, _ in batch.escalated)
            )
            if changes:
                _hand_over(changes)

        report = sweep_ladder(
            session,
            facts_now(session, settings),
            remind_days=settings.REMIND_DAYS,
            escalate_days=settings.ESCALATE_DAYS,
            language=settings.LANGUAGE,
            on_batch=commit,
        )
    log.info("sweep: %s", report.as_dict())


@dramatiq.actor(
    broker=configured_broker(), max_retries=FOLLOWUP_MAX_RETRIES, min_backoff=FOLLOWUP_MIN_BACKOFF
)
def recur() -> None:
    """Create the task of every occurrence of a recurring responsibility (RRULE)
    from today to a week ahead, and owe each its "assigned" notifications.

    Running twice is harmless: each occurrence's task has a unique external
    reference (rrule-<number>-<YYYYMMDD>), so it is created once.
    """
    rt = runtime()
    settings = rt.settings
    with transaction(rt.engine) as session:
        watch = OutboxWatch(session)
        report = recur_occurrences(
            session,
            today=clock.today(settings.zone),
            zone=settings.zone,
            language=settings.LANGUAGE,
        )
        changes = watch.seal(session)
    if report.created or report.bad_rules:
        log.info(
            "recur: %d task(s) created from %d responsibilities; unusable rules on %s",
            len(report.created),
            report.responsibilities,
            report.bad_rules or "none",
        )
    if changes:
        _hand_over(changes)
