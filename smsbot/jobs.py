"""APScheduler wiring: thin jobs for check-ins, consent and clinic alert retries, the inbound
sweeper and retention; no logic.

The rows are the source of truth, so jobs live only in memory: a restarted scheduler
(or several ``smsbot worker`` processes) simply dispatches whatever the database says is due.
"""

from __future__ import annotations

import os
import socket

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from smsbot import audit, outbox
from smsbot.alerts import deliver_pending_alerts, escalate_due
from smsbot.checkins.dispatch import DispatchReport, dispatch_due, maintenance
from smsbot.clinics import retry_consents
from smsbot.config import Settings
from smsbot.conversation.sweeper import SweepReport, sweep_unprocessed
from smsbot.db import Database
from smsbot.messaging import Transport
from smsbot.models import utcnow
from smsbot.privacy import purge_old_bodies

ALERT_DELIVERY_INTERVAL_SECONDS = 10
OUTBOX_INTERVAL_SECONDS = 1  # the backstop for inbound follow-ups a web process left undone
MAINTENANCE_HOUR_UTC = 7  # night-time in the Americas, morning in Europe: a quiet moment
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


def build_scheduler(
    db: Database, transport: Transport, settings: Settings, *, background: bool = True
) -> BaseScheduler:
    """A scheduler (not started): check-in dispatch, alert retries, the inbound sweeper, upkeep.

    ``background`` for ``smsbot serve`` (runs beside the web app); blocking for ``smsbot worker``.
    """
    scheduler = (BackgroundScheduler if background else BlockingScheduler)(timezone="UTC")
    # One run at a time per process; after a stall, one catch-up run, not a burst.
    every_few_seconds = (
        (run_dispatch, settings.dispatch_interval_seconds, "dispatch_checkins"),
        (run_alert_deliveries, ALERT_DELIVERY_INTERVAL_SECONDS, "deliver_alerts"),
        (run_consent_retries, settings.dispatch_interval_seconds, "retry_consents"),
        (run_sweep, settings.sweep_interval_seconds, "sweep_inbound"),
        (run_drain_outbox, OUTBOX_INTERVAL_SECONDS, "drain_outbox"),
    )
    for job, seconds, job_id in every_few_seconds:
        scheduler.add_job(
            job,
            "interval",
            seconds=seconds,
            args=(db, transport, settings),
            id=job_id,
            max_instances=1,
            coalesce=True,
        )
    scheduler.add_job(
        run_maintenance,
        "cron",
        hour=MAINTENANCE_HOUR_UTC,
        args=(db, settings),
        id="checkin_maintenance",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=3600,
    )
    # The purges, each only when its retention is set: message bodies, then the access audit.
    purges = (
        (settings.retention_days, run_retention, "retention_purge", 30),
        (settings.audit_retention_days, run_audit_retention, "audit_retention_purge", 45),
    )
    for days, purge, job_id, minute in purges:
        if days:
            scheduler.add_job(
                purge,
                "cron",
                hour=MAINTENANCE_HOUR_UTC,
                minute=minute,
                args=(db, settings),
                id=job_id,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=3600,
            )
    return scheduler


def run_dispatch(db: Database, transport: Transport, settings: Settings) -> DispatchReport:
    return dispatch_due(db, transport, settings, utcnow(), worker_id=WORKER_ID)


def run_consent_retries(db: Database, transport: Transport, settings: Settings) -> int:
    """Consent texts whose outcome was unknown, settled with the provider; those that failed
    for a temporary reason, sent again when their backoff ends."""
    return retry_consents(db, transport, settings, utcnow())


def run_maintenance(db: Database, settings: Settings) -> dict[str, int]:
    return maintenance(db, settings, utcnow())


def run_alert_deliveries(db: Database, transport: Transport, settings: Settings) -> dict[str, int]:
    """Pages due along the escalation chain, and retries of clinic alerts (the first attempt is
    made right after the inbound message)."""
    escalate_due(db, settings, utcnow())
    return deliver_pending_alerts(db, transport, settings)


def run_sweep(db: Database, transport: Transport, settings: Settings) -> SweepReport:
    """Triage texts a failed request left unprocessed; page their clinics at once if needed."""
    report = sweep_unprocessed(db, transport, settings)
    if report.paged:
        deliver_pending_alerts(db, transport, settings)
    return report


def run_drain_outbox(db: Database, transport: Transport, settings: Settings) -> outbox.DrainReport:
    """Inbound follow-ups no web process did (it died, or had none to spare); page at once if needed."""
    report = outbox.drain_all(db, settings)
    if report.paged:
        deliver_pending_alerts(db, transport, settings)
    return report


def run_retention(db: Database, settings: Settings) -> int:
    with db.session() as session:
        return purge_old_bodies(session, retention_days=settings.retention_days, now=utcnow())


def run_audit_retention(db: Database, settings: Settings) -> int:
    """Delete access audit lines older than their own retention."""
    with db.session() as session:
        return audit.purge_expired(session, retention_days=settings.audit_retention_days, now=utcnow())
