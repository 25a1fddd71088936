"""When a family's episode at a clinic opens and closes.

An episode opens with the family's first report (a text triaged routine or above) that
the clinic may read, and closes when staff close it, or once the family has sent nothing
for the clinic's ``episode_quiet_days``. Episodes are brought up to date from the stored
texts whenever someone reads them (``refresh``), so the inbound pipeline needs no hook
and a reader always sees the quiet close that is due.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from smsbot.clinics.queries import family_messages
from smsbot.db import upsert
from smsbot.models import Clinic, Enrollment, Episode, Message
from smsbot.vocabulary import severity

CLOSED_BY_STAFF, CLOSED_QUIET = "staff", "quiet"


def is_report(message: Message) -> bool:
    """A text from the family that triage put at routine or above: it opens an episode."""
    return message.direction == "in" and message.level is not None and severity(message.level) >= 1


def refresh(session: Session, enrollment: Enrollment, *, now: datetime) -> list[Episode]:
    """Open and close the enrollment's episodes as its texts say; the episodes, oldest first.

    Replays the family's texts since the latest episode began (or since the last one
    closed): a report with no episode open opens one, and a silence of the quiet days
    closes the open one at the end of that silence. Idempotent, and safe to run from two
    requests at once (an episode is keyed by its first report; a close is conditional).
    """
    quiet = timedelta(days=session.get_one(Clinic, enrollment.clinic_id).episode_quiet_days)
    latest = session.scalar(
        select(Episode)
        .where(Episode.enrollment_id == enrollment.id)
        .order_by(Episode.opened_at.desc())
        .limit(1)
    )
    current = latest if latest is not None and latest.closed_at is None else None
    since = None if latest is None else (latest.opened_at if current else latest.closed_at)
    texts = family_messages(enrollment).where(Message.direction == "in")
    if since is not None:
        texts = (
            texts.where(Message.created_at >= since) if current else texts.where(Message.created_at > since)
        )
    last_text = current.opened_at if current else None
    for message in session.scalars(texts.order_by(Message.created_at, Message.id)):
        if current is not None and last_text is not None and message.created_at >= last_text + quiet:
            _close(session, current, at=last_text + quiet, reason=CLOSED_QUIET, by=None)
            current = None
        if current is None and is_report(message):
            current = _open(session, enrollment, message)
        last_text = message.created_at if current is not None else last_text
    if current is not None and last_text is not None and now >= last_text + quiet:
        _close(session, current, at=last_text + quiet, reason=CLOSED_QUIET, by=None)
    session.flush()
    return episodes_of(session, enrollment)


def episodes_of(session: Session, enrollment: Enrollment) -> list[Episode]:
    """The enrollment's episodes as stored, oldest first."""
    return list(
        session.scalars(
            select(Episode)
            .where(Episode.enrollment_id == enrollment.id)
            .order_by(Episode.opened_at, Episode.id)
        )
    )


def _open(session: Session, enrollment: Enrollment, report: Message) -> Episode:
    insert = upsert(session, Episode).values(
        clinic_id=enrollment.clinic_id,
        enrollment_id=enrollment.id,
        family_id=enrollment.family_id,
        first_message_id=report.id,
        opened_at=report.created_at,
    )
    session.execute(
        insert.on_conflict_do_nothing(index_elements=[Episode.enrollment_id, Episode.first_message_id])
    )
    return session.scalars(
        select(Episode)
        .where(Episode.enrollment_id == enrollment.id, Episode.first_message_id == report.id)
        .execution_options(populate_existing=True)
    ).one()


def _close(session: Session, episode: Episode, *, at: datetime, reason: str, by: str | None) -> bool:
    closed = session.execute(
        update(Episode)
        .where(Episode.id == episode.id, Episode.closed_at.is_(None))
        .values(closed_at=at, close_reason=reason, closed_by=by)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.refresh(episode)
    return closed == 1


def close_by_staff(session: Session, episode: Episode, *, by: str, now: datetime) -> bool:
    """Close an open episode (False if it was already closed); a later report opens a new one."""
    return _close(session, episode, at=now, reason=CLOSED_BY_STAFF, by=by)
