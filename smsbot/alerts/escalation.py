"""Escalation: an open alert pages the clinic's chain, contact after contact, until a human
acknowledges it.

The chain is the on-call phone, then the clinic's backup contacts in order; each page is an
SMS to that contact plus the clinic's signed webhook (delivery rows, sent by ``delivery.py``).
A contact is paged once the previous page has waited its delay without an acknowledgement
(the contact's own delay, else the level's: 10 minutes for an emergency, 60 for an urgent
alert, the urgent clock counting only clinic hours). After the last contact the chain starts
again. ``escalate_due(now)`` is the scheduler's job; tests call it with a chosen ``now``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from smsbot.alerts import timeline
from smsbot.checkins.clock import to_local, wall_clock
from smsbot.config import Settings
from smsbot.db import Database
from smsbot.metrics import ALERT_PAGES, TIME_TO_ACKNOWLEDGE
from smsbot.models import Alert, AlertDelivery, Clinic, EscalationContact
from smsbot.phones import mask_phone

log = logging.getLogger(__name__)

ESCALATING_LEVELS = ("emergency", "urgent")  # other alerts page once (e.g. undelivered check-ins)
DEFAULT_CLINIC_HOURS = ("08:00", "18:00")  # when a clinic has not set its own
ONCALL_LABEL = "on-call phone"
BATCH_SIZE = 50
# Looking this far ahead for clinic hours is enough: a clinic open less than that has none.
MAX_DAYS_AHEAD = 14


@dataclass(frozen=True)
class Contact:
    """One step of the chain: who is paged, and how long the previous page waits for them."""

    label: str
    phone: str | None  # None: the on-call phone is not set (the webhook may still be)
    delay_minutes: int | None  # None: the level's delay
    oncall: bool = False


def chain(session: Session, clinic: Clinic) -> list[Contact]:
    """The clinic's escalation chain: the on-call phone, then the backups in order.

    A clinic without an on-call phone starts with its first backup (never a step that
    pages nobody); one with neither has a single step, for its webhook if it has one.
    """
    backups = session.scalars(
        select(EscalationContact)
        .where(EscalationContact.clinic_id == clinic.id)
        .order_by(EscalationContact.position, EscalationContact.id)
    )
    contacts = [Contact(b.name, b.phone, b.delay_minutes) for b in backups]
    if clinic.oncall_phone or not contacts:
        contacts.insert(0, Contact(ONCALL_LABEL, clinic.oncall_phone, None, oncall=True))
    return contacts


def pages_anyone(session: Session, clinic: Clinic | None) -> bool:
    """Whether an alert of this clinic reaches a person or system at all (a phone or a webhook)."""
    if clinic is None:
        return False
    return bool(clinic.webhook_url) or any(contact.phone for contact in chain(session, clinic))


def level_delay(clinic: Clinic, level: str) -> int:
    """Minutes a page waits for an acknowledgement, by level, unless a contact sets its own."""
    return clinic.emergency_delay_minutes if level == "emergency" else clinic.urgent_delay_minutes


def clinic_hours(clinic: Clinic) -> tuple[time, time]:
    """(opening, closing) in the clinic's time zone."""
    start = clinic.clinic_hours_start or DEFAULT_CLINIC_HOURS[0]
    end = clinic.clinic_hours_end or DEFAULT_CLINIC_HOURS[1]
    return time.fromisoformat(start), time.fromisoformat(end)


def after_open_minutes(start: datetime, minutes: int, zone: ZoneInfo, hours: tuple[time, time]) -> datetime:
    """The moment (naive UTC) ``minutes`` of clinic hours have passed since ``start``.

    Time while the clinic is closed does not count: an urgent alert raised at night waits
    for the morning before its delay starts running.
    """
    remaining = timedelta(minutes=minutes)
    day = to_local(start, zone).date() - timedelta(days=1)  # an overnight start may be "yesterday"
    for _ in range(MAX_DAYS_AHEAD):
        opening, closing = wall_clock(day, hours[0], zone), wall_clock(day, hours[1], zone)
        begin = max(start, opening)
        if begin < closing:
            if remaining <= closing - begin:
                return begin + remaining
            remaining -= closing - begin
        day += timedelta(days=1)
    return start + timedelta(minutes=minutes)  # no clinic hours at all: count every minute


def _next_page_at(
    session: Session, settings: Settings, alert: Alert, clinic: Clinic, contacts: list[Contact], now: datetime
) -> datetime | None:
    if alert.level not in ESCALATING_LEVELS or not pages_anyone(session, clinic):
        return None
    following = contacts[(alert.escalation_step + 1) % len(contacts)]
    minutes = (
        following.delay_minutes if following.delay_minutes is not None else level_delay(clinic, alert.level)
    )
    if alert.level == "urgent":
        zone = ZoneInfo(clinic.timezone or settings.default_timezone)
        return after_open_minutes(now, minutes, zone, clinic_hours(clinic))
    return now + timedelta(minutes=minutes)


def page(session: Session, settings: Settings, alert: Alert, now: datetime, *, cause: str) -> bool:
    """Page the contact of the alert's current step (SMS, plus the webhook) and plan the next.

    Returns whether anything was paged. Written to the caller's transaction.
    """
    clinic = session.get(Clinic, alert.clinic_id) if alert.clinic_id is not None else None
    if clinic is None:
        return False
    contacts = chain(session, clinic)
    step = alert.escalation_step
    contact = contacts[step % len(contacts)]
    channels = []
    if contact.phone:
        # The on-call step reads the clinic's phone when it is sent (a change of on-call
        # reaches pages not sent yet); a backup's phone is fixed with the page.
        target = None if contact.oncall else contact.phone
        session.add(
            AlertDelivery(
                alert_id=alert.id,
                channel="sms",
                step=step,
                target=target,
                next_attempt_at=now,
                created_at=now,
            )
        )
        channels.append("sms")
    if clinic.webhook_url:
        session.add(
            AlertDelivery(
                alert_id=alert.id, channel="webhook", step=step, next_attempt_at=now, created_at=now
            )
        )
        channels.append("webhook")
    alert.next_page_at = _next_page_at(session, settings, alert, clinic, contacts, now)
    if not channels:
        return False
    ALERT_PAGES.labels(alert.level, cause).inc()
    timeline.record(
        session,
        alert.id,
        timeline.PAGED,
        now,
        step=step,
        contact=contact.label,
        phone=mask_phone(contact.phone) if contact.phone else None,
        channels=channels,
        cause=cause,
        next_page_at=alert.next_page_at.isoformat() if alert.next_page_at else None,
    )
    return True


def repage_now(
    session: Session, settings: Settings, alert: Alert, now: datetime, *, message_id: int | None
) -> bool:
    """A new emergency text from a family whose alert is still open: page the next contact now.

    The parent is still worried and nobody has answered: waiting out the delay again would
    leave a second emergency unheard. Returns whether anything was paged.
    """
    timeline.record(session, alert.id, timeline.NEW_TEXT, now, message_id=message_id)
    alert.escalation_step = session.scalar(
        update(Alert)
        .where(Alert.id == alert.id)
        .values(escalation_step=Alert.escalation_step + 1)
        .returning(Alert.escalation_step)
    )
    return page(session, settings, alert, now, cause="new_text")


def escalate_due(db: Database, settings: Settings, now: datetime) -> int:
    """Page the next contact of every open alert whose delay has run out; the number paged.

    Safe in several workers at once: each step is claimed by a conditional UPDATE on the
    alert's step and due time, so only one worker pages it.
    """
    with db.session() as session:
        due = session.execute(
            select(Alert.id, Alert.escalation_step, Alert.next_page_at)
            .where(Alert.next_page_at <= now, Alert.acknowledged_at.is_(None))
            .order_by(Alert.next_page_at, Alert.id)
            .limit(BATCH_SIZE)
        ).all()
    paged = 0
    for alert_id, step, due_at in due:
        with db.session() as session:
            claimed = session.execute(
                update(Alert)
                .where(
                    Alert.id == alert_id,
                    Alert.escalation_step == step,
                    Alert.next_page_at == due_at,
                    Alert.acknowledged_at.is_(None),
                )
                .values(escalation_step=step + 1)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another worker paged it, or someone acknowledged it
            alert = session.get_one(Alert, alert_id)
            paged += page(session, settings, alert, now, cause="unacknowledged")
    if paged:
        log.info("escalation at %s: paged %d alerts again", now.isoformat(), paged)
    return paged


def acknowledge(session: Session, alert: Alert, *, by: str, note: str | None, now: datetime) -> bool:
    """Acknowledge ``alert``, stop its escalation, and commit; False if someone else already did.

    One conditional UPDATE, so of two acknowledgements at once (two nurses, two API calls)
    exactly one wins, whatever the interleaving. Pages not sent yet are cancelled: someone
    is on it.
    """
    result = session.execute(
        update(Alert)
        .where(Alert.id == alert.id, Alert.acknowledged_at.is_(None))
        .values(acknowledged_at=now, acknowledged_by=by, ack_note=note, next_page_at=None)
    )
    won = result.rowcount == 1  # type: ignore[attr-defined]
    if won:
        session.execute(
            update(AlertDelivery)
            .where(AlertDelivery.alert_id == alert.id, AlertDelivery.status == "pending")
            .values(status="cancelled", last_error="acknowledged before it was sent")
        )
        waited = max((now - alert.created_at).total_seconds(), 0.0)
        timeline.record(session, alert.id, timeline.ACKNOWLEDGED, now, by=by, seconds=round(waited))
    session.commit()
    if won:
        TIME_TO_ACKNOWLEDGE.labels(alert.level).observe(waited)
    return won
