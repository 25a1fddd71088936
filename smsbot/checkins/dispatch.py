"""Dispatch: send the check-ins that are due, exactly once, and record what happened.

APScheduler calls ``dispatch_due`` every few seconds and ``maintenance`` daily (see
``smsbot.jobs``); tests call them directly with a chosen ``now``. Several workers may run
``dispatch_due`` at once: rows are claimed atomically (``claims.py``), so none is sent twice.
A worker that dies mid-batch leaves its claimed rows ``sending``; once the claim's lease runs
out another worker asks the provider what was really sent (``reconcile.py``) rather than
sending the batch again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from datetime import datetime, timedelta
from itertools import groupby
from operator import itemgetter

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from smsbot.checkins.claims import (
    MAX_ATTEMPTS,
    UNANSWERED_LIMIT,
    DispatchReport,
    DispatchRun,
    claim,
    insert_messages,
    load_claimed,
    record_sent,
    set_status,
)
from smsbot.checkins.clock import family_zone, next_allowed, quiet_window
from smsbot.checkins.programmes import Programme, load_programmes
from smsbot.checkins.reconcile import reconcile_stale_claims
from smsbot.checkins.schedule import ANSWER_WINDOW, UNANSWERED_STATUSES
from smsbot.config import Settings
from smsbot.db import Database
from smsbot.families import opt_out
from smsbot.messaging import Transport, TransportError, whatsapp
from smsbot.messaging.lookup import outcome_unknown
from smsbot.messaging.retry import operator_retry
from smsbot.metrics import CHECKINS
from smsbot.models import CheckIn, Family

logger = logging.getLogger(__name__)

CONSENT_RECHECK = timedelta(hours=1)  # how often a check-in waiting for consent is looked at
RECONCILE_EVERY = 1.0  # seconds between looks for expired claims during one dispatch call
# Twilio drops a check-in it could not deliver within an hour (error 30036) rather than
# letting it arrive in the middle of the night.
VALIDITY_PERIOD = 3600
# Sends are network-bound: a few threads overlap their latency (Twilio allows ~100
# concurrent requests per account before answering 429, which we back off from).
SEND_THREADS = 8


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
    report = DispatchReport()
    lease = timedelta(seconds=settings.claim_lease_seconds)
    started = time.monotonic()

    def clock() -> datetime:
        # ``now`` picks what is due; but a call can run for minutes on a backlog, so leases
        # count from when their batch is claimed, and expire while the call still runs.
        return now + timedelta(seconds=time.monotonic() - started)

    with ThreadPoolExecutor(max_workers=send_threads, thread_name_prefix="checkin-send") as pool:
        run = DispatchRun(transport, settings, load_programmes(settings.rules_path), now, pool, report)
        reconciled_at = None
        while True:
            # A stopped worker's claims are picked up during a long call too, not after it.
            if reconciled_at is None or time.monotonic() - reconciled_at >= RECONCILE_EVERY:
                at = now if reconciled_at is None else clock()
                reconcile_stale_claims(db, run, at, batch_size=batch_size)
                reconciled_at = time.monotonic()
            if not (ids := claim(db, now, batch_size, clock() + lease)):
                break
            with db.session() as session:
                _dispatch_batch(session, ids, run)
    for field in fields(report):
        if count := getattr(report, field.name):
            CHECKINS.labels(result=field.name).inc(count)
    if report:
        logger.info("dispatch %s at %s: %s", worker_id or "-", now.isoformat(), report)
    return report


def _dispatch_batch(session: Session, ids: list[int], run: DispatchRun) -> None:
    settings, programmes, now, report = run.settings, run.programmes, run.now, run.report
    # A report's own programme asks the more specific question than the clinic's routine one.
    enrollment_programme = programmes.triggers["enrollment"]
    checkins = sorted(
        load_claimed(session, ids), key=lambda c: (c.programme == enrollment_programme, c.due_at)
    )
    streaks = _unanswered_streaks(session, {c.family_id for c in checkins})
    ending: set[int] = set()  # families getting the gentle last message in this batch
    texted: set[int] = set()  # families already getting a check-in in this batch
    outgoing: list[tuple[CheckIn, str]] = []
    for checkin in checkins:
        checkin.claimed_until = None
        programme = programmes.programmes.get(checkin.programme)
        route, reason = _route(checkin, programme, settings, now)
        if route != "send":
            field = _apply_route(checkin, route, reason, settings, now)
            setattr(report, field, getattr(report, field) + 1)
        elif checkin.family_id in ending:
            set_status(checkin, "cancelled", "ended after unanswered check-ins")
            report.skipped += 1
        elif checkin.family_id in texted:
            # Two programmes' steps falling due together would text the parent twice at once.
            set_status(checkin, "cancelled", "another check-in went to this family at the same time")
            report.skipped += 1
        else:
            texted.add(checkin.family_id)
            if streaks.get(checkin.family_id, 0) >= UNANSWERED_LIMIT:
                ending.add(checkin.family_id)
                text = programmes.texts["last_message"]
            else:
                text = programmes.checkin_text(programme.step(checkin.step))  # type: ignore[union-attr, arg-type]
            outgoing.append((checkin, run.render(text, checkin.family)))

    results = run.pool.map(
        lambda item: _send(run.transport, _routes(item[0], item[1], run), item[1]), outgoing
    )
    messages = []
    for (checkin, body), result in zip(outgoing, results, strict=True):
        if isinstance(result, TransportError):
            _record_failure(session, checkin, result, run)
        else:
            ended = checkin.family_id in ending
            messages.append(record_sent(session, checkin, body, result, now, ended=ended, report=report))
    if messages:
        insert_messages(session, messages)


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
        set_status(checkin, "pending", reason)
        checkin.claimed_until = now + CONSENT_RECHECK
        return "skipped"
    status, field = {
        "cancel": ("cancelled", "skipped"),
        "fail": ("failed", "failed"),
        "miss": ("missed", "missed"),
    }[route]
    set_status(checkin, status, reason)
    return field


def _allowed_at(checkin: CheckIn, settings: Settings, now: datetime) -> datetime:
    """``now``, or the end of quiet hours in the family's zone (clinic window if enrolled)."""
    clinic = checkin.enrollment.clinic if checkin.enrollment else None
    return next_allowed(now, family_zone(checkin.family, clinic, settings), quiet_window(clinic, settings))


def _grace_cutoff(settings: Settings, now: datetime) -> datetime:
    """Check-ins due before this are too stale to send (e.g. after downtime): missed."""
    return now - timedelta(hours=settings.checkin_grace_hours)


def _routes(checkin: CheckIn, body: str, run: DispatchRun) -> list[whatsapp.Route]:
    """How the check-in reaches the family: SMS, or WhatsApp within its 24-hour window, else
    the approved template, or the clinic's SMS fallback (``smsbot.messaging.whatsapp``)."""
    family = checkin.family
    clinic = checkin.enrollment.clinic if checkin.enrollment else None
    baby = family.baby_name or run.render(run.programmes.texts["baby"], family)
    return whatsapp.plan(
        family,
        run.now,
        template=whatsapp.load_templates(run.settings.rules_path).get("checkin"),
        lang=family.language,
        values={"clinic": clinic.name if clinic else "", "baby": baby, "text": body},
        sms_fallback=clinic is not None and clinic.whatsapp_sms_fallback,
    )


def _send(transport: Transport, routes: list[whatsapp.Route], body: str) -> str | TransportError:
    """The provider SID, or the error (returned, so one failure never stops the batch)."""
    try:
        return whatsapp.send(transport, routes, body, validity_period=VALIDITY_PERIOD)[0]
    except TransportError as exc:
        return exc
    except Exception as exc:  # a bug in a transport must not strand the batch in 'sending'
        logger.exception("transport raised an unexpected error")
        return TransportError(f"{type(exc).__name__}: {exc}")


def _record_failure(session: Session, checkin: CheckIn, error: TransportError, run: DispatchRun) -> None:
    now, report = run.now, run.report
    retry = operator_retry(run.settings.retry_backoff_seconds)
    delay = retry.delay(checkin.attempts + 1)
    checkin.last_error = str(error)[:255]
    if outcome_unknown(error) and run.can_look:
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
