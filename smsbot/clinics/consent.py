"""Consent belongs to each enrollment: one request per enrollment, answered by the family's YES.

Enrolling sends the clinic's own request (its name, its details); nothing else of the
clinic's reaches the family, and the clinic gets nothing about the family, until the
family answers. A YES answers the most recent request still pending, the one it replies
to, and consents to that clinic only; a second YES answers the one before.

The request is sent exactly once, as a check-in is: its row is leased (``smsbot.leases``)
and committed before the send, and a send whose outcome is unknown is looked up at the
provider (``smsbot.messaging.lookup``) before it is sent again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, object_session

from smsbot import checkins, leases
from smsbot.checkins.claims import MAX_ATTEMPTS
from smsbot.clinics.details import sync_family_details
from smsbot.clinics.texts import load_clinic_texts
from smsbot.config import Settings
from smsbot.db import Database
from smsbot.enrollment_windows import open_window
from smsbot.families import lock_family, opt_out
from smsbot.messaging import Transport, TransportError, whatsapp
from smsbot.messaging.lookup import (
    LOOKUP_SKEW,
    can_look,
    find_sent,
    match_sent,
    outcome_unknown,
    recorded_sids,
)
from smsbot.messaging.retry import operator_retry
from smsbot.messaging.segments import count_segments
from smsbot.models import Enrollment, Event, Family, Message

logger = logging.getLogger(__name__)


def request_consent(
    session: Session, enrollment: Enrollment, *, transport: Transport, settings: Settings, now: datetime
) -> Message:
    """Record the enrollment's consent request and commit it, then send it and record the outcome.

    Written with the clinic's own details. The enrollment and its consent ``Message``
    (``sending``, leased like a check-in: ``smsbot.leases``) are committed before the send,
    so nothing goes out that is not recorded; the caller commits the outcome. A process that
    stops in between leaves the row leased, and ``retry_consents`` settles it with the
    provider once the lease runs out. ``consent_requested_at`` is set only when the provider
    took it, so a failed request can be sent again by enrolling again.
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
        claimed_until=now + timedelta(seconds=settings.claim_lease_seconds),
    )
    session.add(message)
    enrollment.consent_attempts += 1
    session.commit()
    routes = whatsapp.plan(
        family,
        now,
        template=whatsapp.load_templates(settings.rules_path).get("consent"),
        lang=lang,
        values={"clinic": enrollment.clinic.name, "baby": baby, "text": body},
        sms_fallback=enrollment.clinic.whatsapp_sms_fallback,
    )
    outcome = _send(transport, routes, body)
    # The commit above let go of the family's row: take it again (the one lock order) before
    # recording; a family erased while its text was out leaves nothing to record.
    if lock_family(session, family.id) is not None:
        _record_outcome(
            session, enrollment, message, outcome, transport=transport, settings=settings, now=now
        )
        session.flush()
    return message


def _send(transport: Transport, routes: list[whatsapp.Route], body: str) -> str | TransportError:
    """The provider's id, or the error."""
    try:
        return whatsapp.send(transport, routes, body)[0]
    except TransportError as error:
        return error


def _record_outcome(
    session: Session,
    enrollment: Enrollment,
    message: Message,
    outcome: str | TransportError,
    *,
    transport: Transport,
    settings: Settings,
    now: datetime,
) -> None:
    if not isinstance(outcome, TransportError):
        _record_sent(enrollment, message, outcome, now)
    elif outcome_unknown(outcome) and can_look(transport):
        # The provider may have taken it: keep the lease through the backoff, then ask the
        # provider before sending again (``retry_consents``).
        message.claimed_until = now + _backoff(settings, enrollment.consent_attempts)
        enrollment.consent_error = str(outcome)[:255]
        enrollment.consent_retry_at = None
    else:
        message.status, message.error_code, message.claimed_until = "failed", outcome.code, None
        record_consent_failure(session, enrollment, outcome, settings=settings, now=now)


def _record_sent(enrollment: Enrollment | None, message: Message, sid: str, requested_at: datetime) -> None:
    message.provider_sid, message.status, message.claimed_until = sid, "queued", None
    if enrollment is not None and enrollment.status == "awaiting_consent":
        enrollment.consent_requested_at = requested_at
        enrollment.consent_error = enrollment.consent_retry_at = None


def _backoff(settings: Settings, attempts: int) -> timedelta:
    """The check-ins' backoff, from the operator's first delay."""
    return operator_retry(settings.retry_backoff_seconds).delay(attempts)


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
        enrollment.consent_retry_at = now + _backoff(settings, enrollment.consent_attempts)


def consent_in_flight(session: Session, enrollment: Enrollment) -> bool:
    """Whether a consent text of this enrollment is being sent, or its outcome is not yet
    known (the provider did not answer): sending another now could text the family twice."""
    return (
        session.scalar(_IN_FLIGHT, {"family": enrollment.family_id, "clinic": enrollment.clinic_id})
        is not None
    )


# A consent text being sent, or whose outcome is still unknown.
_UNSETTLED = (Message.direction == "out", Message.kind == "consent", Message.status == "sending")
_IN_FLIGHT = (
    select(Message.id)
    .where(*_UNSETTLED, Message.family_id == bindparam("family"), Message.clinic_id == bindparam("clinic"))
    .limit(1)
)
_RETRY_DUE = select(Enrollment.id, Enrollment.consent_retry_at).where(
    Enrollment.status == "awaiting_consent",
    Enrollment.consent_requested_at.is_(None),
    Enrollment.consent_retry_at <= bindparam("now"),
)
SETTLE_BATCH = 100


def retry_consents(db: Database, transport: Transport, settings: Settings, now: datetime) -> int:
    """Settle consent texts whose outcome was unknown, then send again those whose retry is
    due; how many were sent again.

    A consent text still ``sending`` after its lease (a timeout, a server error, or a process
    that stopped between the send and its record) is looked up at the provider
    (``smsbot.messaging.lookup``): found, it is recorded as sent; not found, it is sent again
    now. Each row is claimed first (a lease, or a conditional UPDATE), so of several workers
    only one settles or sends it.
    """
    lease = timedelta(seconds=settings.claim_lease_seconds)
    while ids := leases.claim(
        db,
        Message,
        *_UNSETTLED,
        leases.expired(Message, now),
        order_by=Message.claimed_until,
        limit=SETTLE_BATCH,
        until=now + lease,
    ):
        for message_id in ids:
            try:
                with db.session() as session:
                    _settle(session, message_id, transport, settings, now)
            except Exception:
                # One row's fault (say, a provider id that clashes with a stored one) must not
                # hold up the others: it keeps its fresh lease and is settled after it.
                logger.exception("settling consent message %s failed; tried again later", message_id)
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
            if consent_in_flight(session, enrollment):  # enrolled again meanwhile
                continue
            request_consent(session, enrollment, transport=transport, settings=settings, now=now)
            tried += 1
    return tried


def _settle(
    session: Session, message_id: int, transport: Transport, settings: Settings, now: datetime
) -> None:
    """Ask the provider whether it took the consent text ``message_id``: record it as sent if
    so; if not, mark this attempt failed and make the retry due now (within the limit)."""
    message = session.get_one(Message, message_id)
    family = lock_family(session, message.family_id)
    if family is None:  # erased meanwhile
        return
    enrollment = session.scalar(
        select(Enrollment).where(Enrollment.family_id == family.id, Enrollment.clinic_id == message.clinic_id)
    )
    found = (
        find_sent(transport, family.address, message.created_at - LOOKUP_SKEW)
        if can_look(transport)
        else None
    )
    if isinstance(found, TransportError):
        if not found.permanent:
            if enrollment is not None:  # keep the claim (a fresh lease): the next run asks again
                enrollment.consent_error = f"provider lookup failed: {found}"[:255]
            return
        found = None  # the provider will never answer: as if it could not be asked
    match = match_sent(found or (), {message.body}, recorded_sids(session, [family.id]))
    session.add(
        Event(
            family_id=family.id,
            kind="consent_reconciled",
            detail={"message_id": message.id, "sid": match.sid if match else None},
            created_at=now,
        )
    )
    if match is not None:
        _record_sent(enrollment, message, match.sid, message.created_at)
        return
    message.status, message.claimed_until = "failed", None
    if enrollment is None or enrollment.status != "awaiting_consent" or enrollment.consent_requested_at:
        return
    enrollment.consent_error = "not at the provider after an unanswered send"
    # The backoff was waited already: the retry is due now, within the check-ins' limit.
    enrollment.consent_retry_at = now if enrollment.consent_attempts < MAX_ATTEMPTS else None


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
    """Where the clinic stands: given, requested, sending (the provider has not answered
    yet, or did not answer at all), failed (``consent_error`` says why), not_requested,
    blocked_opted_out or none (ended)."""
    if enrollment.consented_at is not None:
        return "given"
    if enrollment.status != "awaiting_consent":
        return "none"
    if enrollment.family.opted_out:
        return "blocked_opted_out"  # no request goes to a family that texted STOP
    if enrollment.consent_requested_at is not None:
        return "requested"
    session = object_session(enrollment)
    if session is not None and consent_in_flight(session, enrollment):
        return "sending"
    return "failed" if enrollment.consent_error else "not_requested"
