"""Families as contacts: finding them by number and honouring an opt-out from any source."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from smsbot import reminders
from smsbot.models import Enrollment, Event, Family
from smsbot.phones import mask_phone

log = logging.getLogger(__name__)


def find_or_create_family(session: Session, phone: str, channel: str, now: datetime) -> Family:
    family = session.scalar(select(Family).where(Family.phone == phone, Family.channel == channel))
    if family is None:
        family = Family(phone=phone, channel=channel, created_at=now)
        session.add(family)
        session.flush()
    return family


def opt_out(session: Session, family: Family, *, now: datetime, source: str, **detail: Any) -> int:
    """STOP (texted to us, or reported by Twilio as 21610): no more messages of any kind.

    Pending check-ins are cancelled and every clinic enrollment ends at once. Returns the
    number of check-ins cancelled.
    """
    family.opted_out_at = family.opted_out_at or now
    cancelled = reminders.cancel_pending(session, family, reason="opted out")
    session.execute(
        update(Enrollment)
        .where(Enrollment.family_id == family.id, Enrollment.status != "ended")
        .values(status="ended", ended_at=now)
    )
    session.add(
        Event(
            family_id=family.id,
            kind="opted_out",
            detail={"source": source, "cancelled": cancelled, **detail},
            created_at=now,
        )
    )
    log.info("family %s opted out (%s), %d check-ins cancelled", mask_phone(family.phone), source, cancelled)
    return cancelled
