"""The APScheduler wiring: every periodic job is scheduled once per process, and runs."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from apscheduler.triggers.interval import IntervalTrigger

from smsbot.jobs import build_scheduler
from smsbot.messaging.console import MemoryTransport
from smsbot.models import CheckIn, utcnow
from tests.checkin_fixtures import add_family, checkin_database, make_settings

db = pytest.fixture(checkin_database, name="db")


def test_the_scheduler_dispatches_due_checkins_on_its_interval(db):
    # Quiet hours 00:00–00:00 are empty, so the test passes at any time of day.
    settings = make_settings(
        dispatch_interval_seconds=0.05, quiet_hours_start="00:00", quiet_hours_end="00:00"
    )
    with db.session() as session:
        family = add_family(session)
        session.add(
            CheckIn(
                family_id=family.id,
                programme="after_routine",
                step=1,
                status="pending",
                attempts=0,
                due_at=utcnow() - timedelta(seconds=1),
                dedupe_key="due-now",
            )
        )
    outbox = MemoryTransport()
    scheduler = build_scheduler(db, outbox, settings)
    dispatch = scheduler.get_job("dispatch_checkins")
    assert isinstance(dispatch.trigger, IntervalTrigger)
    assert (dispatch.max_instances, dispatch.coalesce) == (1, True)
    assert scheduler.get_job("checkin_maintenance") is not None

    scheduler.start()
    try:
        deadline = time.monotonic() + 5
        while not outbox.outbox and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        scheduler.shutdown(wait=True)

    assert len(outbox.outbox) == 1


@pytest.mark.parametrize(("retention_days", "retention"), [(0, set()), (30, {"retention_purge"})])
def test_every_periodic_job_is_scheduled_once(db, retention_days: int, retention: set[str]) -> None:
    scheduler = build_scheduler(db, MemoryTransport(), make_settings(retention_days=retention_days))
    jobs = [job.id for job in scheduler.get_jobs()]
    expected = {
        "dispatch_checkins",
        "retry_consents",
        "deliver_alerts",
        "sweep_inbound",
        "drain_outbox",
        "checkin_maintenance",
        *retention,
    }
    assert sorted(jobs) == sorted(expected)


def test_the_access_audit_is_purged_on_its_own_retention(db) -> None:
    scheduler = build_scheduler(db, MemoryTransport(), make_settings(audit_retention_days=365))
    jobs = {job.id for job in scheduler.get_jobs()}
    assert "audit_retention_purge" in jobs and "retention_purge" not in jobs
