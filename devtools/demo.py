"""A demo clinic written straight into the database: for screenshots, trying the dashboard
locally and the dashboard's tests.

Rows are inserted as the pipeline would leave them (no SMS is sent, no triage runs), so
the pages can be shown and tested before, and independently of, the rest of the system.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from smsbot import clinics
from smsbot.enrollment_windows import open_window
from smsbot.models import Alert, CheckIn, Clinic, Enrollment, Family, Message

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


def seed_demo(session: Session, now: datetime) -> Clinic:
    """Riverside Pediatrics with a week of activity; sign in as DEMO_EMAIL / DEMO_PASSWORD."""
    clinic = add_clinic(session, "Riverside Pediatrics", "riverside")
    clinics.add_staff(session, clinic, email=DEMO_EMAIL, password=DEMO_PASSWORD)
    day = timedelta(days=1)

    ana = add_enrollment(session, clinic, "+15550100001", baby_name="Ana", at=now - 7 * day)
    conversation = [
        ("in", "her arms shake when she cries but stop when I hold them", "routine", 6 * day),
        (
            "out",
            "Thanks for telling us. Gently hold the arm: jitteriness usually stops. Not a diagnosis.",
            None,
            6 * day,
        ),
        ("in", "2", None, 4 * day - timedelta(hours=3)),
        ("in", "shaking again this morning and she wont feed", "urgent", day + timedelta(hours=5)),
        (
            "out",
            "Please call Ana's doctor today. This is not a diagnosis.",
            "urgent",
            day + timedelta(hours=5),
        ),
        ("in", "now her lips look blue and she is jerking", "emergency", timedelta(minutes=42)),
        (
            "out",
            "Call 911 now or go to the emergency department. Not a diagnosis.",
            "emergency",
            timedelta(minutes=42),
        ),
    ]
    messages = [
        add_message(session, ana.family, direction, body, at=now - ago, level=level)
        for direction, body, level, ago in conversation
    ]
    # What triage said of Ana's texts, for the episode summary's "red flags and why".
    flags = {0: ["jitters-reported"], 3: ["poor-feeding", "jitters-reported"], 5: ["colour-change"]}
    for index, found in flags.items():
        messages[index].flags = found
    add_alert(session, clinic, messages[-2], at=now - timedelta(minutes=41))
    add_alert(session, clinic, messages[3], at=now - day + timedelta(hours=-5))
    add_answers(session, ana, ["better", "same", "same", "worse"], now=now)
    add_checkin(session, ana, 5, due=now + day)

    families = [
        ("+15550100002", "Mateo", "es", "active", "routine", "le tiemblan las piernas al llorar"),
        ("+15550100003", "Lily", "en", "awaiting_consent", None, None),
        ("+15550100004", "Noah", "en", "active", "urgent", "only his right arm shakes, even when calm"),
        ("+15550100005", None, "en", "active", "info", "what should I watch for?"),
    ]
    for index, (phone, baby, language, status, level, text) in enumerate(families, start=2):
        enrollment = add_enrollment(
            session, clinic, phone, baby_name=baby, language=language, status=status, at=now - index * day
        )
        if text:
            message = add_message(
                session, enrollment.family, "in", text, at=now - index * timedelta(hours=7), level=level
            )
            if level == "urgent":
                add_alert(session, clinic, message, at=message.created_at)
        if status == "active":
            # One number that cannot receive texts: the overview shows it among the check-ins.
            add_checkin(session, enrollment, 1, due=now - day, status="sent" if baby else "undelivered")
    session.commit()
    return clinic
