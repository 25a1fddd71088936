"""Dispatch: send the check-ins that are due, exactly once, and record what happened.

APScheduler calls ``dispatch_due`` every few seconds and ``maintenance`` daily (see
``scheduler.py``); tests call them directly with a chosen ``now``. Several workers may run
``dispatch_due`` at once: rows are claimed atomically, so none is sent twice.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from functools import lru_cache
from itertools import groupby
from operator import itemgetter
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.orm import Session, joinedload

from smsbot.config import Settings
from smsbot.db import Database
from smsbot.families import opt_out
from smsbot.localtime import family_zone, next_allowed, quiet_window
from smsbot.messaging import Transport, TransportError
from smsbot.messaging.segments import count_segments
from smsbot.metrics import CHECKINS, DISPATCH_LAG
from smsbot.models import CheckIn, Enrollment, Event, Family, Message
from smsbot.programmes import Programme, Programmes, load_programmes
from smsbot.reminders import ANSWER_WINDOW, UNANSWERED_STATUSES, cancel_where, render_text

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=10)  # a claimed batch must be sent and recorded within this
CONSENT_RECHECK = timedelta(hours=1)  # how often a check-in waiting for consent is looked at
MAX_ATTEMPTS = 5
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=1)
UNANSWERED_LIMIT = 3  # check-ins in a row without an answer before we stop
# Twilio drops a check-in it could not deliver within an hour (error 30036) rather than
# letting it arrive in the middle of the night.
VALIDITY_PERIOD = 3600
# Sends are network-bound: a few threads overlap their latency (Twilio allows ~100
# concurrent requests per account before answering 429, which we back off from).
SEND_THREADS = 8

# Check-in bodies repeat (one text per step and language): count each once.
_segments = lru_cache(maxsize=1024)(count_segments)


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
        else:
            if streaks.get(checkin.family_id, 0) >= UNANSWERED_LIMIT:
                ending.add(checkin.family_id)
                text = programmes.texts["last_message"]
            else:
                text = programmes.checkin_text(programme.step(checkin.step))  # type: ignore[union-attr, arg-type]
            outgoing.append((checkin, render_text(programmes, text, checkin.family, settings)))

    results = pool.map(lambda item: _send(transport, item[0].family.address, item[1]), outgoing)
    messages = []
    for (checkin, body), result in zip(outgoing, results, strict=True):
        if isinstance(result, TransportError):
            _record_failure(session, checkin, result, now, report)
        else:
            ended = checkin.family_id in ending
            messages.append(_record_sent(session, checkin, body, result, now, ended=ended, report=report))
    if messages:
        # One executemany, not one ORM insert per row: the batch's biggest cost otherwise.
        session.execute(insert(Message), messages)


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
) -> dict[str, Any]:
    """Mark the check-in sent (or ended); the outbound ``Message`` row to insert for it."""
    family, enrollment = checkin.family, checkin.enrollment
    DISPATCH_LAG.observe((now - checkin.due_at).total_seconds())
    checkin.status = "ended" if ended else "sent"
    checkin.attempts += 1
    checkin.sent_at, checkin.provider_sid, checkin.last_error = now, sid, None
    if ended:
        reason = f"ended after {UNANSWERED_LIMIT} unanswered check-ins"
        cancelled = cancel_where(session, reason, CheckIn.family_id == family.id, CheckIn.id != checkin.id)
        _event(session, family, "checkins_ended", now, programme=checkin.programme, cancelled=cancelled)
        report.ended += 1
    else:
        report.sent += 1
    return {
        "family_id": family.id,
        "clinic_id": enrollment.clinic_id if enrollment else None,
        "direction": "out",
        "kind": "checkin",
        "body": body,
        "provider_sid": sid,
        "checkin_id": checkin.id,
        "status": "queued",
        "lang": family.language,
        "segments": _segments(body),
        "created_at": now,
    }


def _record_failure(
    session: Session, checkin: CheckIn, error: TransportError, now: datetime, report: DispatchReport
) -> None:
    checkin.attempts += 1
    checkin.last_error = str(error)[:255]
    if error.opted_out:
        # Twilio 21610: the parent texted STOP to the number; never message them again.
        checkin.status = "failed"
        opt_out(session, checkin.family, now=now, source="provider", code=error.code)
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
