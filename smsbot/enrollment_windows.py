"""Enrollment windows: when each clinic followed a family with its consent, and who follows it now.

A window opens when the family answers a clinic's consent request and closes when the
clinic unenrolls the family or the family texts STOP. A clinic reads a shared family's
texts and check-ins only inside its own windows (``clinics.family_messages``). Kept apart
from ``clinics`` so that ``families`` (STOP) can end enrollments without importing the
clinic services.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, bindparam, select, update
from sqlalchemy.orm import Session

from smsbot.models import Enrollment, EnrollmentWindow, Family

ENDED_BY_CLINIC = "unenrolled"
ENDED_BY_OPT_OUT = "opted_out"


def open_window(session: Session, enrollment: Enrollment, now: datetime) -> None:
    """The family consented: the clinic follows it from ``now``."""
    enrollment.status, enrollment.consented_at = "active", now
    session.add(EnrollmentWindow(enrollment_id=enrollment.id, started_at=now))


def end_enrollments(
    session: Session, *conditions: ColumnElement[bool], now: datetime, reason: str
) -> list[int]:
    """End the enrollments matching ``conditions`` that have not ended, closing their windows.

    ``reason`` is ``ENDED_BY_CLINIC`` or ``ENDED_BY_OPT_OUT``. Returns the ids ended.
    """
    ended = list(
        session.scalars(
            update(Enrollment)
            .where(Enrollment.status != "ended", *conditions)
            .values(status="ended", ended_at=now, ended_reason=reason)
            .returning(Enrollment.id)
        )
    )
    if ended:
        session.execute(
            update(EnrollmentWindow)
            .where(EnrollmentWindow.enrollment_id.in_(ended), EnrollmentWindow.ended_at.is_(None))
            .values(ended_at=now)
        )
    return ended


# Run for every red-flag text, so built once (composing a statement costs more than running it).
_FOLLOWING = (
    select(Enrollment)
    .where(Enrollment.family_id == bindparam("family"), Enrollment.status == "active")
    .order_by(Enrollment.consented_at, Enrollment.id)
)
_FOLLOWING_AT_OPT_OUT = (
    select(Enrollment)
    .where(
        Enrollment.family_id == bindparam("family"),
        Enrollment.ended_reason == ENDED_BY_OPT_OUT,
        Enrollment.ended_at == bindparam("opted_out_at"),
        Enrollment.consented_at.is_not(None),
    )
    .order_by(Enrollment.consented_at, Enrollment.id)
)


def following(session: Session, family: Family) -> Sequence[Enrollment]:
    """The enrollments of the clinics following ``family``, the one it consented to first first.

    Those with the family's consent; once it has opted out, those its opt-out ended (they
    were following it then), so that a red flag texted after STOP still reaches them.
    """
    if family.opted_out_at is None:
        return session.scalars(_FOLLOWING, {"family": family.id}).all()
    return session.scalars(
        _FOLLOWING_AT_OPT_OUT, {"family": family.id, "opted_out_at": family.opted_out_at}
    ).all()
