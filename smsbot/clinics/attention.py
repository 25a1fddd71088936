"""Families that need a person's attention, with the reason and the last contact.

Three reasons, each one a family nobody is watching unless staff act: check-ins left
unanswered two or more times in a row, texts that could not be delivered, and a STOP while
one of the clinic's alerts about the family was still open (the family can now only be
phoned). Scoped to one clinic like every query in ``queries``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import groupby

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from smsbot.checkins.schedule import UNANSWERED_STATUSES
from smsbot.clinics.queries import FamilyRow, family_rows
from smsbot.models import Alert, CheckIn, Enrollment, Family, Message

UNANSWERED_IN_A_ROW = 2
NOT_DELIVERED = ("undelivered", "failed")
FINISHED = ("sent", "answered", "unanswered", "undelivered", "failed", "ended")


@dataclass(frozen=True)
class AttentionRow:
    row: FamilyRow
    reasons: list[str]

    @property
    def last_contact_at(self) -> datetime | None:
        return self.row.last_contact_at


def _unanswered_streaks(session: Session, clinic_id: int) -> dict[int, int]:
    """Per enrollment: how many of its latest sent check-ins in a row got no answer."""
    rows = session.execute(
        select(CheckIn.enrollment_id, CheckIn.status)
        .join(Enrollment, Enrollment.id == CheckIn.enrollment_id)
        .where(Enrollment.clinic_id == clinic_id, Enrollment.status == "active", CheckIn.status.in_(FINISHED))
        .order_by(CheckIn.enrollment_id, CheckIn.sent_at.desc(), CheckIn.id.desc())
    )
    streaks = {}
    for enrollment_id, statuses in groupby(rows, key=lambda row: row[0]):
        streak = 0
        for _, status in statuses:
            if status not in UNANSWERED_STATUSES:
                break
            streak += 1
        streaks[enrollment_id] = streak
    return streaks


def _undelivered(session: Session, clinic_id: int) -> set[int]:
    """Enrollments whose family's latest text from us (this clinic's, or untagged) never arrived."""
    latest = (
        select(Message.status)
        .where(
            Message.family_id == Enrollment.family_id,
            Message.direction == "out",
            or_(Message.clinic_id.is_(None), Message.clinic_id == Enrollment.clinic_id),
            Message.created_at >= Enrollment.enrolled_at,
        )
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(1)
        .correlate(Enrollment)
        .scalar_subquery()
    )
    return set(
        session.scalars(
            select(Enrollment.id)
            .join(Family, Family.id == Enrollment.family_id)
            .where(
                Enrollment.clinic_id == clinic_id,
                or_(latest.in_(NOT_DELIVERED), Family.undeliverable_at.is_not(None)),
            )
        )
    )


def _stopped_with_alert_open(session: Session, clinic_id: int) -> set[int]:
    """Enrollments whose family texted STOP while one of this clinic's alerts about it was open."""
    return set(
        session.scalars(
            select(Enrollment.id)
            .join(Family, Family.id == Enrollment.family_id)
            .join(Alert, and_(Alert.family_id == Family.id, Alert.clinic_id == Enrollment.clinic_id))
            .where(
                Enrollment.clinic_id == clinic_id,
                Family.opted_out_at.is_not(None),
                Alert.level != "sensitive",
                Alert.created_at <= Family.opted_out_at,
                or_(Alert.acknowledged_at.is_(None), Alert.acknowledged_at > Family.opted_out_at),
            )
        )
    )


def needs_attention(session: Session, clinic_id: int) -> list[AttentionRow]:
    """The clinic's families needing attention, each with its reasons, latest contact first."""
    reasons: dict[int, list[str]] = {}
    for enrollment_id, streak in _unanswered_streaks(session, clinic_id).items():
        if streak >= UNANSWERED_IN_A_ROW:
            reasons.setdefault(enrollment_id, []).append(f"{streak} check-ins unanswered in a row")
    for enrollment_id in _undelivered(session, clinic_id):
        reasons.setdefault(enrollment_id, []).append("texts could not be delivered")
    for enrollment_id in _stopped_with_alert_open(session, clinic_id):
        reasons.setdefault(enrollment_id, []).append("texted STOP while an alert was open: phone them")
    if not reasons:
        return []
    rows = [
        FamilyRow(*found)
        for found in session.execute(family_rows(clinic_id).where(Enrollment.id.in_(reasons)))
    ]
    rows.sort(key=lambda row: row.last_contact_at or datetime.min, reverse=True)
    return [AttentionRow(row, reasons[row.enrollment.id]) for row in rows]
