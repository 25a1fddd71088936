"""Consent belongs to each enrollment: one request per enrollment, answered by the family's YES.

Enrolling sends the clinic's own request (its name, its details); nothing else of the
clinic's reaches the family, and the clinic gets nothing about the family, until the
family answers. A YES answers the most recent request still pending, the one it replies
to, and consents to that clinic only; a second YES answers the one before.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from smsbot import checkins
from smsbot.checkins.claims import MAX_ATTEMPTS
from smsbot.clinics.details import sync_family_details
from smsbot.clinics.texts import load_clinic_texts
from smsbot.config import Settings
from smsbot.db import Database
from smsbot.enrollment_windows import open_window
from smsbot.families import lock_family, opt_out
from smsbot.messaging import Transport, TransportError, whatsapp
from smsbot.messaging.retry import CHECKIN_RETRY
from smsbot.messaging.segments import count_segments
from smsbot.models import Enrollment, Event, Family, Message


def request_consent(
    session: Session, enrollment: Enrollment, *, transport: Transport, settings: Settings, now: datetime
) -> Message:
    """Record the enrollment's consent request, then send it (a failed send is a stored row too).

    Written with the clinic's own details. The row (and everything the session holds) is
    flushed before the send, so a write that cannot succeed fails before a text goes out.
    ``consent_requested_at`` is set only when the provider took it, so a failed request
    can be sent again by enrolling again.
    """
    texts = load_clinic_texts(settings.rules_path)
    lang, family = enrollment.language, enrollment.family
    baby = texts.baby(enrollment.baby_name, lang)
    body = texts.render("consent", lang, clinic=enrollment.clinic.name, baby=baby)
    message = Message(
        family_id=family.id,
        clinic_id=enrollment.clinic_id,
        direction="out",
        kind="consent",
        body=body,
        lang=lang,
        segments=count_segments(body),
        created_at=now,
        status="sending",
    )
    session.add(message)
    session.flush()
    enrollment.consent_attempts += 1
    routes = whatsapp.plan(
        family,
        now,
        template=whatsapp.load_templates(settings.rules_path).get("consent"),
        lang=lang,
        values={"clinic": enrollment.clinic.name, "baby": baby, "text": body},
        sms_fallback=enrollment.clinic.whatsapp_sms_fallback,
    )
    try:
        message.provider_sid, _route = whatsapp.send(transport, routes, body)
    except TransportError as error:
        message.status, message.error_code = "failed", error.code
        record_consent_failure(session, enrollment, error, settings=settings, now=now)
    else:
        message.status = "queued"
        enrollment.consent_requested_at = now
        enrollment.consent_error = enrollment.consent_retry_at = None
    session.flush()
    return message


def record_consent_failure(
    session: Session, enrollment: Enrollment, error: TransportError, *, settings: Settings, now: datetime
) -> None:
    """The consent text did not go out (or never arrived): say why, and retry it as a
    check-in is retried (same backoff and limit) unless the failure is permanent.

    A family that texted STOP to the number (Twilio 21610) is opted out, as from a check-in.
    """
    enrollment.consent_requested_at = None
    enrollment.consent_error = str(error)[:255]
    enrollment.consent_retry_at = None
    if error.opted_out:
        opt_out(session, enrollment.family, now=now, source="provider", code=error.code)
    elif not error.permanent and enrollment.consent_attempts < MAX_ATTEMPTS:
        retry = CHECKIN_RETRY.starting_at(timedelta(seconds=settings.retry_backoff_seconds))
        enrollment.consent_retry_at = now + retry.delay(enrollment.consent_attempts)


_RETRY_DUE = select(Enrollment.id, Enrollment.consent_retry_at).where(
    Enrollment.status == "awaiting_consent",
    Enrollment.consent_requested_at.is_(None),
    Enrollment.consent_retry_at <= bindparam("now"),
)


def retry_consents(db: Database, transport: Transport, settings: Settings, now: datetime) -> int:
    """Send again the consent texts whose retry is due; how many were tried.

    Each is claimed by a conditional UPDATE first, so of several workers only one sends it.
    """
    with db.session() as session:
        due = session.execute(_RETRY_DUE, {"now": now}).all()
    tried = 0
    for enrollment_id, seen in due:
        with db.session() as session:
            claimed = session.execute(
                update(Enrollment)
                .where(Enrollment.id == enrollment_id, Enrollment.consent_retry_at == seen)
                .values(consent_retry_at=None)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                continue
            enrollment = session.get_one(Enrollment, enrollment_id)
            family = lock_family(session, enrollment.family_id)
            if family is None or family.opted_out or enrollment.consent_requested_at is not None:
                continue
            request_consent(session, enrollment, transport=transport, settings=settings, now=now)
            tried += 1
    return tried


# Run for every YES, so built once.
_PENDING_REQUEST = (
    select(Enrollment)
    .where(
        Enrollment.family_id == bindparam("family"),
        Enrollment.status == "awaiting_consent",
        Enrollment.consent_requested_at.is_not(None),
    )
    .order_by(Enrollment.consent_requested_at.desc(), Enrollment.id.desc())
    .limit(1)
)


def answer_consent(
    session: Session, family: Family, *, now: datetime, settings: Settings
) -> Enrollment | None:
    """The family said YES: consent to the clinic whose pending request is the most recent.

    Its window opens and its programme starts now; returns the enrollment, or None when
    no request is pending (a YES then only means START).
    """
    enrollment = session.scalars(_PENDING_REQUEST, {"family": family.id}).first()
    if enrollment is None:
        return None
    open_window(session, enrollment, now)
    session.flush()
    checkins.start_enrollment(session, enrollment, now=now, settings=settings)
    sync_family_details(session, family)
    session.add(
        Event(
            family_id=family.id, kind="consented", detail={"clinic_id": enrollment.clinic_id}, created_at=now
        )
    )
    return enrollment


def consent_confirmation(enrollment: Enrollment, lang: str, settings: Settings) -> str:
    """The reply to a YES that consented: it names the clinic the family now hears from."""
    texts = load_clinic_texts(settings.rules_path)
    baby = texts.baby(enrollment.baby_name, lang)
    return texts.render(
        "consent_given",
        lang,
        clinic=enrollment.clinic.name,
        baby=baby,
        emergency_number=settings.emergency_number,
    )


def consent_state(enrollment: Enrollment) -> str:
    """Where the clinic stands: given, requested, failed (``consent_error`` says why),
    not_requested, blocked_opted_out or none (ended)."""
    if enrollment.consented_at is not None:
        return "given"
    if enrollment.status != "awaiting_consent":
        return "none"
    if enrollment.family.opted_out:
        return "blocked_opted_out"  # no request goes to a family that texted STOP
    if enrollment.consent_requested_at is not None:
        return "requested"
    return "failed" if enrollment.consent_error else "not_requested"
