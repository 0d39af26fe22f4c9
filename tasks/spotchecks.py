"""The spot-check actors: the month's unannounced inspections and look-backs.

The scheduler enqueues `assign_spot_checks` and `assign_lookbacks` by name,
monthly; the work is models.spotchecks'.
"""

from __future__ import annotations

import logging

import dramatiq

from models import clock
from models.db import transaction
from models.spotchecks import assign_lookbacks as assign_month_lookbacks
from models.spotchecks import assign_spot_checks as assign_month_spot_checks
from models.spotchecks import month
from tasks import runtime
from tasks.broker import configured_broker

log = logging.getLogger(__name__)

#: Retries of an assignment that raised (the database went away); each is harmless.
ASSIGN_MAX_RETRIES = 3
#: First back-off of such a retry; it doubles each time.
ASSIGN_MIN_BACKOFF = 60_000  # ms


@dramatiq.actor(
    broker=configured_broker(), max_retries=ASSIGN_MAX_RETRIES, min_backoff=ASSIGN_MIN_BACKOFF
)
def assign_spot_checks(period: str | None = None) -> None:
    """Sample the month's units for an unannounced comprehensive inspection
    (每月随机抽查, weighted toward last month's poor performers, never more than
    MAX_INSPECTIONS_PER_YEAR a year), assign each to a covering inspection group
    and owe each group member one "spotcheck" notification listing them; the
    units are never told.

    `period` None: the current month (enqueue it on the 1st); else "2026-03".
    Running twice is harmless: a month that has its checks already is left
    as it is — same sample, nothing new written or owed.
    """
    settings = runtime().settings
    with transaction(runtime().engine) as session:
        today = clock.today(settings.zone)
        chosen = month(period, today)
        done = assign_month_spot_checks(
            session,
            chosen,
            today=today,
            zone=settings.zone,
            max_per_year=settings.MAX_INSPECTIONS_PER_YEAR,
        )
    log.info(
        "spot checks %s: %d unit(s)%s, %d notification(s); uncovered %s; at the cap %s",
        chosen.key,
        len(done.checks),
        "" if done.new else " (assigned before)",
        done.notified,
        ", ".join(done.uncovered) or "none",
        ", ".join(done.capped) or "none",
    )
    if done.uncovered:
        log.warning("spot checks %s: no inspection group covers %s", chosen.key, done.uncovered)


@dramatiq.actor(
    broker=configured_broker(), max_retries=ASSIGN_MAX_RETRIES, min_backoff=ASSIGN_MIN_BACKOFF
)
def assign_lookbacks(period: str | None = None) -> None:
    """Sample items closed 30–90 days before the month for a look-back (回头看),
    assign each to a covering inspection group and owe each group member one
    "spotcheck" notification listing them; the units are never told.

    `period` None: the current month (enqueue it on the 1st); else "2026-03".
    Running twice is harmless: a month that has its look-backs already is left
    as it is — same sample, nothing new written or owed.
    """
    settings = runtime().settings
    with transaction(runtime().engine) as session:
        chosen = month(period, clock.today(settings.zone))
        done = assign_month_lookbacks(session, chosen, zone=settings.zone)
    log.info(
        "look-backs %s: %d item(s)%s, %d notification(s); orgs no group covers: %s",
        chosen.key,
        len(done.checks),
        "" if done.new else " (assigned before)",
        done.notified,
        ", ".join(done.uncovered) or "none",
    )
