"""Clinic alerts: a red flag from a family becomes an Alert row for each clinic following it.

Deliveries (on-call SMS, signed webhook) are rows too, so a crash never loses one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from smsbot.config import Settings
from smsbot.models import Alert, Clinic, Enrollment, Family, Message

# One open alert per family, clinic and level within this window: a worried parent texting
# five times should page the on-call nurse once.
DEDUPE_WINDOW = timedelta(hours=4)


def target_clinics(session: Session, settings: Settings, family: Family) -> list[int | None]:
    """Clinics that follow this family; the default clinic (if set) for walk-in texters."""
    clinic_ids = session.scalars(
        select(Enrollment.clinic_id).where(Enrollment.family_id == family.id, Enrollment.status != "ended")
    ).all()
    if clinic_ids:
        return list(clinic_ids)
    if settings.default_clinic:
        default = session.scalar(select(Clinic.id).where(Clinic.slug == settings.default_clinic))
        if default is not None:
            return [default]
    return [None]  # stored for the record even when no clinic follows the family


def raise_alert(
    session: Session,
    settings: Settings,
    family: Family,
    *,
    level: str,
    reason: str,
    message: Message | None,
    now: datetime,
) -> list[Alert]:
    """Create (deduplicated) alerts for ``family`` and return the new ones."""
    created = []
    for clinic_id in target_clinics(session, settings, family):
        open_recent = session.scalar(
            select(Alert.id).where(
                Alert.family_id == family.id,
                Alert.clinic_id.is_(None) if clinic_id is None else Alert.clinic_id == clinic_id,
                Alert.level == level,
                Alert.acknowledged_at.is_(None),
                Alert.created_at > now - DEDUPE_WINDOW,
            )
        )
        if open_recent is not None:
            continue
        alert = Alert(
            clinic_id=clinic_id,
            family_id=family.id,
            level=level,
            reason=reason,
            message_id=message.id if message is not None else None,
            dedupe_key=f"{family.id}:{clinic_id or 0}:{level}:{message.id if message else now.isoformat()}",
            created_at=now,
        )
        session.add(alert)
        created.append(alert)
    session.flush()
    return created
