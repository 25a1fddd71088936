"""Dispatching due check-ins: claims, quiet hours, grace, failures, answers and restarts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from smsbot.checkins.claims import MAX_ATTEMPTS
from smsbot.checkins.dispatch import dispatch_due, maintenance
from smsbot.checkins.schedule import (
    mark_undelivered,
    record_answer,
    schedule_after_decision,
    schedule_programme,
)
from smsbot.db import Database
from smsbot.messaging import TransportError
from smsbot.models import CheckIn, Event, Family, Message
from tests.checkin_fixtures import (
    PARENT_PHONE,
    add_enrollment,
    add_family,
    all_checkins,
    checkin_database,
    make_settings,
)

REPORTED = datetime(2026, 11, 27, 15)  # 10:00 in New York
DAY_1 = datetime(2026, 11, 28, 15)  # the routine programme's first check-in: 10:00 New York


class FailingTransport:
    """A transport whose provider answers every send with ``error`` (the seam a real one raises at)."""

    def __init__(self, error: TransportError) -> None:
        self.error = error
        self.calls = 0

    def send(self, to: str, body: str, **opts: Any) -> str:
        self.calls += 1
        raise self.error


db = pytest.fixture(checkin_database, name="db")


@pytest.fixture
def settings():
    return make_settings()


def report_routine(db: Database, settings, **family_fields: Any) -> None:
    with db.session() as session:
        family = add_family(session, **family_fields)
        schedule_after_decision(session, family, "routine", now=REPORTED, settings=settings)


def test_due_checkin_is_sent_with_its_provider_sid_and_a_message_row(db, settings, outbox):
    report_routine(db, settings)

    report = dispatch_due(db, outbox, settings, DAY_1)

    assert (report.sent, report.deferred, report.failed) == (1, 0, 0)
    [sms] = outbox.outbox
    assert sms.to == PARENT_PHONE
    assert sms.opts == {"validity_period": 3600}
    assert sms.body.startswith("How is Ana today?")
    assert sms.body.endswith(
        "Reply 1 better, 2 same, 3 worse, or tell us what you see. Text anytime; in an emergency call 911."
    )
    first = all_checkins(db)[0]
    assert (first.status, first.sent_at, first.provider_sid, first.attempts) == ("sent", DAY_1, sms.sid, 1)
    with db.session() as session:
        message = session.scalars(select(Message)).one()
    assert (message.direction, message.kind, message.checkin_id, message.provider_sid, message.body) == (
        "out",
        "checkin",
        first.id,
        sms.sid,
        sms.body,
    )


def test_spanish_family_without_a_baby_name_gets_the_spanish_text(db, settings, outbox):
    report_routine(db, settings, language="es", baby_name=None)

    dispatch_due(db, outbox, settings, DAY_1)

    assert outbox.outbox[0].body.startswith("¿Como esta su bebe?")


def test_a_restart_sends_what_is_due_exactly_once(db, settings, outbox):
    report_routine(db, settings)
    dispatch_due(db, outbox, settings, DAY_1)

    restarted = Database(db.url)  # a new process on the same database
    try:
        again = dispatch_due(restarted, outbox, settings, DAY_1 + timedelta(minutes=1))
    finally:
        restarted.engine.dispose()

    assert not again
    assert len(outbox.outbox) == 1


def test_nothing_is_sent_before_it_is_due(db, settings, outbox):
    report_routine(db, settings)

    assert not dispatch_due(db, outbox, settings, DAY_1 - timedelta(seconds=1))
    assert outbox.outbox == []


def test_a_checkin_due_in_quiet_hours_waits_for_the_morning(db, settings, outbox):
    report_routine(db, settings)
    late_evening = datetime(2026, 11, 29, 1, 30)  # 20:30 in New York, after a day of downtime

    report = dispatch_due(db, outbox, settings, late_evening)

    assert report.deferred == 1 and outbox.outbox == []
    first = all_checkins(db)[0]
    assert (first.status, first.due_at) == ("pending", datetime(2026, 11, 29, 14))  # 09:00 New York
    assert dispatch_due(db, outbox, settings, datetime(2026, 11, 29, 14)).sent == 1


def test_clinic_quiet_hours_override_the_deployment_window(db, settings, outbox):
    with db.session() as session:
        family = add_family(session)
        enrollment = add_enrollment(session, family)
        schedule_programme(
            session, family, "clinic_followup", start=REPORTED, enrollment=enrollment, settings=settings
        )
        # Scheduled for 10:00, then the clinic decides nothing goes out before 10:30.
        enrollment.clinic.quiet_hours_start, enrollment.clinic.quiet_hours_end = "18:00", "10:30"

    assert dispatch_due(db, outbox, settings, DAY_1).deferred == 1
    assert all_checkins(db)[0].due_at == datetime(2026, 11, 28, 15, 30)
    assert dispatch_due(db, outbox, settings, datetime(2026, 11, 28, 15, 30)).sent == 1


def test_a_checkin_older_than_the_grace_period_is_missed_not_sent(db, settings, outbox):
    report_routine(db, settings)

    report = dispatch_due(db, outbox, settings, DAY_1 + timedelta(hours=12, minutes=1))

    assert report.missed == 1 and outbox.outbox == []
    assert all_checkins(db)[0].status == "missed"


def test_opted_out_family_is_never_messaged(db, settings, outbox):
    report_routine(db, settings, opted_out_at=REPORTED)

    report = dispatch_due(db, outbox, settings, DAY_1 + timedelta(days=7))

    assert outbox.outbox == [] and report.skipped == 3
    assert {c.status for c in all_checkins(db)} == {"cancelled"}


def test_clinic_checkins_wait_for_consent_and_stop_when_the_enrollment_ends(db, settings, outbox):
    with db.session() as session:
        family = add_family(session)
        enrollment = add_enrollment(session, family, status="awaiting_consent")
        schedule_programme(
            session, family, "clinic_followup", start=REPORTED, enrollment=enrollment, settings=settings
        )
        enrollment_id = enrollment.id

    assert dispatch_due(db, outbox, settings, DAY_1).skipped == 1
    assert not dispatch_due(db, outbox, settings, DAY_1 + timedelta(minutes=30))  # held, not re-read
    with db.session() as session:
        session.get(type(enrollment), enrollment_id).status = "active"
    assert dispatch_due(db, outbox, settings, DAY_1 + timedelta(hours=1)).sent == 1
    with db.session() as session:
        session.get(type(enrollment), enrollment_id).status = "ended"

    report = dispatch_due(db, outbox, settings, datetime(2026, 11, 30, 15))

    assert report.skipped == 1 and len(outbox.outbox) == 1
    assert [c.status for c in all_checkins(db)][:2] == ["sent", "cancelled"]


def test_transient_errors_back_off_then_fail_after_the_limit(db, settings):
    report_routine(db, settings)
    transport = FailingTransport(TransportError("Twilio 20429: too many requests", code=20429, status=429))
    now = DAY_1
    retry_delays = []
    for _ in range(MAX_ATTEMPTS - 1):
        assert dispatch_due(db, transport, settings, now).retried == 1
        checkin = all_checkins(db)[0]
        retry_delays.append(checkin.due_at - now)
        assert dispatch_due(db, transport, settings, checkin.due_at - timedelta(seconds=1)).retried == 0
        now = checkin.due_at

    assert dispatch_due(db, transport, settings, now).failed == 1
    checkin = all_checkins(db)[0]
    assert (checkin.status, checkin.attempts, transport.calls) == ("failed", MAX_ATTEMPTS, MAX_ATTEMPTS)
    assert checkin.last_error == "Twilio 20429: too many requests"
    for attempt, delay in enumerate(retry_delays, start=1):
        nominal = timedelta(minutes=2 ** (attempt - 1))
        assert nominal * 0.8 <= delay <= nominal * 1.2


def test_a_permanent_error_fails_at_once_and_stays_visible(db, settings):
    report_routine(db, settings)
    transport = FailingTransport(
        TransportError("Twilio 21211: invalid 'To' number", code=21211, permanent=True)
    )

    assert dispatch_due(db, transport, settings, DAY_1).failed == 1

    checkin = all_checkins(db)[0]
    assert (checkin.status, checkin.last_error) == ("failed", "Twilio 21211: invalid 'To' number")
    assert not dispatch_due(db, transport, settings, DAY_1 + timedelta(hours=1))
    assert transport.calls == 1


def test_twilio_21610_opts_the_family_out_and_cancels_the_rest(db, settings, outbox):
    report_routine(db, settings)
    unsubscribed = TransportError(
        "Twilio 21610: recipient replied STOP", code=21610, permanent=True, opted_out=True
    )

    dispatch_due(db, FailingTransport(unsubscribed), settings, DAY_1)

    assert [c.status for c in all_checkins(db)] == ["failed", "cancelled", "cancelled"]
    with db.session() as session:
        assert session.scalars(select(Family)).one().opted_out_at == DAY_1
        assert session.scalars(select(Event.kind)).all() == ["opted_out"]
    assert not dispatch_due(db, outbox, settings, DAY_1 + timedelta(days=7))


def clinic_followup(db: Database, settings) -> list[datetime]:
    """Enroll Ana's family in the 5-step clinic programme; the steps' due times."""
    with db.session() as session:
        family = add_family(session)
        enrollment = add_enrollment(session, family)
        run = schedule_programme(
            session, family, "clinic_followup", start=REPORTED, enrollment=enrollment, settings=settings
        )
        return [c.due_at for c in run]


def test_three_unanswered_checkins_end_the_programme_with_one_gentle_message(db, settings, outbox):
    due_times = clinic_followup(db, settings)

    for due in due_times:
        dispatch_due(db, outbox, settings, due)

    assert len(outbox.outbox) == 4
    assert outbox.outbox[3].body.startswith("We haven't heard back, so we will stop checking in.")
    assert [c.status for c in all_checkins(db)] == ["sent", "sent", "sent", "ended", "cancelled"]
    with db.session() as session:
        assert session.scalars(select(Event.kind)).all() == ["checkins_ended"]


def test_an_answer_resets_the_unanswered_streak(db, settings, outbox):
    due_times = clinic_followup(db, settings)
    for due in due_times[:2]:
        dispatch_due(db, outbox, settings, due)
    with db.session() as session:
        record_answer(session, session.get(CheckIn, 2), "same", now=due_times[1] + timedelta(hours=1))

    for due in due_times[2:]:
        dispatch_due(db, outbox, settings, due)

    assert [c.status for c in all_checkins(db)] == ["sent", "answered", "sent", "sent", "sent"]


def test_a_stale_lease_from_a_crashed_worker_is_sent_once_after_recovery(db, settings, outbox):
    report_routine(db, settings)
    with db.session() as session:  # a worker claimed it, then died before sending
        checkin = session.get(CheckIn, 1)
        checkin.status, checkin.claimed_until = "sending", DAY_1 + timedelta(minutes=10)

    assert not dispatch_due(db, outbox, settings, DAY_1 + timedelta(minutes=5))  # lease still held
    report = dispatch_due(db, outbox, settings, DAY_1 + timedelta(minutes=11))

    assert (report.recovered, report.sent, len(outbox.outbox)) == (1, 1, 1)
    assert all_checkins(db)[0].status == "sent"


def test_an_undelivered_status_callback_marks_the_checkin_undelivered(db, settings, outbox):
    report_routine(db, settings)
    dispatch_due(db, outbox, settings, DAY_1)

    with db.session() as session:
        checkin = mark_undelivered(session, outbox.outbox[0].sid, 30003)
        assert mark_undelivered(session, "SMunknown", 30003) is None

    assert checkin is not None
    assert (checkin.status, checkin.last_error) == ("undelivered", "undelivered (Twilio error 30003)")


def test_maintenance_closes_unanswered_checkins_and_marks_stale_ones_missed(db, settings, outbox):
    report_routine(db, settings)
    dispatch_due(db, outbox, settings, DAY_1)

    counts = maintenance(db, settings, datetime(2026, 12, 2, 15))

    assert counts == {"unanswered": 1, "missed": 1}
    assert [c.status for c in all_checkins(db)] == ["unanswered", "missed", "pending"]


def test_two_programmes_due_together_text_the_family_once(db, settings, outbox):
    """A routine report's check-in and the clinic's follow-up both fall at 10:00: one text."""
    with db.session() as session:
        family = add_family(session)
        enrollment = add_enrollment(session, family)
        schedule_programme(
            session, family, "clinic_followup", start=REPORTED, enrollment=enrollment, settings=settings
        )
        schedule_after_decision(session, family, "routine", now=REPORTED, settings=settings)
        session.commit()

    dispatch_due(db, outbox, settings, DAY_1)

    assert len(outbox.outbox) == 1
    assert not outbox.outbox[0].body.startswith("Checking in from your clinic")
    due = [c for c in all_checkins(db) if c.due_at == DAY_1]
    assert sorted((c.programme, c.status) for c in due) == [
        ("after_routine", "sent"),
        ("clinic_followup", "cancelled"),
    ]
