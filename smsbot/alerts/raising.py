"""Raising alerts: a red flag from a family becomes an Alert row for each clinic following it.

Deduplicated per family, clinic and level for a few hours, so a worried parent texting five
times raises one alert; but a new emergency text while that alert is still open pages the
next contact at once (``escalation.repage_now``). Each new alert pages the clinic's chain
(``escalation.page``: delivery rows that ``delivery.py`` sends).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Integer, bindparam, func, select
from sqlalchemy.orm import Session

from smsbot.alerts import escalation, timeline
from smsbot.config import Settings
from smsbot.enrollment_windows import following
from smsbot.models import Alert, CheckIn, Clinic, Event, Family, Message

# One open alert per family, clinic and level within this window: a worried parent texting
# five times should page the on-call nurse once.
DEDUPE_WINDOW = timedelta(hours=4)
# This many check-ins in a row that never reached the phone: the clinic should call instead.
UNDELIVERED_STREAK = 2
UNDELIVERED_LEVEL = "routine"  # not a clinical finding, but staff must follow up
NOTICE_LEVEL = "sensitive"  # news from a family (a loss, a hospital stay): read in the queue, never paged
NOT_DELIVERED = ("undelivered", "failed")
FINISHED_SENDS = ("sent", "answered", "unanswered", *NOT_DELIVERED)


# Run for every red-flag text, so built once (composing a statement costs more than running it).
_OPEN_RECENT_ALERT = select(Alert).where(
    Alert.family_id == bindparam("family"),
    Alert.clinic_id.is_not_distinct_from(bindparam("clinic", type_=Integer)),
    Alert.level == bindparam("level"),
    Alert.acknowledged_at.is_(None),
    Alert.created_at > bindparam("since"),
)


def target_clinics(session: Session, settings: Settings, family: Family) -> list[int | None]:
    """Clinics that follow this family, even after its STOP (``enrollment_windows.following``);
    the default clinic (if set) for walk-in texters and families no clinic follows with consent."""
    clinic_ids = [enrollment.clinic_id for enrollment in following(session, family)]
    if clinic_ids:
        return clinic_ids
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
    """Create (deduplicated) alerts for ``family``; return the alerts that page a clinic now.

    Those are the new alerts, and an open emergency alert that this new emergency text
    re-pages at once.
    """
    paging = []
    for clinic_id in target_clinics(session, settings, family):
        open_recent = session.scalar(
            _OPEN_RECENT_ALERT,
            {"family": family.id, "clinic": clinic_id, "level": level, "since": now - DEDUPE_WINDOW},
        )
        if open_recent is not None:
            if level == "emergency" and escalation.repage_now(
                session, settings, open_recent, now, message_id=message.id if message is not None else None
            ):
                paging.append(open_recent)
            continue
        alert = _add_alert(session, family, clinic_id, level=level, reason=reason, message=message, now=now)
        escalation.page(session, settings, alert, now, cause="raised")
        paging.append(alert)
    return paging


def notify(
    session: Session,
    settings: Settings,
    family: Family,
    *,
    reason: str,
    message: Message | None,
    now: datetime,
) -> list[Alert]:
    """A non-clinical notice (sensitive news) in the queue of each clinic following ``family``.

    Level "info" and no deliveries: the on-call phone and the webhook are for red flags. The
    caller notifies once per change it reports, so there is no deduplication window.
    """
    return [
        _add_alert(session, family, clinic_id, level=NOTICE_LEVEL, reason=reason, message=message, now=now)
        for clinic_id in target_clinics(session, settings, family)
    ]


def _add_alert(
    session: Session,
    family: Family,
    clinic_id: int | None,
    *,
    level: str,
    reason: str,
    message: Message | None,
    now: datetime,
) -> Alert:
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
    session.flush()
    session.add(
        Event(
            family_id=family.id,
            kind="alert_raised",
            detail={"alert_id": alert.id, "clinic_id": clinic_id, "level": level, "reason": reason},
            created_at=now,
        )
    )
    timeline.record(
        session, alert.id, timeline.RAISED, now, reason=reason, message_id=message.id if message else None
    )
    return alert


def alert_undelivered(session: Session, settings: Settings, family: Family, now: datetime) -> list[Alert]:
    """Alert the family's clinics when their last check-ins never reached the phone.

    Call after marking a check-in undelivered or failed. Fires once per streak: when exactly
    the latest ``UNDELIVERED_STREAK`` finished check-ins failed, not again for a longer one.
    """
    latest = session.scalars(
        select(CheckIn.status)
        .where(CheckIn.family_id == family.id, CheckIn.status.in_(FINISHED_SENDS))
        .order_by(func.coalesce(CheckIn.sent_at, CheckIn.due_at).desc(), CheckIn.id.desc())
        .limit(UNDELIVERED_STREAK + 1)
    ).all()
    streak = len(latest) >= UNDELIVERED_STREAK and all(
        s in NOT_DELIVERED for s in latest[:UNDELIVERED_STREAK]
    )
    longer = len(latest) > UNDELIVERED_STREAK and latest[UNDELIVERED_STREAK] in NOT_DELIVERED
    if not streak or longer:
        return []
    return raise_alert(
        session, settings, family, level=UNDELIVERED_LEVEL, reason="undelivered", message=None, now=now
    )
