"""Scheduled check-ins: schedule programmes, cancel them, and record parents' answers.

``CheckIn`` rows are the source of truth; ``dispatch.py`` sends the due ones. These are
the functions the conversation pipeline and the clinic side call: plain functions over a
SQLAlchemy session, no Flask, and ``now`` is passed in so tests choose the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import ColumnElement, Integer, and_, bindparam, or_, select, update
from sqlalchemy.orm import Session

from smsbot.checkins.clock import family_zone, next_allowed, quiet_window, to_local, wall_clock
from smsbot.checkins.programmes import load_programmes, normalise_answer
from smsbot.config import Settings, default_rules_dir
from smsbot.models import CheckIn, Enrollment, Family, Message
from smsbot.vocabulary import OUTCOMES

ANSWER_WINDOW = timedelta(hours=48)  # a reply this long after a check-in still answers it
UNANSWERED_STATUSES = ("sent", "unanswered")  # sent and still without an answer
# A free-text answer that triage puts at these levels is recorded as "worse".
RED_FLAG_LEVELS = ("urgent", "emergency")
REPLACED = "replaced by a newer report"


def schedule_programme(
    session: Session,
    family: Family,
    programme_id: str,
    *,
    start: datetime,
    enrollment: Enrollment | None = None,
    settings: Settings,
    now: datetime | None = None,
) -> list[CheckIn]:
    """Schedule a programme's steps from ``start`` (naive UTC); return its pending check-ins.

    Day steps land on the family's local wall clock (10:00 stays 10:00 across DST); hour
    steps are elapsed time; both move out of quiet hours. Pending check-ins of the same
    programme for this family (and enrollment) are replaced, not piled up. The dedupe key
    names the step and its due time, so scheduling the same thing twice adds nothing,
    while a later report with a different time gets fresh check-ins. Steps already in
    the past (e.g. a birth-date programme started late) are left out, and nothing is
    scheduled while the family's sensitive news holds its messages (``smsbot.conversation.news``).
    """
    if family.followup_hold is not None:
        return []  # sensitive news (a loss, a hospital stay): no automated messages until resumed
    programme = load_programmes(settings.rules_path).programme(programme_id)
    now = now or start
    clinic = enrollment.clinic if enrollment else None
    zone = family_zone(family, clinic, settings)
    window = quiet_window(clinic, settings)
    if programme.anchor == "birth" and family.baby_birth_date:
        anchor = family.baby_birth_date
    else:
        anchor = to_local(start, zone).date()
    enrollment_id = enrollment.id if enrollment else None
    wanted: dict[str, tuple[int, datetime]] = {}
    for step in programme.steps:
        if step.hours is not None:
            due = start + timedelta(hours=step.hours)
        else:
            due = wall_clock(anchor + timedelta(days=step.day or 0), step.at, zone)  # type: ignore[arg-type]
        if due >= now:
            key = f"{family.id}:{programme.id}:{enrollment_id or 0}:{due:%Y%m%dT%H%M}:{step.number}"
            wanted[key] = (step.number, next_allowed(due, zone, window))

    # One read finds the rows already wanted and the pending rest of the run; a newer report
    # replaces the rest with a conditional UPDATE, not by writing back what was read: a row a
    # dispatcher claims in the meantime is no longer pending and is left alone.
    run = {"keys": list(wanted), "family": family.id, "programme": programme.id, "enrollment": enrollment_id}
    existing: dict[str, CheckIn] = {}
    replaced = []
    for checkin in session.scalars(_RUN_CHECKINS, run):
        if checkin.dedupe_key in wanted:
            existing[checkin.dedupe_key] = checkin
        else:
            replaced.append(checkin.id)
    if replaced:
        cancel_where(session, REPLACED, CheckIn.id.in_(replaced))
    scheduled = []
    added = False
    for key, (number, due) in wanted.items():
        checkin = existing.get(key)
        if checkin is None:
            added = True
            checkin = CheckIn(
                family_id=family.id,
                enrollment_id=enrollment_id,
                programme=programme.id,
                step=number,
                status="pending",
                due_at=due,
                attempts=0,
                dedupe_key=key,
            )
            session.add(checkin)
        elif checkin.status == "cancelled":
            # The same check-in asked for again (e.g. STOP, then START and a new report).
            checkin.status, checkin.due_at, checkin.attempts, checkin.last_error = "pending", due, 0, None
        if checkin.status == "pending":
            scheduled.append(checkin)
    if added:
        session.flush()  # the new rows' ids, and a second scheduling in this session sees them
    return scheduled


def schedule_after_decision(
    session: Session, family: Family, level: str, *, now: datetime, settings: Settings
) -> list[CheckIn]:
    """Start the follow-up programme the triage level triggers (``info``: none)."""
    programme_id = load_programmes(settings.rules_path).triggers.get(level)
    if programme_id is None:
        return []
    return schedule_programme(session, family, programme_id, start=now, settings=settings, now=now)


def start_enrollment(
    session: Session, enrollment: Enrollment, *, now: datetime, settings: Settings
) -> list[CheckIn]:
    """Start a consented enrollment's programme (the clinic's choice, else the default one)."""
    programme_id = enrollment.programme or load_programmes(settings.rules_path).triggers["enrollment"]
    return schedule_programme(
        session, enrollment.family, programme_id, start=now, enrollment=enrollment, settings=settings, now=now
    )


def cancel_pending(
    session: Session, family: Family, *, enrollment: Enrollment | None = None, reason: str
) -> int:
    """Cancel the family's pending check-ins (only this enrollment's, if given): STOP, unenroll."""
    conditions = [CheckIn.family_id == family.id]
    if enrollment is not None:
        conditions.append(CheckIn.enrollment_id == enrollment.id)
    return cancel_where(session, reason, *conditions)


def cancel_where(session: Session, reason: str, *conditions: ColumnElement[bool]) -> int:
    """Cancel the pending check-ins matching ``conditions``, noting ``reason``; how many."""
    result = session.execute(
        update(CheckIn)
        .where(CheckIn.status == "pending", *conditions)
        .values(status="cancelled", last_error=reason[:255])
    )
    return result.rowcount  # type: ignore[attr-defined, no-any-return]


# Statements the inbound pipeline runs for nearly every text are built once: composing one
# costs more than running it.
_OPEN_CHECKIN = (
    select(CheckIn)
    .where(
        CheckIn.family_id == bindparam("family"),
        CheckIn.status == "sent",
        CheckIn.sent_at >= bindparam("since"),
    )
    .order_by(CheckIn.sent_at.desc())
    .limit(1)
)
# The rows a programme run wants already, and the pending rest of that run.
_RUN_CHECKINS = select(CheckIn).where(
    or_(
        CheckIn.dedupe_key.in_(bindparam("keys", expanding=True)),
        and_(
            CheckIn.family_id == bindparam("family"),
            CheckIn.programme == bindparam("programme"),
            CheckIn.enrollment_id.is_not_distinct_from(bindparam("enrollment", type_=Integer)),
            CheckIn.status == "pending",
        ),
    )
)


def open_checkin(session: Session, family: Family, now: datetime) -> CheckIn | None:
    """The latest check-in sent to the family that still awaits an answer, if any."""
    return session.scalars(_OPEN_CHECKIN, {"family": family.id, "since": now - ANSWER_WINDOW}).first()


def parse_answer(text: str, *, rules_dir: Path | None = None) -> str | None:
    """The outcome (better, same or worse) of a whole short answer ("2.", " Better!", "3 worse"), else None.

    Only the whole message counts: "not better" or a sentence is free text, which the
    caller records as outcome "text" and sends through triage.
    """
    answers = load_programmes(rules_dir or default_rules_dir()).answers
    key = normalise_answer(text)
    if key in answers:
        return answers[key]
    number, _, word = key.partition(" ")
    if number.isdigit() and number in answers and answers.get(word) == answers[number]:
        return answers[number]
    return None


def record_answer(session: Session, checkin: CheckIn, outcome: str, *, now: datetime) -> None:
    """Store the answer; an answered check-in also breaks the family's unanswered streak."""
    if outcome not in (*OUTCOMES, "text"):
        raise ValueError(f"unknown check-in outcome {outcome!r}")
    checkin.status, checkin.answered_at, checkin.outcome = "answered", now, outcome
    session.flush()


@dataclass(frozen=True)
class Answer:
    """A parent's reply recorded on a check-in; ``reply`` is ours (None: let triage answer)."""

    checkin: CheckIn
    outcome: str  # better | same | worse | text
    reply: str | None


def answer_open_checkin(
    session: Session, family: Family, text: str, level: str, *, now: datetime, settings: Settings
) -> Answer | None:
    """Record ``text`` as the answer to the family's open check-in, if one is open.

    ``level`` is the triage of the same text: free text with a red flag ("he turned
    blue") is recorded as "worse", other free text as "text". The reply is the short
    thanks for better/same, and the fallback urgent text for worse (triage's own
    reply should win; the caller decides).
    """
    checkin = open_checkin(session, family, now)
    if checkin is None:
        return None
    outcome = parse_answer(text, rules_dir=settings.rules_path) or (
        "worse" if level in RED_FLAG_LEVELS else "text"
    )
    record_answer(session, checkin, outcome, now=now)
    programmes = load_programmes(settings.rules_path)
    reply = programmes.replies.get(outcome)
    if reply is not None:
        reply = programmes.render(
            reply, family.language, baby_name=family.baby_name, emergency_number=settings.emergency_number
        )
    return Answer(checkin=checkin, outcome=outcome, reply=reply)


def mark_undelivered(session: Session, provider_sid: str, error_code: int | None) -> CheckIn | None:
    """A status callback said ``undelivered``/``failed``: the check-in never reached the family.

    Found through the outbound ``Message`` (its provider SID is unique and indexed).
    """
    checkin = session.scalars(
        select(CheckIn)
        .join(Message, Message.checkin_id == CheckIn.id)
        .where(Message.provider_sid == provider_sid)
    ).first()
    if checkin is not None and checkin.status in UNANSWERED_STATUSES:
        checkin.status = "undelivered"
        checkin.last_error = f"undelivered (Twilio error {error_code})" if error_code else "undelivered"
        session.flush()
    return checkin
