"""Leases: a row is claimed atomically until a deadline before anything is sent for it.

Whoever holds the lease may send; a worker that stops mid-send leaves the row claimed, and
once the lease runs out another worker takes it over and asks the provider what was really
sent (``smsbot.messaging.lookup``) instead of sending it again. Check-ins (``checkins``)
and consent texts (``clinics.consent``) are leased this way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute

from smsbot.db import Database


class Leasable(Protocol):
    """A mapped model with an integer ``id`` and a nullable ``claimed_until``."""

    id: InstrumentedAttribute[int]
    claimed_until: InstrumentedAttribute[datetime | None]


def unclaimed(model: type[Leasable], now: datetime) -> ColumnElement[bool]:
    """Rows nobody holds at ``now``: never claimed, or their lease has run out."""
    return or_(model.claimed_until.is_(None), model.claimed_until <= now)


def expired(model: type[Leasable], now: datetime) -> ColumnElement[bool]:
    """Rows whose lease ran out before ``now``: their holder stopped, or gave up waiting."""
    return model.claimed_until < now


def claim(
    db: Database,
    model: type[Leasable],
    *wanted: ColumnElement[bool],
    order_by: Any,
    limit: int,
    until: datetime,
    **values: Any,
) -> list[int]:
    """Atomically lease up to ``limit`` rows matching ``wanted`` until ``until``, setting
    ``values`` on them too, and commit; their ids.

    One UPDATE … RETURNING over the chosen ids: on PostgreSQL the choice is made ``FOR UPDATE
    SKIP LOCKED``, so concurrent workers never share a row; SQLite serialises writers.
    """
    chosen = select(model.id).where(*wanted).order_by(order_by).limit(limit)
    if db.is_postgres:
        chosen = chosen.with_for_update(skip_locked=True)
    with db.session() as session:
        claimed = session.scalars(
            update(model)
            .where(model.id.in_(chosen.scalar_subquery()))
            .values(claimed_until=until, **values)
            .returning(model.id),
            execution_options={"synchronize_session": False},
        )
        return list(claimed)
