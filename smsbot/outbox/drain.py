"""Claiming outbox rows and doing their follow-ups, each exactly once.

A row is claimed by deleting it in the transaction that does its work: committed, the
work is done and the row gone; rolled back (an error, a killed process), the row is back
for the next drain. On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets several web workers and
scheduler workers drain side by side without waiting on, or repeating, each other's rows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, select, update
from sqlalchemy.orm import Session

from smsbot import checkins
from smsbot.config import Settings
from smsbot.conversation.respond import note_decision, raise_alerts
from smsbot.db import Database
from smsbot.models import Family, Message, OutboxEntry, utcnow

log = logging.getLogger(__name__)

BATCH_SIZE = 200  # rows per transaction: one commit for many texts' follow-ups
BATCH_SECONDS = 0.2  # how long the courier gathers texts before a batch (red flags: no wait)
RETRY_AFTER = timedelta(seconds=30)  # a follow-up that failed is tried again after this
MAX_DRAIN_ROUNDS = 50  # ``drain_all`` returns after this many full batches, for the next tick


@dataclass
class DrainReport:
    done: int = 0
    failed: int = 0
    paged: bool = False  # an alert was raised for a clinic: deliver it now


def follow_up(session: Session, settings: Settings, messages: Sequence[Message]) -> bool:
    """Do what ``messages`` set off, in ``session``; whether a clinic is paged.

    What each text would have done in its request, as of when it came (``created_at``),
    under its family's lock: the family's language and level (from its latest text), each
    red flag's alerts, and the follow-up check-ins (not once the family has opted out).
    A family's texts of one level in the batch schedule once, from the latest: the run the
    earlier ones would have scheduled is the one it replaces.
    """
    families = _lock_families(session, {message.family_id for message in messages})
    in_order = sorted(messages, key=lambda message: message.id)
    latest = {(message.family_id, message.level): message for message in in_order}
    paged = False
    for message in in_order:
        family = families.get(message.family_id)
        if family is None:
            continue  # erased meanwhile
        at = message.created_at
        if family.last_contact_at is None or family.last_contact_at <= at:
            family.last_contact_at = at
            note_decision(family, message.level or "info", message.lang or family.language)
        paged |= raise_alerts(session, settings, family, message, reason=message.level or "", now=at)
        scheduling = message.level is not None and latest[message.family_id, message.level] is message
        if scheduling and not family.opted_out:
            checkins.schedule_after_decision(session, family, message.level, now=at, settings=settings)
    return paged


def _lock_families(session: Session, ids: set[int]) -> dict[int, Family]:
    """The families, their rows locked in id order (as every batch locks them: no deadlock)."""
    if not ids:
        return {}
    locked = session.scalars(
        select(Family)
        .where(Family.id.in_(sorted(ids)))
        .order_by(Family.id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    return {family.id: family for family in locked}


def drain(
    db: Database, settings: Settings, *, limit: int = BATCH_SIZE, now: datetime | None = None
) -> DrainReport:
    """Claim up to ``limit`` due rows (red flags first) and do their follow-ups in one transaction.

    Should one fail, the batch is rolled back and each row done alone, so one bad row
    delays only itself (tried again after ``RETRY_AFTER``).
    """
    now = now or utcnow()
    report = DrainReport()
    try:
        with db.session() as session:
            claimed = _claim(session, limit, now)
            report.paged = follow_up(session, settings, _messages(session, claimed))
            report.done = len(claimed)
        return report
    except Exception:
        log.exception("outbox batch failed; doing its rows one at a time")
    with db.session() as session:
        ids = list(session.scalars(_due_ids(limit, now)))
    report = DrainReport()
    for entry_id in ids:
        one = _drain_one(db, settings, entry_id, now)
        report.done += one.done
        report.failed += one.failed
        report.paged |= one.paged
    return report


def drain_all(db: Database, settings: Settings, now: datetime | None = None) -> DrainReport:
    """Drain until no row is due (bounded: a flood is left to the next call).

    ``now``: a caller on its own clock (``smsbot chat --script``, the demo) whose rows are due then.
    """
    total = DrainReport()
    for _round in range(MAX_DRAIN_ROUNDS):
        report = drain(db, settings, now=now)
        total.done += report.done
        total.failed += report.failed
        total.paged |= report.paged
        if report.done + report.failed < BATCH_SIZE:
            break
    return total


def _drain_one(db: Database, settings: Settings, entry_id: int, now: datetime) -> DrainReport:
    try:
        with db.session() as session:
            claimed = session.execute(_CLAIM.where(OutboxEntry.id == entry_id)).all()
            paged = follow_up(session, settings, _messages(session, claimed))
        return DrainReport(done=len(claimed), paged=paged)
    except Exception:
        log.exception("outbox follow-up %s failed; tried again later", entry_id)
    with db.session() as session:
        session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.id == entry_id)
            .values(attempts=OutboxEntry.attempts + 1, available_at=now + RETRY_AFTER)
        )
    return DrainReport(failed=1)


def _due_ids(limit: int, now: datetime) -> Select[tuple[int]]:
    return (
        select(OutboxEntry.id)
        .where(OutboxEntry.available_at <= now)
        .order_by(OutboxEntry.urgent.desc(), OutboxEntry.id)
        .limit(limit)
    )


_CLAIM = delete(OutboxEntry).returning(OutboxEntry.message_id)


def _claim(session: Session, limit: int, now: datetime) -> list[Any]:
    """Delete (and so claim) up to ``limit`` due rows nobody else holds; their message ids."""
    due = _due_ids(limit, now).with_for_update(skip_locked=True)
    return session.execute(_CLAIM.where(OutboxEntry.id.in_(due.scalar_subquery()))).all()


def _messages(session: Session, claimed: list[Any]) -> list[Message]:
    """The claimed rows' texts."""
    ids = [row.message_id for row in claimed]
    if not ids:
        return []
    return list(session.scalars(select(Message).where(Message.id.in_(ids))))
