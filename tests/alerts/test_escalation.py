"""Escalation until acknowledged: an open alert pages the clinic's chain (on-call phone, then
backups) after each delay, a new emergency text pages at once, and an acknowledgement stops
it; every step is on the alert's timeline. Time is a chosen ``now``, never a sleep."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from smsbot import alerts
from smsbot.alerts import chain_settings, escalation, timeline
from smsbot.clinics import InvalidFieldsError
from smsbot.config import ConfigError
from smsbot.models import Alert, AlertDelivery, Clinic, Enrollment, EscalationContact, Family
from tests.clinic_fixtures import *  # noqa: F403
from tests.clinic_fixtures import ONCALL
from tests.conftest import PARENT

BACKUP = "+15550108888"
HEAD_NURSE = "+15550107777"
# 15:00 UTC is 09:00 in Chicago (Riverside's zone): inside the default clinic hours.
MORNING = datetime(2026, 12, 1, 15, 0)
EMERGENCY_TEXT = "his lips are blue and his arms keep jerking"


@pytest.fixture
def settings(app):  # type: ignore[no-untyped-def]
    return app.extensions["smsbot.settings"]


@pytest.fixture
def family_id(db, enroll_consenting_parent) -> int:
    enrolled = enroll_consenting_parent(baby_name="Ana")
    with db.session() as session:
        return session.get(Enrollment, enrolled["id"]).family_id


@pytest.fixture
def backups(db, settings, world) -> None:
    """Riverside's chain: on-call, then Dr Backup (the level's delay), then the head nurse (5 min)."""
    with db.session() as session:
        riverside = session.get(Clinic, world.riverside_id)
        chain_settings.add_contact(session, settings, riverside, name="Dr Backup", phone="(555) 010-8888")
        chain_settings.add_contact(
            session, settings, riverside, name="Head nurse", phone="5550107777", delay_minutes=5
        )


def raise_alert(db, settings, family_id: int, now: datetime, level: str = "emergency") -> int:  # type: ignore[no-untyped-def]
    with db.session() as session:
        family = session.get(Family, family_id)
        (alert,) = alerts.raise_alert(
            session, settings, family, level=level, reason=level, message=None, now=now
        )
        return alert.id


def pages_to(outbox, phone: str) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for sent in outbox.outbox if sent.to == phone)


def run(db, outbox, settings, now: datetime) -> int:  # type: ignore[no-untyped-def]
    """One scheduler tick at ``now``: escalate what is due, then deliver."""
    paged = alerts.escalate_due(db, settings, now)
    alerts.deliver_pending_alerts(db, outbox, settings, now)
    return paged


def kinds(db, alert_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return [entry.kind for entry in timeline.entries(session, alert_id)]


def test_unacknowledged_emergency_pages_the_next_contact_after_its_delay_and_stops_once_acknowledged(
    db, settings, family_id, backups, outbox
):
    alert_id = raise_alert(db, settings, family_id, MORNING)
    run(db, outbox, settings, MORNING)
    assert (pages_to(outbox, ONCALL), pages_to(outbox, BACKUP)) == (1, 0)

    # Nobody answers: ten minutes (the emergency default) later the first backup is paged.
    assert run(db, outbox, settings, MORNING + timedelta(minutes=9, seconds=59)) == 0
    assert run(db, outbox, settings, MORNING + timedelta(minutes=10)) == 1
    assert (pages_to(outbox, ONCALL), pages_to(outbox, BACKUP), pages_to(outbox, HEAD_NURSE)) == (1, 1, 0)
    backup_page = next(sent.body for sent in outbox.outbox if sent.to == BACKUP)
    assert f"/dashboard/alerts/{alert_id}" in backup_page

    # The head nurse has a delay of her own: 5 minutes after the backup's page.
    assert run(db, outbox, settings, MORNING + timedelta(minutes=14)) == 0
    assert run(db, outbox, settings, MORNING + timedelta(minutes=15)) == 1
    assert pages_to(outbox, HEAD_NURSE) == 1

    with db.session() as session:
        alert = session.get(Alert, alert_id)
        assert alerts.acknowledge(
            session, alert, by="nurse@riverside.example", note="called", now=MORNING + timedelta(minutes=16)
        )
    # Acknowledged: however long we wait, nobody is paged again.
    for minutes in (25, 60, 600):
        assert run(db, outbox, settings, MORNING + timedelta(minutes=minutes)) == 0
    assert (pages_to(outbox, ONCALL), pages_to(outbox, BACKUP), pages_to(outbox, HEAD_NURSE)) == (1, 1, 1)
    assert kinds(db, alert_id) == [
        "raised", "paged", "delivered", "paged", "delivered", "paged", "delivered", "acknowledged"
    ]  # fmt: skip
    with db.session() as session:
        entries = timeline.entries(session, alert_id)
        assert [e.detail.get("contact") for e in entries if e.kind == "paged"] == [
            "on-call phone", "Dr Backup", "Head nurse"
        ]  # fmt: skip
        assert entries[-1].detail == {"by": "nurse@riverside.example", "seconds": 16 * 60}
        assert session.get(Alert, alert_id).next_page_at is None


def test_after_the_last_backup_the_chain_starts_again(db, settings, family_id, backups, outbox):
    raise_alert(db, settings, family_id, MORNING)
    run(db, outbox, settings, MORNING)
    run(db, outbox, settings, MORNING + timedelta(minutes=10))  # Dr Backup
    run(db, outbox, settings, MORNING + timedelta(minutes=15))  # head nurse
    assert run(db, outbox, settings, MORNING + timedelta(minutes=24)) == 0
    assert run(db, outbox, settings, MORNING + timedelta(minutes=25)) == 1  # on-call again
    assert pages_to(outbox, ONCALL) == 2


def test_a_page_waiting_to_be_sent_is_cancelled_by_the_acknowledgement(db, settings, family_id, outbox):
    alert_id = raise_alert(db, settings, family_id, MORNING)
    with db.session() as session:
        assert alerts.acknowledge(
            session, session.get(Alert, alert_id), by="n@x.example", note=None, now=MORNING
        )
    run(db, outbox, settings, MORNING)
    assert pages_to(outbox, ONCALL) == 0
    with db.session() as session:
        assert session.scalars(select(AlertDelivery.status)).all() == ["cancelled"]


def test_a_second_emergency_text_from_the_family_pages_the_next_contact_at_once(
    db, settings, family_id, backups, outbox, text_bot
):
    assert text_bot(EMERGENCY_TEXT).status_code == 200
    alerts.deliver_pending_alerts(db, outbox, settings)
    assert (pages_to(outbox, ONCALL), pages_to(outbox, BACKUP)) == (1, 0)

    assert text_bot("still blue and jerking, he won't stop").status_code == 200
    alerts.deliver_pending_alerts(db, outbox, settings)
    # No waiting for the ten minutes: the backup hears now. Still one alert.
    assert pages_to(outbox, BACKUP) == 1
    with db.session() as session:
        (alert,) = session.scalars(select(Alert)).all()
        assert alert.escalation_step == 1
        entries = timeline.entries(session, alert.id)
    assert [e.kind for e in entries if e.kind in ("paged", "new_text")] == ["paged", "new_text", "paged"]
    assert [e.detail["cause"] for e in entries if e.kind == "paged"] == ["raised", "new_text"]
    new_text = next(e for e in entries if e.kind == "new_text")
    assert new_text.detail["message_id"] is not None


def test_a_second_urgent_text_does_not_page_again(db, settings, family_id, outbox):
    raise_alert(db, settings, family_id, MORNING, level="urgent")
    with db.session() as session:
        family = session.get(Family, family_id)
        paging = alerts.raise_alert(
            session, settings, family, level="urgent", reason="urgent", message=None, now=MORNING
        )
    assert paging == []


def test_urgent_alert_outside_clinic_hours_waits_for_the_clinic_to_open(db, settings, family_id, outbox):
    # 04:00 UTC is 22:00 in Chicago the evening before: the clinic (08:00-18:00) is closed.
    night = datetime(2026, 12, 2, 4, 0)
    alert_id = raise_alert(db, settings, family_id, night, level="urgent")
    run(db, outbox, settings, night)
    assert pages_to(outbox, ONCALL) == 1  # the first page goes at once, day or night
    # Sixty minutes of clinic time: from 08:00 to 09:00 Chicago (15:00 UTC).
    with db.session() as session:
        assert session.get(Alert, alert_id).next_page_at == datetime(2026, 12, 2, 15, 0)
    assert run(db, outbox, settings, night + timedelta(hours=2)) == 0
    assert run(db, outbox, settings, datetime(2026, 12, 2, 14, 59)) == 0
    assert run(db, outbox, settings, datetime(2026, 12, 2, 15, 0)) == 1
    assert pages_to(outbox, ONCALL) == 2


def test_urgent_clock_stops_at_closing_and_runs_on_next_morning(db, settings, world, family_id):
    with db.session() as session:
        chain_settings.set_delays(
            session, session.get(Clinic, world.riverside_id), clinic_hours="08:00-17:00"
        )
    # 22:30 UTC is 16:30 in Chicago: 30 minutes today, the other 30 from 08:00 tomorrow.
    alert_id = raise_alert(db, settings, family_id, datetime(2026, 12, 1, 22, 30), level="urgent")
    with db.session() as session:
        assert session.get(Alert, alert_id).next_page_at == datetime(2026, 12, 2, 14, 30)


def test_emergency_clock_counts_every_minute_at_night(db, settings, family_id):
    night = datetime(2026, 12, 2, 8, 0)  # 02:00 in Chicago
    alert_id = raise_alert(db, settings, family_id, night)
    with db.session() as session:
        assert session.get(Alert, alert_id).next_page_at == night + timedelta(minutes=10)


def test_a_clinic_with_nobody_to_page_does_not_escalate(db, settings, world, family_id, outbox):
    with db.session() as session:
        session.get(Clinic, world.riverside_id).oncall_phone = None
    alert_id = raise_alert(db, settings, family_id, MORNING)
    with db.session() as session:
        assert session.get(Alert, alert_id).next_page_at is None
        assert not escalation.pages_anyone(session, session.get(Clinic, world.riverside_id))
    assert run(db, outbox, settings, MORNING + timedelta(hours=1)) == 0
    assert kinds(db, alert_id) == ["raised"]


def test_escalation_settings_are_validated(db, settings, world):
    with db.session() as session:
        riverside = session.get(Clinic, world.riverside_id)
        with pytest.raises(InvalidFieldsError) as bad:
            chain_settings.set_delays(
                session, riverside, emergency_minutes="0", urgent_minutes="x", clinic_hours="18:00-08:00"
            )
        assert [e.field for e in bad.value.errors] == ["emergency_minutes", "urgent_minutes", "clinic_hours"]
        with pytest.raises(InvalidFieldsError) as bad:
            chain_settings.add_contact(session, settings, riverside, name="", phone="12", delay_minutes="-3")
        assert [e.field for e in bad.value.errors] == ["name", "phone", "delay_minutes"]


def test_time_to_acknowledge_is_on_metrics_by_level(db, settings, family_id, client):
    alert_id = raise_alert(db, settings, family_id, MORNING)
    with db.session() as session:
        alerts.acknowledge(
            session,
            session.get(Alert, alert_id),
            by="n@x.example",
            note=None,
            now=MORNING + timedelta(minutes=7),
        )
    body = client.get("/metrics").get_data(as_text=True)
    assert 'smsbot_alert_time_to_acknowledge_seconds_bucket{le="600.0",level="emergency"}' in body
    assert "smsbot_alert_pages_total" in body


@pytest.mark.parametrize("oncall", [None, ONCALL])
@pytest.mark.parametrize("text", [EMERGENCY_TEXT, "le tiemblan los brazos y tiene los labios morados"])
def test_the_parent_is_never_promised_a_call(db, world, family_id, text_bot, oncall, text):
    with db.session() as session:
        session.get(Clinic, world.riverside_id).oncall_phone = oncall
    reply = text_bot(text, sender=PARENT).get_data(as_text=True).lower()
    assert "emergency" in reply or "911" in reply
    for promise in ("will call you", "call you back", "we'll call", "nurse will", "le llamar", "te llamar"):
        assert promise not in reply


def test_the_app_refuses_to_start_when_a_backups_alert_links_could_not_open(make_app, db):
    with db.session() as session:  # created while SMSBOT_PUBLIC_URL was set
        clinic = Clinic(slug="hillside", name="Hillside")
        session.add(clinic)
        session.flush()
        session.add(EscalationContact(clinic_id=clinic.id, position=1, name="Dr Rivera", phone=BACKUP))
    with pytest.raises(ConfigError) as error:
        make_app(public_url="")
    assert "'hillside' has an on-call phone, backup contacts or an alert webhook" in str(error.value)


def test_a_clinic_without_an_on_call_phone_pages_its_first_backup_at_once(
    db, settings, world, family_id, backups, outbox
):
    with db.session() as session:
        session.get(Clinic, world.riverside_id).oncall_phone = None
    raise_alert(db, settings, family_id, MORNING)
    run(db, outbox, settings, MORNING)
    assert (pages_to(outbox, BACKUP), pages_to(outbox, HEAD_NURSE)) == (1, 0)
    run(db, outbox, settings, MORNING + timedelta(minutes=5))  # the head nurse's own delay
    assert pages_to(outbox, HEAD_NURSE) == 1
