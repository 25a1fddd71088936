"""Dispatch: send the check-ins that are due, exactly once, and record what happened.

APScheduler calls ``dispatch_due`` every few seconds and ``maintenance`` daily (see
``scheduler.py``); tests call them directly with a chosen ``now``. Several workers may run
``dispatch_due`` at once: rows are claimed atomically, so none is sent twice. A worker that
dies mid-batch leaves its claimed rows ``sending``; once the claim's lease runs out another
worker asks the provider what was really sent (``reconcile_stale_claims``) rather than
sending the batch again.
"""

from __future__ import annotations

import logging
import random
import time
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
from smsbot.messaging import SentLookup, SentRecord, Transport, TransportError
from smsbot.messaging.segments import count_segments
from smsbot.metrics import CHECKINS, DISPATCH_LAG
from smsbot.models import CheckIn, Enrollment, Event, Family, Message
from smsbot.programmes import Programme, Programmes, load_programmes
from smsbot.reminders import ANSWER_WINDOW, UNANSWERED_STATUSES, cancel_where, render_text

logger = logging.getLogger(__name__)

CONSENT_RECHECK = timedelta(hours=1)  # how often a check-in waiting for consent is looked at
MAX_ATTEMPTS = 5
BACKOFF_BASE = timedelta(minutes=1)  # the default of SMSBOT_RETRY_BACKOFF_SECONDS
BACKOFF_CAP = timedelta(hours=1)
# Our clock and the provider's disagree a little, and Twilio stamps whole seconds: look
# this much further back than the check-in's due time for what a stopped worker sent.
LOOKUP_SKEW = timedelta(minutes=1)
RECONCILE_EVERY = 1.0  # seconds between looks for expired claims during one dispatch call
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
    # A stopped worker's expired claims: found at the provider, so recorded as sent (and
    # counted in ``sent``/``ended`` too, since the dead worker never counted them)…
    reconciled: int = 0
    recovered: int = 0  # …or not found there, so put back to pending and sent again

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
    First, and about every second of a long call, claims a stopped worker left past their
    lease are reconciled with the provider (``reconcile_stale_claims``).
    """
    programmes = load_programmes(settings.rules_path)
    report = DispatchReport()
    lease = timedelta(seconds=settings.claim_lease_seconds)
    started = time.monotonic()

    def clock() -> datetime:
        # ``now`` picks what is due; but a call can run for minutes on a backlog, so leases
        # count from when their batch is claimed, and expire while the call still runs.
        return now + timedelta(seconds=time.monotonic() - started)

    with ThreadPoolExecutor(max_workers=send_threads, thread_name_prefix="checkin-send") as pool:
        reconciled_at = None
        while True:
            # A stopped worker's claims are picked up during a long call too, not after it.
            if reconciled_at is None or time.monotonic() - reconciled_at >= RECONCILE_EVERY:
                at = now if reconciled_at is None else clock()
                reconcile_stale_claims(
                    db, transport, settings, programmes, at, pool, report, batch_size=batch_size
                )
                reconciled_at = time.monotonic()
            if not (ids := _claim(db, now, batch_size, clock() + lease)):
                break
            with db.session() as session:
                _dispatch_batch(session, ids, transport, settings, programmes, now, pool, report)
    for field in fields(report):
        if count := getattr(report, field.name):
            CHECKINS.labels(result=field.name).inc(count)
    if report:
        logger.info("dispatch %s at %s: %s", worker_id or "-", now.isoformat(), report)
    return report


def reconcile_stale_claims(
    db: Database,
    transport: Transport,
    settings: Settings,
    programmes: Programmes,
    now: datetime,
    pool: ThreadPoolExecutor,
    report: DispatchReport,
    *,
    batch_size: int = 100,
) -> None:
    """Finish the batches of workers that stopped mid-send: what reached the provider is
    recorded as sent, what did not goes back to pending, so nothing is lost or sent twice.

    A row still ``sending`` after its lease belongs to a worker that died between its claim
    and its commit: the message may or may not have reached the provider. Each such row is
    claimed again (atomically, so two reconcilers never share one), then, if the transport
    can look (``SentLookup``), the provider is asked for a message to the family with the
    same text since the check-in was due that no other row of ours holds. Found: recorded
    with that SID. Not found: re-pended. A lookup that failed for now leaves the row for the
    next run; a transport that cannot look, or a lookup refused for good, re-pends it (a
    rare duplicate beats a lost check-in).
    A send that got no answer at all (timeout) is kept ``sending`` the same way, so it too
    is looked up before it is sent again.
    """
    lease = timedelta(seconds=settings.claim_lease_seconds)
    while ids := _claim(db, now, batch_size, now + lease, stale=True):
        with db.session() as session:
            _reconcile_batch(session, ids, transport, settings, programmes, now, pool, report)


def _reconcile_batch(
    session: Session,
    ids: list[int],
    transport: Transport,
    settings: Settings,
    programmes: Programmes,
    now: datetime,
    pool: ThreadPoolExecutor,
    report: DispatchReport,
) -> None:
    checkins = _load_claimed(session, ids)
    if isinstance(transport, SentLookup):
        lookups = list(
            pool.map(lambda c: _find_sent(transport, c.family.address, c.due_at - LOOKUP_SKEW), checkins)
        )
    else:
        lookups = [None] * len(checkins)
    # A message already recorded for another of our rows (an earlier check-in with the same
    # text) is not this check-in's.
    recorded = set(
        session.scalars(
            select(Message.provider_sid).where(
                Message.family_id.in_({c.family_id for c in checkins}), Message.provider_sid.is_not(None)
            )
        )
    )
    messages = []
    for checkin, found in zip(checkins, lookups, strict=True):
        if isinstance(found, TransportError):
            if not found.permanent:
                # Keep the claim (it has a fresh lease): the next run after it asks again.
                checkin.last_error = f"lease expired; provider lookup failed: {found}"[:255]
                continue
            # The provider refuses to ever answer (e.g. credentials without read access to
            # Messages): as if the transport could not look, rather than waiting forever.
            found = None
        checkin.claimed_until = None
        texts = _texts_sent(checkin, programmes, settings)
        match = next((m for m in found or () if m.body in texts and m.sid not in recorded), None)
        if match is not None:
            recorded.add(match.sid)
            ended = texts[match.body]
            messages.append(
                _record_sent(session, checkin, match.body, match.sid, now, ended=ended, report=report)
            )
            report.reconciled += 1
            _event(session, checkin.family, "claim_reconciled", now, checkin_id=checkin.id, sid=match.sid)
            continue
        checkin.attempts += 1
        if found is None:
            note = "lease expired: a worker stopped mid-send; re-sent (possibly twice)"
        else:
            note = "not at the provider after a lost claim or an unanswered send; re-sent"
        # A check-in that keeps killing its worker must not do so forever.
        _set(checkin, "failed" if checkin.attempts >= MAX_ATTEMPTS else "pending", note)
        report.recovered += 1
        _event(session, checkin.family, "claim_reconciled", now, checkin_id=checkin.id, sid=None)
    if messages:
        _insert_messages(session, messages)


def _load_claimed(session: Session, ids: list[int]) -> list[CheckIn]:
    """The claimed check-ins with what routing and recording them reads, in one query."""
    query = (
        select(CheckIn)
        .where(CheckIn.id.in_(ids))
        .options(joinedload(CheckIn.family), joinedload(CheckIn.enrollment).joinedload(Enrollment.clinic))
    )
    return list(session.scalars(query))


def _texts_sent(checkin: CheckIn, programmes: Programmes, settings: Settings) -> dict[str, bool]:
    """The texts a worker could have sent for ``checkin`` → whether it was the gentle last message."""
    texts = {render_text(programmes, programmes.texts["last_message"], checkin.family, settings): True}
    programme = programmes.programmes.get(checkin.programme)
    step = programme.step(checkin.step) if programme is not None else None
    if step is not None:
        texts[render_text(programmes, programmes.checkin_text(step), checkin.family, settings)] = False
    return texts


def _find_sent(transport: SentLookup, to: str, since: datetime) -> list[SentRecord] | TransportError:
    """What the provider holds for ``to`` since ``since``, or the error (returned, as ``_send``)."""
    try:
        return transport.find_sent(to, since)
    except TransportError as exc:
        return exc
    except Exception as exc:
        logger.exception("transport lookup raised an unexpected error")
        return TransportError(f"{type(exc).__name__}: {exc}")


def _claim(
    db: Database, now: datetime, limit: int, claimed_until: datetime, *, stale: bool = False
) -> list[int]:
    """Atomically claim up to ``limit`` check-ins until ``claimed_until``; their ids.

    Due ``pending`` rows are marked ``sending``; with ``stale``, rows still ``sending`` after
    their lease (a stopped worker's) are claimed again for reconciliation.
    """
    if stale:
        wanted = (CheckIn.status == "sending", CheckIn.claimed_until < now)
    else:
        wanted = (
            CheckIn.status == "pending",
            CheckIn.due_at <= now,
            or_(CheckIn.claimed_until.is_(None), CheckIn.claimed_until <= now),
        )
    due = select(CheckIn.id).where(*wanted).order_by(CheckIn.due_at).limit(limit)
    if db.is_postgres:
        due = due.with_for_update(skip_locked=True)
    with db.session() as session:
        claimed = session.scalars(
            update(CheckIn)
            .where(CheckIn.id.in_(due.scalar_subquery()))
            .values(status="sending", claimed_until=claimed_until)
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
    checkins = _load_claimed(session, ids)
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
    can_look = isinstance(transport, SentLookup)
    messages = []
    for (checkin, body), result in zip(outgoing, results, strict=True):
        if isinstance(result, TransportError):
            _record_failure(session, checkin, result, now, report, settings, can_look=can_look)
        else:
            ended = checkin.family_id in ending
            messages.append(_record_sent(session, checkin, body, result, now, ended=ended, report=report))
    if messages:
        _insert_messages(session, messages)


def _insert_messages(session: Session, messages: list[dict[str, Any]]) -> None:
    # One Core executemany: not one ORM insert per row (the batch's biggest cost once), nor
    # an ORM bulk insert, whose per-row bookkeeping still cost a tenth of a worker's CPU.
    session.execute(insert(Message.__table__), messages)


def _route(
    checkin: CheckIn, programme: Programme | None, settings: Settings, now: datetime
) -> tuple[str, str]:
    """What a claimed check-in gets (send, cancel, fail, hold, miss or defer) and why."""
    family, enrollment = checkin.family, checkin.enrollment
    if family.opted_out or family.undeliverable_at is not None:
        return "cancel", "family opted out or unreachable"
    if family.followup_hold is not None:
        return "cancel", f"automated messages held: {family.followup_hold}"
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
    session: Session,
    checkin: CheckIn,
    error: TransportError,
    now: datetime,
    report: DispatchReport,
    settings: Settings,
    *,
    can_look: bool = False,
) -> None:
    delay = backoff(checkin.attempts + 1, base=timedelta(seconds=settings.retry_backoff_seconds))
    checkin.last_error = str(error)[:255]
    if _maybe_accepted(error) and can_look:
        # The provider may well have accepted the message. Keep the claim until the backoff
        # ends; then reconciliation records it if the provider has it and re-pends it
        # (counting the attempt) if not.
        checkin.status, checkin.claimed_until = "sending", now + delay
        report.retried += 1
        return
    checkin.attempts += 1
    if error.opted_out:
        # Twilio 21610: the parent texted STOP to the number; never message them again.
        checkin.status = "failed"
        opt_out(session, checkin.family, now=now, source="provider", code=error.code)
        report.failed += 1
    elif error.permanent or checkin.attempts >= MAX_ATTEMPTS:
        checkin.status = "failed"
        report.failed += 1
    else:
        checkin.status, checkin.due_at = "pending", now + delay
        report.retried += 1


def _maybe_accepted(error: TransportError) -> bool:
    """No answer at all (a timeout, a dropped connection) or a server error (a gateway that
    timed out behind Twilio's edge): the message may have been taken. A 429 or a 4xx was not."""
    return not error.permanent and (error.status is None or error.status >= 500)


def backoff(attempts: int, rng: random.Random | None = None, *, base: timedelta = BACKOFF_BASE) -> timedelta:
    """``base`` (1 min) · 2^(attempts-1), capped at an hour, ±20 % jitter so retries do not stampede."""
    delay = min(base * 2 ** (attempts - 1), BACKOFF_CAP)
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
    """Daily upkeep: close check-ins nobody answered and mark missed what is too stale to
    send, so ``checkins list --due`` tells the truth even when no dispatcher ran (the
    dispatcher would mark them missed too). A stopped worker's claims are left to
    ``dispatch_due``, which has the transport needed to ask what was really sent."""
    with db.session() as session:
        unanswered = session.execute(
            update(CheckIn)
            .where(CheckIn.status == "sent", CheckIn.sent_at < now - ANSWER_WINDOW)
            .values(status="unanswered")
        ).rowcount  # type: ignore[attr-defined]
        missed = session.execute(
            update(CheckIn)
            .where(CheckIn.status == "pending", CheckIn.due_at < _grace_cutoff(settings, now))
            .values(status="missed", last_error="too late to send")
        ).rowcount  # type: ignore[attr-defined]
    counts = {"unanswered": unanswered, "missed": missed}
    logger.info("check-in maintenance at %s: %s", now.isoformat(), counts)
    return counts
