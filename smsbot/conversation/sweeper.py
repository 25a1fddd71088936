"""The sweeper: inbound texts a failed or broken request left unprocessed are triaged in the end.

A webhook run that raises marks its text ``failed``; one that loses its database connection
may not even manage that, and leaves it ``processing``. Either way the text keeps the claim
its run took (``Message.claimed_until``). Once that runs out, ``sweep_unprocessed`` (a
scheduler job every few seconds) claims the text again, triages it, raises its alerts as
usual and sends the reply by REST: the provider's webhook answer is long gone. Several
workers may sweep at once: a text is claimed with one conditional UPDATE (PostgreSQL:
``FOR UPDATE SKIP LOCKED``, as check-in dispatch claims its rows), so each is processed and
answered once. A text that fails every attempt is given up, and its clinic alerted to read it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from smsbot import alerts, families
from smsbot.config import Settings
from smsbot.conversation.inbound import mark_failed, process_claimed
from smsbot.db import Database
from smsbot.messaging import Transport, TransportError
from smsbot.metrics import INBOUND_RECOVERY
from smsbot.models import Message, utcnow
from smsbot.phones import mask_phone

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5  # processing runs (the webhook's first one included) before a text is given up
UNFINISHED = ("received", "processing", "failed")
MAX_PER_SWEEP = 200  # one sweep never runs unbounded; the next one carries on
UNPROCESSED_LEVEL = "urgent"  # a text nobody could read may hold a red flag: staff read it today


@dataclass
class SweepReport:
    """What one ``sweep_unprocessed`` call did."""

    swept: int = 0  # triaged (and alerted) by the sweeper
    replied: int = 0  # its reply sent by REST
    reply_failed: int = 0  # the provider refused that reply
    failed: int = 0  # processing raised again: tried again after the deadline
    gave_up: int = 0  # failed MAX_ATTEMPTS times: the family's clinic is alerted
    paged: int = 0  # texts whose alerts should reach an on-call phone now

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))


def sweep_unprocessed(
    db: Database, transport: Transport, settings: Settings, now: datetime | None = None
) -> SweepReport:
    """Process every inbound text whose run failed or died past its claim, once each."""
    now = now or utcnow()
    lease = timedelta(seconds=settings.sweep_after_seconds)
    report = SweepReport()
    _give_up(db, settings, now, report)
    for _ in range(MAX_PER_SWEEP):
        claimed = _claim_one(db, now, lease)
        if claimed is None:
            break
        _sweep_one(db, transport, settings, *claimed, now, report)
    if report:
        log.info("sweeper at %s: %s", now.isoformat(), report)
    return report


def _unfinished(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """Inbound texts that no run finished and whose last claim has run out."""
    return (
        Message.direction == "in",
        Message.status.in_(UNFINISHED),
        Message.claimed_until < now,
    )


def _claim_one(db: Database, now: datetime, lease: timedelta) -> tuple[int, datetime] | None:
    """Atomically claim the longest-waiting unfinished text; its id and the claim's deadline."""
    oldest = (
        select(Message.id)
        .where(*_unfinished(now), Message.attempts < MAX_ATTEMPTS)
        .order_by(Message.claimed_until)
        .limit(1)
    )
    if db.is_postgres:
        oldest = oldest.with_for_update(skip_locked=True)
    until = now + lease
    with db.session() as session:
        message_id = session.scalar(
            update(Message)
            .where(Message.id.in_(oldest.scalar_subquery()))
            .values(status="processing", claimed_until=until, attempts=Message.attempts + 1)
            .returning(Message.id),
            execution_options={"synchronize_session": False},
        )
    return None if message_id is None else (message_id, until)


def _sweep_one(
    db: Database,
    transport: Transport,
    settings: Settings,
    message_id: int,
    claim: datetime,
    now: datetime,
    report: SweepReport,
) -> None:
    connection = db.engine.connect()
    session = db.sessionmaker(bind=connection, autoflush=False)
    try:
        message = session.get_one(Message, message_id)
        outcome = process_claimed(
            session, settings, message, now, claim=claim, reply_status="sending"
        )
    except Exception:
        session.rollback()
        log.exception("sweeping inbound message %s failed; tried again after the deadline", message_id)
        mark_failed(db, message_id)
        report.failed += 1
        return
    finally:
        session.close()
        connection.close()
    if outcome is None:
        return  # a provider retry took it over meanwhile
    report.swept += 1
    report.paged += outcome.paged
    INBOUND_RECOVERY.labels("swept").inc()
    family = message.family
    log.warning(
        "sweeper triaged inbound message %s from %s (attempt %d): level=%s, reply=%s",
        message_id,
        mask_phone(family.phone),
        message.attempts,
        outcome.level,
        outcome.reply is not None,
    )
    if outcome.reply_id is not None:
        _send_reply(
            db, transport, settings, outcome.reply_id, family.address, outcome.reply or "", now, report
        )


def _send_reply(
    db: Database,
    transport: Transport,
    settings: Settings,
    reply_id: int,
    to: str,
    body: str,
    now: datetime,
    report: SweepReport,
) -> None:
    """Send a swept text's stored reply once, and record the provider's answer on it.

    Stored as ``sending`` before the send: a worker killed in between leaves it so, visible,
    rather than sending it twice.
    """
    try:
        sid = transport.send(to, body)
    except TransportError as error:
        report.reply_failed += 1
        INBOUND_RECOVERY.labels("swept_reply_failed").inc()
        log.warning("reply %s to a swept message was refused: %s", reply_id, error)
        with db.session() as session:
            reply = session.get_one(Message, reply_id)
            reply.status, reply.error_code = "failed", error.code
            if error.opted_out:
                families.opt_out(session, reply.family, now=now, source="provider", code=error.code)
        return
    report.replied += 1
    INBOUND_RECOVERY.labels("swept_reply_sent").inc()
    with db.session() as session:
        session.execute(
            update(Message).where(Message.id == reply_id).values(status="queued", provider_sid=sid)
        )


def _give_up(db: Database, settings: Settings, now: datetime, report: SweepReport) -> None:
    """Texts that failed every attempt: stop trying, and alert the family's clinic to read them."""
    with db.session() as session:
        given_up = session.scalars(
            update(Message)
            .where(*_unfinished(now), Message.attempts >= MAX_ATTEMPTS)
            .values(status="failed", claimed_until=None)
            .returning(Message.id),
            execution_options={"synchronize_session": False},
        ).all()
        for message_id in given_up:
            _alert_unprocessed(session, settings, message_id, now)
            report.paged += 1
    report.gave_up += len(given_up)
    INBOUND_RECOVERY.labels("gave_up").inc(len(given_up))


def _alert_unprocessed(session: Session, settings: Settings, message_id: int, now: datetime) -> None:
    message = session.get_one(Message, message_id)
    log.error(
        "inbound message %s from %s failed %d times: given up, its clinic is alerted",
        message_id,
        mask_phone(message.family.phone),
        message.attempts,
    )
    alerts.raise_alert(
        session,
        settings,
        message.family,
        level=UNPROCESSED_LEVEL,
        reason="unprocessed",
        message=message,
        now=now,
    )
