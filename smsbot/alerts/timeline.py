"""An alert's timeline: every page, delivery, new text and acknowledgement, in order.

Rows, not log lines: the alert page shows them, and a clinic can see who was paged when and
how long nobody answered.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from smsbot.models import AlertEvent

# What an entry says happened (the dashboard words them; ``detail`` holds the specifics).
RAISED = "raised"
PAGED = "paged"
DELIVERED = "delivered"
DELIVERY_FAILED = "delivery_failed"
NEW_TEXT = "new_text"
STAFF_TEXT = "staff_text"
ACKNOWLEDGED = "acknowledged"


def record(session: Session, alert_id: int, kind: str, now: datetime, **detail: Any) -> None:
    """Add one entry to the alert's timeline (committed with the caller's transaction)."""
    session.add(AlertEvent(alert_id=alert_id, kind=kind, detail=detail, created_at=now))


def entries(session: Session, alert_id: int) -> list[AlertEvent]:
    """The alert's timeline, oldest first."""
    return list(
        session.scalars(
            select(AlertEvent)
            .where(AlertEvent.alert_id == alert_id)
            .order_by(AlertEvent.created_at, AlertEvent.id)
        )
    )
