"""Delivery status of outbound messages, from Twilio's status callbacks.

Callbacks can arrive out of order: a late ``sent`` must never overwrite ``delivered``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from smsbot import alerts, checkins, clinics
from smsbot.config import Settings
from smsbot.messaging.twilio import transport_error
from smsbot.models import Enrollment, Message

# Higher rank wins; terminal failures outrank everything but a later confirmed delivery.
STATUS_RANK = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "canceled": 4,
    "undelivered": 5,
    "failed": 5,
    "partially_delivered": 6,
    "delivered": 7,
    "read": 8,
}
FAILED = ("undelivered", "failed")


def record_status(
    session: Session, settings: Settings, sid: str, status: str, error_code: int | None, *, now: datetime
) -> Message | None:
    """Update the outbound message with ``sid``; unknown SIDs are ignored (not ours).

    A check-in that never reached the phone is marked undelivered, and a streak of them
    alerts the family's clinic: a family we cannot reach is a family nobody is watching.
    """
    message = session.scalar(select(Message).where(Message.provider_sid == sid, Message.direction == "out"))
    if message is None:
        return None
    if STATUS_RANK.get(status, -1) >= STATUS_RANK.get(message.status, -1):
        message.status = status
        if error_code is not None:
            message.error_code = error_code
    undelivered_checkin = (
        status in FAILED
        and message.checkin_id is not None
        and checkins.mark_undelivered(session, sid, error_code) is not None
    )
    if undelivered_checkin:
        alerts.alert_undelivered(session, settings, message.family, now)
    if status in FAILED and message.kind == "consent":
        _consent_undelivered(session, settings, message, error_code, now)
    return message


def _consent_undelivered(
    session: Session, settings: Settings, message: Message, error_code: int | None, now: datetime
) -> None:
    """The consent request never reached the family: the clinic sees ``failed`` and why,
    and it is retried unless the carrier's error is permanent."""
    enrollment = session.scalar(
        select(Enrollment).where(
            Enrollment.family_id == message.family_id,
            Enrollment.clinic_id == message.clinic_id,
            Enrollment.status == "awaiting_consent",
            Enrollment.consent_requested_at.is_not(None),
        )
    )
    if enrollment is not None:
        error = transport_error(error_code, None, cause="reported undelivered")
        clinics.record_consent_failure(session, enrollment, error, settings=settings, now=now)
