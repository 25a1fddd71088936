"""What one clinic may read and change, always scoped by ``clinic_id``: shared by the API
and the dashboard.

Every function takes the clinic id and filters on it (directly, or through the clinic's
enrollments), or an enrollment already found that way, so a view cannot forget the scope:
another clinic's family or alert simply is not found, and the view answers 404. A clinic
reads a shared family's texts and check-ins only inside its own enrollment windows
(``message_visibility``). Writes that race (two nurses acknowledging one alert) are single
conditional statements, and the rule that guards erasing a family is here, not in a view.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, exists, func, nulls_last, or_, select
from sqlalchemy.orm import Session, joinedload

from smsbot import privacy
from smsbot.clinics.errors import ConflictError
from smsbot.models import Alert, AlertDelivery, CheckIn, Enrollment, EnrollmentWindow, Family, Message
from smsbot.vocabulary import LEVELS

# The queue's order: the most severe first; anything else (e.g. a "worse" check-in) after.
_SEVERITY = case({"emergency": 0, "urgent": 1}, value=Alert.level, else_=2)
UPCOMING_CHECKIN_STATUSES = ("pending", "sending")
OVERVIEW_DAYS = 7


@dataclass(frozen=True)
class FamilyRow:
    """A family as this clinic sees it: the family, the clinic's enrollment (its own details)
    and its status, and the family's last text among those the clinic may read."""

    family: Family
    enrollment: Enrollment
    last_contact_at: datetime | None = None
    last_level: str | None = None

    @property
    def status(self) -> str:
        """The one status a nurse needs: a stopped or unreachable number trumps the enrollment
        (a family that texted STOP can only be phoned, even once its enrollment has ended)."""
        if self.family.opted_out_at is not None:
            return "opted out"
        if self.enrollment.status == "ended":
            return "ended"
        if self.family.undeliverable_at is not None:
            return "undeliverable"
        if self.family.followup_hold is not None:
            return {"loss": "loss reported", "hospital": "in hospital"}[self.family.followup_hold]
        if self.enrollment.status == "awaiting_consent":
            return "awaiting YES"
        return "active"


@dataclass(frozen=True)
class AlertRow:
    """An alert and the clinic's enrollment of its family (None: a walk-in texter)."""

    alert: Alert
    enrollment: Enrollment | None


@dataclass(frozen=True)
class Page:
    rows: list[FamilyRow]
    number: int
    pages: int
    total: int


@dataclass(frozen=True)
class Overview:
    messages_by_level: dict[str, int]
    checkins: dict[str, int]  # sent | answered | undelivered
    open_alerts: int
    since: datetime


# What a clinic may read of a shared family -------------------------------------------


def inside_windows(enrollment_id: Any, moment: Any) -> ColumnElement[bool]:
    """``moment`` falls inside one of the enrollment's windows (values or columns)."""
    window = EnrollmentWindow
    # Everything but the windows comes from the enclosing query, however deeply nested.
    return (
        exists()
        .where(
            window.enrollment_id == enrollment_id,
            window.started_at <= moment,
            or_(window.ended_at.is_(None), moment <= window.ended_at),
        )
        .correlate_except(window)
    )


def message_visibility(enrollment_id: Any, clinic_id: Any) -> list[ColumnElement[bool]]:
    """Criteria for the messages of a shared family a clinic may read (values or columns).

    Untagged texts and its own, sent inside its windows (while it followed the family with
    its consent), never another clinic's; and the texts that raised its alerts (a red flag
    texted after STOP still alerts the clinics that followed the family then).
    """
    raised_its_alert = (
        exists().where(Alert.message_id == Message.id, Alert.clinic_id == clinic_id).correlate_except(Alert)
    )
    return [
        or_(Message.clinic_id.is_(None), Message.clinic_id == clinic_id),
        or_(inside_windows(enrollment_id, Message.created_at), raised_its_alert),
    ]


def family_messages(enrollment: Enrollment) -> Select[tuple[Message]]:
    """Messages a clinic may read for one enrollment (see ``message_visibility``)."""
    return select(Message).where(
        Message.family_id == enrollment.family_id, *message_visibility(enrollment.id, enrollment.clinic_id)
    )


def family_checkins(enrollment: Enrollment) -> Select[tuple[CheckIn]]:
    """Check-ins of this enrollment, plus the family's own triage check-ins inside its windows."""
    return select(CheckIn).where(
        CheckIn.family_id == enrollment.family_id,
        or_(
            CheckIn.enrollment_id == enrollment.id,
            and_(CheckIn.enrollment_id.is_(None), inside_windows(enrollment.id, CheckIn.created_at)),
        ),
    )


# Alerts ---------------------------------------------------------------------------------


def _alert_rows(clinic_id: int, *criteria: ColumnElement[bool]) -> Select[Any]:
    return (
        select(Alert, Enrollment)
        .options(joinedload(Alert.family), joinedload(Alert.message))
        .outerjoin(
            Enrollment, and_(Enrollment.family_id == Alert.family_id, Enrollment.clinic_id == Alert.clinic_id)
        )
        .where(Alert.clinic_id == clinic_id, *criteria)
    )


def open_alerts(session: Session, clinic_id: int) -> list[AlertRow]:
    """The queue: unacknowledged alerts, most severe then oldest first."""
    query = _alert_rows(clinic_id, Alert.acknowledged_at.is_(None))
    rows = session.execute(query.order_by(_SEVERITY, Alert.created_at, Alert.id))
    return [AlertRow(alert, enrollment) for alert, enrollment in rows]


def acknowledged_alerts(session: Session, clinic_id: int, limit: int = 200) -> list[AlertRow]:
    """The history: acknowledged alerts, most recently acknowledged first."""
    query = _alert_rows(clinic_id, Alert.acknowledged_at.is_not(None))
    rows = session.execute(query.order_by(Alert.acknowledged_at.desc(), Alert.id.desc()).limit(limit))
    return [AlertRow(alert, enrollment) for alert, enrollment in rows]


def find_alert_row(session: Session, clinic_id: int, alert_id: int) -> AlertRow | None:
    """One of the clinic's alerts, with its family as the clinic knows it; None if not the clinic's."""
    row = session.execute(_alert_rows(clinic_id, Alert.id == alert_id)).first()
    return AlertRow(*row) if row else None


def alert_deliveries(session: Session, alert: Alert) -> list[AlertDelivery]:
    """How the alert was sent to the clinic (on-call SMS, webhook) and how that went."""
    return list(
        session.scalars(
            select(AlertDelivery).where(AlertDelivery.alert_id == alert.id).order_by(AlertDelivery.id)
        )
    )


# Families -------------------------------------------------------------------------------


def _latest_inbound(column: Any, *criteria: ColumnElement[bool]) -> Any:
    """The family's latest text this clinic may read (``column`` of it), for each enrollment row."""
    return (
        select(column)
        .where(
            Message.family_id == Enrollment.family_id,
            Message.direction == "in",
            *criteria,
            *message_visibility(Enrollment.id, Enrollment.clinic_id),
        )
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(1)
        .correlate(Enrollment)
        .scalar_subquery()
    )


def _search_filter(query: str) -> ColumnElement[bool] | None:
    """Digits search the end of the phone number (staff know the last digits); words the baby's name."""
    query = query.strip()
    digits = "".join(ch for ch in query if ch.isdigit())
    if digits and len(digits) == len(query.replace(" ", "").replace("-", "")):
        return Family.phone.like(f"%{digits}")
    if query:
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return Enrollment.baby_name.ilike(pattern, escape="\\")
    return None


def family_rows(clinic_id: int) -> Select[Any]:
    """The clinic's families, each with its own enrollment and the last text it may read."""
    return (
        select(
            Family,
            Enrollment,
            _latest_inbound(Message.created_at).label("last_contact_at"),
            _latest_inbound(Message.level, Message.level.is_not(None)).label("last_level"),
        )
        .join(Enrollment, Enrollment.family_id == Family.id)
        .where(Enrollment.clinic_id == clinic_id)
    )


def search_families(
    session: Session, clinic_id: int, query: str = "", page: int = 1, per_page: int = 25
) -> Page:
    """The clinic's families, most recently in contact first, one page at a time."""
    statement = family_rows(clinic_id)
    condition = _search_filter(query)
    if condition is not None:
        statement = statement.where(condition)
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    pages = max(1, -(-total // per_page))
    number = min(max(page, 1), pages)
    last_contact = statement.selected_columns.last_contact_at
    rows = session.execute(
        statement.order_by(nulls_last(last_contact.desc()), Enrollment.enrolled_at.desc())
        .limit(per_page)
        .offset((number - 1) * per_page)
    ).all()
    return Page([FamilyRow(*row) for row in rows], number, pages, total)


def find_family(session: Session, clinic_id: int, family_id: int) -> FamilyRow | None:
    """The family if this clinic enrolled it (at any time), else None."""
    row = session.execute(family_rows(clinic_id).where(Family.id == family_id)).first()
    return FamilyRow(*row) if row else None


def timeline(session: Session, enrollment: Enrollment, limit: int = 200) -> list[Message]:
    """The latest of the conversation this clinic may read (``clinics.family_messages``), oldest first."""
    latest = family_messages(enrollment).order_by(Message.created_at.desc(), Message.id.desc())
    return list(reversed(session.scalars(latest.limit(limit)).all()))


def upcoming_and_past_checkins(
    session: Session, enrollment: Enrollment
) -> tuple[list[CheckIn], list[CheckIn]]:
    """(upcoming soonest first, past latest first) check-ins this clinic may read."""
    rows = session.scalars(family_checkins(enrollment).order_by(CheckIn.due_at, CheckIn.id)).all()
    upcoming = [c for c in rows if c.status in UPCOMING_CHECKIN_STATUSES]
    past = [c for c in reversed(rows) if c.status not in UPCOMING_CHECKIN_STATUSES]
    return upcoming, past


def erase_family(session: Session, enrollment: Enrollment, *, now: datetime, by: str) -> dict[str, int]:
    """Erase, for good, the family this clinic enrolled; rows removed per table.

    Refused (ConflictError) while another clinic still follows the family: one clinic does
    not erase what another still needs; it can unenroll, or ask the operator to erase.
    """
    others = session.scalar(
        select(func.count(Enrollment.id)).where(
            Enrollment.family_id == enrollment.family_id,
            Enrollment.clinic_id != enrollment.clinic_id,
            Enrollment.status != "ended",
        )
    )
    if others:
        raise ConflictError(
            "followed_elsewhere",
            "another clinic still follows this family; unenroll here, or ask the operator to erase",
        )
    return privacy.erase_family(session, enrollment.family, now=now, by=by, clinic_id=enrollment.clinic_id)


# Overview -------------------------------------------------------------------------------


def overview(session: Session, clinic_id: int, *, now: datetime) -> Overview:
    """Counts for the last week: what families said (by level), check-ins, open alerts."""
    since = now - timedelta(days=OVERVIEW_DAYS)
    by_level = dict(
        session.execute(
            select(Message.level, func.count())
            .join(Enrollment, Enrollment.family_id == Message.family_id)
            .where(
                Enrollment.clinic_id == clinic_id,
                *message_visibility(Enrollment.id, Enrollment.clinic_id),
                Message.direction == "in",
                Message.level.is_not(None),
                Message.created_at >= since,
            )
            .group_by(Message.level)
        ).all()
    )
    statuses = dict(
        session.execute(
            select(CheckIn.status, func.count())
            .join(Enrollment, CheckIn.enrollment_id == Enrollment.id)
            .where(Enrollment.clinic_id == clinic_id, CheckIn.sent_at >= since)
            .group_by(CheckIn.status)
        ).all()
    )
    open_count = session.scalar(
        select(func.count())
        .select_from(Alert)
        .where(Alert.clinic_id == clinic_id, Alert.acknowledged_at.is_(None))
    )
    return Overview(
        messages_by_level={level: by_level.get(level, 0) for level in reversed(LEVELS)},
        checkins={
            "sent": sum(statuses.values()),
            "answered": statuses.get("answered", 0),
            "undelivered": statuses.get("undelivered", 0),
        },
        open_alerts=open_count or 0,
        since=since,
    )
