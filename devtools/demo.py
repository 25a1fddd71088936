"""The demo clinic for screenshots and trying the dashboard locally, and row helpers for the
dashboard's tests.

``seed_demo`` drives the real pipeline (enrollment, consent, triage, check-ins), so the
README's pictures show what smsbot really answers. The ``add_*`` helpers insert rows
directly, as the pipeline would leave them, so the dashboard's tests can arrange exactly the
state they read without running the rest of the system.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from smsbot import clinics, outbox
from smsbot.alerts.delivery import deliver_pending_alerts
from smsbot.alerts.escalation import escalate_due
from smsbot.checkins.dispatch import dispatch_due
from smsbot.clinics import inbox
from smsbot.config import Settings
from smsbot.conversation.inbound import Inbound, receive
from smsbot.db import Database
from smsbot.enrollment_windows import open_window
from smsbot.messaging.console import MemoryTransport
from smsbot.models import Alert, CheckIn, Clinic, Enrollment, EscalationContact, Family, Message

DEMO_EMAIL = "nurse@riverside.example"
DEMO_PASSWORD = "demo-password-riverside"


def add_clinic(session: Session, name: str, slug: str, timezone: str = "America/New_York") -> Clinic:
    clinic = Clinic(name=name, slug=slug, timezone=timezone)
    session.add(clinic)
    session.flush()
    return clinic


def add_enrollment(
    session: Session,
    clinic: Clinic,
    phone: str,
    *,
    baby_name: str | None,
    at: datetime,
    language: str = "en",
    status: str = "active",
    programme: str | None = "clinic_followup",
) -> Enrollment:
    """Enroll the family with this phone (created if new) at ``clinic``, with these details."""
    family = session.scalar(select(Family).where(Family.phone == phone))
    if family is None:
        family = Family(phone=phone, created_at=at)
        session.add(family)
    enrollment = Enrollment(
        clinic=clinic,
        family=family,
        programme=programme,
        status=status,
        enrolled_at=at,
        language=language,
        baby_name=baby_name,
    )
    session.add(enrollment)
    session.flush()
    if status == "active":
        open_window(session, enrollment, at)
        session.flush()
        clinics.sync_family_details(session, family)
    return enrollment


def add_message(
    session: Session,
    family: Family,
    direction: str,
    body: str,
    *,
    at: datetime,
    level: str | None = None,
    status: str | None = None,
) -> Message:
    """A message in or out; an inbound one also updates the family's last contact and level."""
    message = Message(
        family_id=family.id,
        direction=direction,
        kind="symptom" if direction == "in" else "reply",
        body=body,
        level=level,
        status=status or ("received" if direction == "in" else "delivered"),
        created_at=at,
    )
    session.add(message)
    if direction == "in":
        family.last_contact_at = at
        family.last_level = level or family.last_level
    session.flush()
    return message


def add_alert(session: Session, clinic: Clinic, message: Message, *, at: datetime) -> Alert:
    """An open alert raised by ``message`` (its level is the alert's)."""
    level = message.level or "urgent"
    alert = Alert(
        clinic_id=clinic.id,
        family_id=message.family_id,
        level=level,
        reason=level,
        message_id=message.id,
        dedupe_key=f"demo:{clinic.id}:{message.id}",
        created_at=at,
    )
    session.add(alert)
    session.flush()
    return alert


def add_checkin(
    session: Session,
    enrollment: Enrollment,
    step: int,
    *,
    due: datetime,
    status: str = "pending",
    outcome: str | None = None,
) -> CheckIn:
    """A check-in, sent when due unless still pending (and answered an hour later with ``outcome``)."""
    sent = status not in ("pending", "cancelled", "missed")
    checkin = CheckIn(
        family_id=enrollment.family_id,
        enrollment_id=enrollment.id,
        programme=enrollment.programme or "clinic_followup",
        step=step,
        status=status,
        due_at=due,
        sent_at=due if sent else None,
        answered_at=due + timedelta(hours=1) if outcome else None,
        outcome=outcome,
        dedupe_key=f"demo:{enrollment.id}:{step}",
    )
    session.add(checkin)
    session.flush()
    return checkin


def add_answers(session: Session, enrollment: Enrollment, outcomes: Sequence[str], *, now: datetime) -> None:
    """Answered check-ins, one a day up to yesterday, with these outcomes in order."""
    for step, outcome in enumerate(outcomes, start=1):
        due = now - timedelta(days=len(outcomes) - step + 1)
        add_checkin(session, enrollment, step, due=due, status="answered", outcome=outcome)


@dataclass(frozen=True)
class _Text:
    """A parent's text (or a check-in round, ``body`` None) at ``ago`` before now."""

    ago: timedelta
    phone: str
    body: str | None = None


def seed_demo(database: Database, settings: Settings, now: datetime) -> Clinic:
    """Riverside Pediatrics after a week of real traffic; sign in as DEMO_EMAIL / DEMO_PASSWORD.

    Families are enrolled, consent, text and answer check-ins through the pipeline itself
    (``enroll_family``, ``inbound.receive``, ``dispatch_due``) at past times, so every reply,
    level, alert and check-in shown is what smsbot really produced for those texts.
    """
    transport = MemoryTransport()
    day, hour = timedelta(days=1), timedelta(hours=1)
    with database.session() as session:
        clinic = add_clinic(session, "Riverside Pediatrics", "riverside")
        clinic.oncall_phone = "+15550109999"
        clinics.add_staff(session, clinic, email=DEMO_EMAIL, password=DEMO_PASSWORD, role="admin")
        session.add(
            EscalationContact(
                clinic_id=clinic.id, position=1, name="Dr Rivera (backup)", phone="+15550108888"
            )
        )
        families = [
            ("+15550100001", "Ana", "en", 7 * day),
            ("+15550100002", "Mateo", "es", 3 * day),
            ("+15550100003", "Lily", "en", 2 * day),
            ("+15550100004", "Noah", "en", 4 * day),
            ("+15550100005", None, "en", 5 * day),
        ]
        for phone, baby, language, ago in families:
            transport.clock = lambda at=now - ago: at
            clinics.enroll_family(
                session,
                clinic,
                phone=phone,
                programme="clinic_followup",
                language=language,
                baby_name=baby,
                now=now - ago,
                settings=settings,
                transport=transport,
            )
        session.commit()
        clinic_id = clinic.id
    texts = [
        _Text(7 * day - hour, "+15550100001", "YES"),
        _Text(6 * day, "+15550100001", "her arms shake when she cries but stop when I hold them"),
        _Text(5 * day - hour, "+15550100005", "yes"),
        _Text(5 * day - 2 * hour, "+15550100005", "what should I watch for?"),
        _Text(4 * day - hour, "+15550100004", "YES"),
        _Text(4 * day - 3 * hour, "+15550100004", "only his right arm shakes, even when he is calm"),
        _Text(3 * day - hour, "+15550100002", "si"),
        _Text(
            3 * day - 4 * hour, "+15550100002", "le tiemblan las piernas cuando llora, al agarrarlas se calma"
        ),
        _Text(4 * day - 2 * hour, "+15550100001", "2"),
        _Text(2 * day - 3 * hour, "+15550100004", "same"),
        _Text(day + 9 * hour, "+15550100002", "igual, solo cuando llora"),
        _Text(day + 5 * hour, "+15550100001", "shaking again this morning and she wont feed"),
        _Text(timedelta(minutes=42), "+15550100001", "now her lips look blue and she is jerking"),
    ]
    # Check-ins go out when due, between the texts, as the scheduler would send them.
    rounds = [(now - 7 * day + step * 2 * hour, None) for step in range(84)]
    events = sorted([(now - text.ago, text) for text in texts] + rounds, key=lambda event: event[0])
    for sid, (at, text) in enumerate(events, start=1):
        transport.clock = lambda at=at: at
        if text is None:
            dispatch_due(database, transport, settings, at)
        else:
            inbound = Inbound(sid=f"SMdemo{sid:026d}", phone=text.phone, body=text.body or "")
            receive(database, settings, inbound, now=at)
            outbox.drain_all(database, settings, now=at)
            deliver_pending_alerts(database, transport, settings, at)  # as the courier would, at once
    # Nobody acknowledged the emergency for ten minutes: the chain paged the backup, then a
    # nurse texted the parent from the dashboard.
    paged_backup = now - timedelta(minutes=31)
    transport.clock = lambda: paged_backup
    escalate_due(database, settings, paged_backup)
    deliver_pending_alerts(database, transport, settings, paged_backup)
    with database.session() as session:
        ana = session.scalars(select(Enrollment).join(Family).where(Family.phone == "+15550100001")).one()
        inbox.send_staff_text(
            session,
            settings,
            transport,
            ana,
            text="Nurse Kim here, calling you now. If the call drops, call 911.",
            sender=DEMO_EMAIL,
            now=now - timedelta(minutes=29),
        )
        return session.get_one(Clinic, clinic_id)
