"""Scheduled check-ins: schedule programmes, dispatch what is due, record answers.

``CheckIn`` rows are the source of truth; APScheduler only calls ``dispatch_due`` and
``maintenance`` (see ``scheduler.py``). Everything here is plain functions over a
SQLAlchemy session or ``Database``: no Flask, no scheduler, and ``now`` is always passed in
so tests choose the clock.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session, joinedload

from smsbot.config import Settings, default_rules_dir
from smsbot.db import Database
from smsbot.localtime import family_zone, next_allowed, quiet_window, to_local, wall_clock
from smsbot.messaging import Transport, TransportError
from smsbot.messaging.segments import count_segments
from smsbot.metrics import CHECKINS, DISPATCH_LAG
from smsbot.models import CheckIn, Enrollment, Event, Family, Message
from smsbot.programmes import OUTCOMES, Programme, Programmes, load_programmes, normalise_answer

logger = logging.getLogger(__name__)

ANSWER_WINDOW = timedelta(hours=48)  # a reply this long after a check-in still answers it
LEASE = timedelta(minutes=10)  # a claimed batch must be sent and recorded within this
CONSENT_RECHECK = timedelta(hours=1)  # how often a check-in waiting for consent is looked at
MAX_ATTEMPTS = 5
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=1)
UNANSWERED_LIMIT = 3  # check-ins in a row without an answer before we stop
UNANSWERED_STATUSES = ("sent", "unanswered")
# A free-text answer that triage puts at these levels is recorded as "worse".
RED_FLAG_LEVELS = ("urgent", "emergency")
# Twilio drops a check-in it could not deliver within an hour (error 30036) rather than
# letting it arrive in the middle of the night.
VALIDITY_PERIOD = 3600
# Sends are network-bound: a few threads overlap their latency (Twilio allows ~100
# concurrent requests per account before answering 429, which we back off from).
SEND_THREADS = 8


@dataclass
class DispatchReport:
    """What one ``dispatch_due`` call did with the check-ins it claimed."""

    sent: int = 0
    deferred: int = 0  # quiet hours: moved to the morning
    retried: int = 0  # transient failure: back off and try again
    failed: int = 0
    missed: int = 0  # due longer ago than the grace period
    skipped: int = 0  # opted out, enrollment ended or not yet consented
    ended: int = 0  # the gentle last message went out instead of a check-in
    recovered: int = 0  # stale leases of a stopped worker put back to pending

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))


# --- scheduling ---------------------------------------------------------------------------


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
    the past (e.g. a birth-date programme started late) are left out.
    """
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

    same_run = (
        CheckIn.enrollment_id.is_(None) if enrollment_id is None else CheckIn.enrollment_id == enrollment_id
    )
    _cancel(
        session,
        "replaced by a newer report",
        CheckIn.family_id == family.id,
        CheckIn.programme == programme.id,
        same_run,
        CheckIn.dedupe_key.not_in(wanted),
    )
    existing = {
        c.dedupe_key: c for c in session.scalars(select(CheckIn).where(CheckIn.dedupe_key.in_(wanted)))
    }
    scheduled = []
    for key, (number, due) in wanted.items():
        checkin = existing.get(key)
        if checkin is None:
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
    session.flush()
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
    return _cancel(session, reason, *conditions)


def _cancel(session: Session, reason: str, *conditions: ColumnElement[bool]) -> int:
    result = session.execute(
        update(CheckIn)
        .where(CheckIn.status == "pending", *conditions)
        .values(status="cancelled", last_error=reason[:255])
    )
    return result.rowcount  # type: ignore[attr-defined, no-any-return]


# --- answers ------------------------------------------------------------------------------


def open_checkin(session: Session, family: Family, now: datetime) -> CheckIn | None:
    """The latest check-in sent to the family that still awaits an answer, if any."""
    return session.scalars(
        select(CheckIn)
        .where(
            CheckIn.family_id == family.id,
            CheckIn.status == "sent",
            CheckIn.sent_at >= now - ANSWER_WINDOW,
        )
        .order_by(CheckIn.sent_at.desc())
        .limit(1)
    ).first()


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
    rendered = _render(programmes, reply, family, settings) if reply else None
    return Answer(checkin=checkin, outcome=outcome, reply=rendered)


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


# --- dispatch -----------------------------------------------------------------------------


def dispatch_due(
    db: Database,
    transport: Transport,
    settings: Settings,
    now: datetime,
    *,
    batch_size: int = 100,
    worker_id: str | None = None,
    send_threads: int = SEND_THREADS,
) -> DispatchReport:
    """Send every check-in due at ``now``, in batches claimed atomically, and record the outcome.

    Each batch is claimed in one statement (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so
    concurrent workers never share a row; SQLite serialises writers), marked ``sending``
    with a lease, committed, then sent on a small thread pool and recorded in one commit.
    """
    programmes = load_programmes(settings.rules_path)
    report = DispatchReport()
    with db.session() as session:
        report.recovered = recover_stale_leases(session, now)
    with ThreadPoolExecutor(max_workers=send_threads, thread_name_prefix="checkin-send") as pool:
        while ids := _claim(db, now, batch_size):
            with db.session() as session:
                _dispatch_batch(session, ids, transport, settings, programmes, now, pool, report)
    for field in fields(report):
        if count := getattr(report, field.name):
            CHECKINS.labels(result=field.name).inc(count)
    if report:
        logger.info("dispatch %s at %s: %s", worker_id or "-", now.isoformat(), report)
    return report


def recover_stale_leases(session: Session, now: datetime) -> int:
    """Put back to pending the check-ins a stopped worker claimed and never recorded.

    Trade-off: such a row may or may not have reached Twilio (the worker could have died
    between Twilio's answer and our commit) and ``Transport`` has no way to ask. We re-pend
    it: a rare duplicate "how is your baby?" is better than a silently lost one. The window
    is one batch's sends (well under a second), and the note in ``last_error`` makes any
    such row visible in ``smsbot checkins list``.
    """
    result = session.execute(
        update(CheckIn)
        .where(CheckIn.status == "sending", CheckIn.claimed_until < now)
        .values(
            status="pending",
            claimed_until=None,
            attempts=CheckIn.attempts + 1,
            last_error="lease expired: a worker stopped mid-send; re-sent (possibly twice)",
        )
    )
    return result.rowcount  # type: ignore[attr-defined, no-any-return]


def _claim(db: Database, now: datetime, limit: int) -> list[int]:
    """Atomically mark up to ``limit`` due check-ins ``sending`` for this worker; their ids."""
    due = (
        select(CheckIn.id)
        .where(
            CheckIn.status == "pending",
            CheckIn.due_at <= now,
            or_(CheckIn.claimed_until.is_(None), CheckIn.claimed_until <= now),
        )
        .order_by(CheckIn.due_at)
        .limit(limit)
    )
    if db.is_postgres:
        due = due.with_for_update(skip_locked=True)
    with db.session() as session:
        claimed = session.scalars(
            update(CheckIn)
            .where(CheckIn.id.in_(due.scalar_subquery()))
            .values(status="sending", claimed_until=now + LEASE)
            .returning(CheckIn.id),
            execution_options={"synchronize_session": False},
        )
        return list(claimed)


def _dispatch_batch(
    session: Session,
    ids: list[int],
    transport: Transport,
    settings: Settings,
    programmes: Programmes,
    now: datetime,
    pool: ThreadPoolExecutor,
    report: DispatchReport,
) -> None:
    checkins = session.scalars(
        select(CheckIn)
        .where(CheckIn.id.in_(ids))
        .options(joinedload(CheckIn.family), joinedload(CheckIn.enrollment).joinedload(Enrollment.clinic))
    ).all()
    streaks = _unanswered_streaks(session, {c.family_id for c in checkins})
    ending: set[int] = set()  # families getting the gentle last message in this batch
    outgoing: list[tuple[CheckIn, str]] = []
    for checkin in checkins:
        checkin.claimed_until = None
        programme = programmes.programmes.get(checkin.programme)
        route, reason = _route(checkin, programme, settings, now)
        if route != "send":
            field = _apply_route(checkin, route, reason, settings, now)
            setattr(report, field, getattr(report, field) + 1)
        elif checkin.family_id in ending:
            _set(checkin, "cancelled", "ended after unanswered check-ins")
            report.skipped += 1
        elif streaks.get(checkin.family_id, 0) >= UNANSWERED_LIMIT:
            ending.add(checkin.family_id)
            outgoing.append(
                (checkin, _render(programmes, programmes.texts["last_message"], checkin.family, settings))
            )
        else:
            step = programme.step(checkin.step)  # type: ignore[union-attr]  # route checked it
            outgoing.append(
                (checkin, _render(programmes, programmes.checkin_text(step), checkin.family, settings))
            )  # type: ignore[arg-type]

    results = pool.map(lambda item: _send(transport, item[0].family.address, item[1]), outgoing)
    for (checkin, body), result in zip(outgoing, results, strict=True):
        if isinstance(result, TransportError):
            _record_failure(session, checkin, result, now, report)
        else:
            _record_sent(
                session, checkin, body, result, now, ended=checkin.family_id in ending, report=report
            )


def _route(
    checkin: CheckIn, programme: Programme | None, settings: Settings, now: datetime
) -> tuple[str, str]:
    """What a claimed check-in gets (send, cancel, fail, hold, miss or defer) and why."""
    family, enrollment = checkin.family, checkin.enrollment
    if family.opted_out or family.undeliverable_at is not None:
        return "cancel", "family opted out or unreachable"
    if enrollment is not None and enrollment.status == "ended":
        return "cancel", "enrollment ended"
    if programme is None or programme.step(checkin.step) is None:
        return "fail", "programme or step no longer in checkins.yaml"
    if enrollment is not None and enrollment.status != "active":
        return "hold", "waiting for the family's consent"
    if checkin.due_at < _grace_cutoff(settings, now):
        return "miss", f"not sent within {settings.checkin_grace_hours:g} h of its due time"
    return ("defer", "quiet hours") if _allowed_at(checkin, settings, now) != now else ("send", "")


def _apply_route(checkin: CheckIn, route: str, reason: str, settings: Settings, now: datetime) -> str:
    """Update a check-in that is not sent now; the ``DispatchReport`` field to count it in."""
    if route == "defer":
        checkin.status, checkin.due_at = "pending", _allowed_at(checkin, settings, now)
        return "deferred"
    if route == "hold":
        # Looked at again later; the grace period still runs from due_at.
        _set(checkin, "pending", reason)
        checkin.claimed_until = now + CONSENT_RECHECK
        return "skipped"
    status, field = {
        "cancel": ("cancelled", "skipped"),
        "fail": ("failed", "failed"),
        "miss": ("missed", "missed"),
    }[route]
    _set(checkin, status, reason)
    return field


def _allowed_at(checkin: CheckIn, settings: Settings, now: datetime) -> datetime:
    """``now``, or the end of quiet hours in the family's zone (clinic window if enrolled)."""
    clinic = checkin.enrollment.clinic if checkin.enrollment else None
    return next_allowed(now, family_zone(checkin.family, clinic, settings), quiet_window(clinic, settings))


def _grace_cutoff(settings: Settings, now: datetime) -> datetime:
    """Check-ins due before this are too stale to send (e.g. after downtime): missed."""
    return now - timedelta(hours=settings.checkin_grace_hours)


def _set(checkin: CheckIn, status: str, last_error: str | None) -> None:
    checkin.status, checkin.last_error = status, last_error


def _render(programmes: Programmes, text: dict[str, str], family: Family, settings: Settings) -> str:
    return programmes.render(
        text, family.language, baby_name=family.baby_name, emergency_number=settings.emergency_number
    )


def _send(transport: Transport, to: str, body: str) -> str | TransportError:
    """The provider SID, or the error (returned, so one failure never stops the batch)."""
    try:
        return transport.send(to, body, validity_period=VALIDITY_PERIOD)
    except TransportError as exc:
        return exc
    except Exception as exc:  # a bug in a transport must not strand the batch in 'sending'
        logger.exception("transport raised an unexpected error")
        return TransportError(f"{type(exc).__name__}: {exc}")


def _record_sent(
    session: Session,
    checkin: CheckIn,
    body: str,
    sid: str,
    now: datetime,
    *,
    ended: bool,
    report: DispatchReport,
) -> None:
    family, enrollment = checkin.family, checkin.enrollment
    DISPATCH_LAG.observe((now - checkin.due_at).total_seconds())
    checkin.status = "ended" if ended else "sent"
    checkin.attempts += 1
    checkin.sent_at, checkin.provider_sid, checkin.last_error = now, sid, None
    session.add(
        Message(
            family_id=family.id,
            clinic_id=enrollment.clinic_id if enrollment else None,
            direction="out",
            kind="checkin",
            body=body,
            provider_sid=sid,
            checkin_id=checkin.id,
            status="queued",
            lang=family.language,
            segments=count_segments(body),
            created_at=now,
        )
    )
    if ended:
        reason = f"ended after {UNANSWERED_LIMIT} unanswered check-ins"
        cancelled = _cancel(session, reason, CheckIn.family_id == family.id, CheckIn.id != checkin.id)
        _event(session, family, "checkins_ended", now, programme=checkin.programme, cancelled=cancelled)
        report.ended += 1
    else:
        report.sent += 1


def _record_failure(
    session: Session, checkin: CheckIn, error: TransportError, now: datetime, report: DispatchReport
) -> None:
    checkin.attempts += 1
    checkin.last_error = str(error)[:255]
    if error.opted_out:
        # Twilio 21610: the parent texted STOP to the number; never message them again.
        family = checkin.family
        family.opted_out_at = family.opted_out_at or now
        checkin.status = "failed"
        cancelled = _cancel(session, "family opted out", CheckIn.family_id == family.id)
        _event(session, family, "opted_out", now, source="provider", code=error.code, cancelled=cancelled)
        report.failed += 1
    elif error.permanent or checkin.attempts >= MAX_ATTEMPTS:
        checkin.status = "failed"
        report.failed += 1
    else:
        checkin.status = "pending"
        checkin.due_at = now + backoff(checkin.attempts)
        report.retried += 1


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """1 min · 2^(attempts-1), capped at an hour, ±20 % jitter so retries do not stampede."""
    delay = min(BACKOFF_BASE * 2 ** (attempts - 1), BACKOFF_CAP)
    return delay * (rng or random).uniform(0.8, 1.2)


def _unanswered_streaks(session: Session, family_ids: Iterable[int]) -> dict[int, int]:
    """Per family: how many of its latest sent check-ins in a row got no answer (up to the limit).

    Only check-ins sent after the family last texted us count, and a gentle last message
    ("ended") breaks the run, so the programme is ended (and that message sent) once.
    """
    ranked = (
        select(
            CheckIn.family_id,
            CheckIn.status,
            func.row_number()
            .over(partition_by=CheckIn.family_id, order_by=CheckIn.sent_at.desc())
            .label("rank"),
        )
        .join(Family, Family.id == CheckIn.family_id)
        .where(
            CheckIn.family_id.in_(list(family_ids)),
            CheckIn.sent_at.is_not(None),
            or_(Family.last_contact_at.is_(None), CheckIn.sent_at > Family.last_contact_at),
        )
        .subquery()
    )
    rows = session.execute(
        select(ranked.c.family_id, ranked.c.status)
        .where(ranked.c.rank <= UNANSWERED_LIMIT)
        .order_by(ranked.c.family_id, ranked.c.rank)
    )
    streaks = {}
    for family_id, statuses in groupby(rows, key=itemgetter(0)):
        streak = 0
        for _, status in statuses:
            if status not in UNANSWERED_STATUSES:
                break
            streak += 1
        streaks[family_id] = streak
    return streaks


def _event(session: Session, family: Family, kind: str, now: datetime, **detail: Any) -> None:
    session.add(Event(family_id=family.id, kind=kind, detail=detail, created_at=now))


# --- maintenance --------------------------------------------------------------------------


def maintenance(db: Database, settings: Settings, now: datetime) -> dict[str, int]:
    """Daily upkeep: close check-ins nobody answered, recover leases a stopped worker left,
    and mark missed what is too stale to send, so ``checkins list --due`` tells the truth
    even when no dispatcher ran (the dispatcher would mark them missed too)."""
    with db.session() as session:
        unanswered = session.execute(
            update(CheckIn)
            .where(CheckIn.status == "sent", CheckIn.sent_at < now - ANSWER_WINDOW)
            .values(status="unanswered")
        ).rowcount  # type: ignore[attr-defined]
        recovered = recover_stale_leases(session, now)
        missed = session.execute(
            update(CheckIn)
            .where(CheckIn.status == "pending", CheckIn.due_at < _grace_cutoff(settings, now))
            .values(status="missed", last_error="too late to send")
        ).rowcount  # type: ignore[attr-defined]
    counts = {"unanswered": unanswered, "recovered": recovered, "missed": missed}
    logger.info("check-in maintenance at %s: %s", now.isoformat(), counts)
    return counts
