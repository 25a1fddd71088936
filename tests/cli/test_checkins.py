"""The operator commands and the APScheduler wiring around dispatch."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from apscheduler.triggers.interval import IntervalTrigger
from click.testing import CliRunner

from smsbot.cli.checkins import checkins
from smsbot.jobs import build_scheduler
from smsbot.messaging.console import MemoryTransport
from smsbot.models import CheckIn, utcnow
from tests.checkin_fixtures import RULES_DIR, add_family, checkin_database, make_settings

db = pytest.fixture(checkin_database, name="db")


def add_checkin(session, family, *, due_in: timedelta, **fields) -> None:
    values = {"programme": "after_routine", "step": 1, "status": "pending", "attempts": 0, **fields}
    session.add(
        CheckIn(family_id=family.id, due_at=utcnow() + due_in, dedupe_key=f"{family.id}:{due_in}", **values)
    )


def test_checkins_list_masks_phones_and_due_shows_only_what_is_due(db):
    with db.session() as session:
        family = add_family(session)
        add_checkin(
            session,
            family,
            due_in=timedelta(minutes=-5),
            attempts=2,
            last_error="Twilio 30001: queue overflow",
        )
        add_checkin(session, family, due_in=timedelta(days=1))
    env = {"SMSBOT_DATABASE_URL": db.url, "SMSBOT_RULES_DIR": str(RULES_DIR)}

    everything = CliRunner().invoke(checkins, ["list"], env=env)
    due = CliRunner().invoke(checkins, ["list", "--due"], env=env)

    assert everything.exit_code == 0, everything.output
    lines = everything.output.splitlines()
    assert lines[0].split() == [
        "id",
        "phone",
        "programme",
        "step",
        "status",
        "due_at",
        "(UTC)",
        "attempts",
        "last_error",
    ]
    assert [line.split()[0] for line in lines[1:]] == ["2", "1"]
    assert "+1555" not in everything.output and "•••0001" in everything.output
    assert [line.split()[0] for line in due.output.splitlines()[1:]] == ["1"]
    assert due.output.splitlines()[1].split(maxsplit=8)[7:] == ["2", "Twilio 30001: queue overflow"]


def test_the_scheduler_dispatches_due_checkins_on_its_interval(db):
    # Quiet hours 00:00–00:00 are empty, so the test passes at any time of day.
    settings = make_settings(
        dispatch_interval_seconds=0.05, quiet_hours_start="00:00", quiet_hours_end="00:00"
    )
    with db.session() as session:
        add_checkin(session, add_family(session), due_in=timedelta(seconds=-1))
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
