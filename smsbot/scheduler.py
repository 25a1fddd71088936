"""APScheduler wiring for check-ins: two thin jobs, no business logic.

The rows are the source of truth, so jobs live only in memory: a restarted scheduler
(or several ``smsbot worker`` processes) simply dispatches whatever the database says is due.
"""

from __future__ import annotations

import os
import socket

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from smsbot.config import Settings
from smsbot.db import Database
from smsbot.dispatch import DispatchReport, dispatch_due, maintenance
from smsbot.messaging import Transport
from smsbot.models import utcnow

MAINTENANCE_HOUR_UTC = 7  # night-time in the Americas, morning in Europe: a quiet moment
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


def build_scheduler(
    db: Database, transport: Transport, settings: Settings, *, background: bool = True
) -> BaseScheduler:
    """A scheduler (not started) that dispatches due check-ins and runs daily maintenance.

    ``background`` for ``smsbot serve`` (runs beside the web app); blocking for ``smsbot worker``.
    """
    scheduler = (BackgroundScheduler if background else BlockingScheduler)(timezone="UTC")
    # One run at a time per process; after a stall, one catch-up run, not a burst.
    scheduler.add_job(
        run_dispatch,
        "interval",
        seconds=settings.dispatch_interval_seconds,
        args=(db, transport, settings),
        id="dispatch_checkins",
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
    return scheduler


def run_dispatch(db: Database, transport: Transport, settings: Settings) -> DispatchReport:
    return dispatch_due(db, transport, settings, utcnow(), worker_id=WORKER_ID)


def run_maintenance(db: Database, settings: Settings) -> dict[str, int]:
    return maintenance(db, settings, utcnow())
