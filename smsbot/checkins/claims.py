"""A dispatch run and the rows it claims: what sending (``dispatch.py``) and finishing a
stopped worker's batch (``reconcile.py``) both do to a check-in.

Rows are claimed atomically with a lease (``smsbot.leases``), so two workers never share
one, and a stopped worker's rows outlive it until the lease runs out.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, joinedload

from smsbot import leases
from smsbot.checkins.programmes import Localized, Programmes
from smsbot.checkins.schedule import cancel_where
from smsbot.config import Settings
from smsbot.db import Database
from smsbot.messaging import Transport
from smsbot.messaging.lookup import can_look
from smsbot.messaging.segments import count_segments
from smsbot.metrics import DISPATCH_LAG
from smsbot.models import CheckIn, Enrollment, Event, Family, Message

MAX_ATTEMPTS = 5
UNANSWERED_LIMIT = 3  # check-ins in a row without an answer before we stop

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


@dataclass
class DispatchRun:
    """What one ``dispatch_due`` call works with, handed on as one value: the transport and
    settings, the check-in programmes, the ``now`` it dispatches for, its pool of sending
    threads, and the report it fills in."""

    transport: Transport
    settings: Settings
    programmes: Programmes
    now: datetime
    pool: ThreadPoolExecutor
    report: DispatchReport = field(default_factory=DispatchReport)

    @property
    def can_look(self) -> bool:
        """Whether the provider can be asked what a stopped worker really sent."""
        return can_look(self.transport)

    def render(self, text: Localized, family: Family) -> str:
        """A text from ``checkins.yaml`` as this family gets it."""
        return self.programmes.render(
            text, family.language, baby_name=family.baby_name, emergency_number=self.settings.emergency_number
        )


def claim(
    db: Database, now: datetime, limit: int, claimed_until: datetime, *, stale: bool = False
) -> list[int]:
    """Atomically claim up to ``limit`` check-ins until ``claimed_until``; their ids.

    Due ``pending`` rows are marked ``sending``; with ``stale``, rows still ``sending`` after
    their lease (a stopped worker's) are claimed again for reconciliation.
    """
    if stale:
        wanted = (CheckIn.status == "sending", leases.expired(CheckIn, now))
    else:
        wanted = (CheckIn.status == "pending", CheckIn.due_at <= now, leases.unclaimed(CheckIn, now))
    return leases.claim(
        db, CheckIn, *wanted, order_by=CheckIn.due_at, limit=limit, until=claimed_until, status="sending"
    )


def load_claimed(session: Session, ids: list[int]) -> list[CheckIn]:
    """The claimed check-ins with what routing and recording them reads, in one query."""
    query = (
        select(CheckIn)
        .where(CheckIn.id.in_(ids))
        .options(joinedload(CheckIn.family), joinedload(CheckIn.enrollment).joinedload(Enrollment.clinic))
    )
    return list(session.scalars(query))


def record_sent(
    session: Session,
    checkin: CheckIn,
    body: str,
    sid: str,
    now: datetime,
    *,
    ended: bool,
    report: DispatchReport,
) -> dict[str, Any]:
    """Mark the check-in sent at ``now`` (or ended); the outbound ``Message`` row to insert for it."""
    family, enrollment = checkin.family, checkin.enrollment
    DISPATCH_LAG.observe((now - checkin.due_at).total_seconds())
    checkin.status = "ended" if ended else "sent"
    checkin.attempts += 1
    checkin.sent_at, checkin.provider_sid, checkin.last_error = now, sid, None
    if ended:
        reason = f"ended after {UNANSWERED_LIMIT} unanswered check-ins"
        cancelled = cancel_where(session, reason, CheckIn.family_id == family.id, CheckIn.id != checkin.id)
        add_event(session, family, "checkins_ended", now, programme=checkin.programme, cancelled=cancelled)
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


def insert_messages(session: Session, messages: list[dict[str, Any]]) -> None:
    # One Core executemany: not one ORM insert per row (the batch's biggest cost once), nor
    # an ORM bulk insert, whose per-row bookkeeping still cost a tenth of a worker's CPU.
    session.execute(insert(Message.__table__), messages)


def set_status(checkin: CheckIn, status: str, last_error: str | None) -> None:
    checkin.status, checkin.last_error = status, last_error


def add_event(session: Session, family: Family, kind: str, now: datetime, **detail: Any) -> None:
    session.add(Event(family_id=family.id, kind=kind, detail=detail, created_at=now))
