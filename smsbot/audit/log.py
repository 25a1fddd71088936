"""Who did what with a family's data: one line per sign-in, page view, phone reveal, API
read, export and erasure.

``record`` only adds; reading is per clinic (a clinic sees its own lines); the only
deletions are ``purge_expired`` (the audit's own retention) and ``forget_family`` (an
erasure keeps one anonymous line).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from smsbot.audit.guard import PURGE
from smsbot.models import AuditEntry, Staff

LOGIN, LOGIN_FAILED = "login", "login_failed"
FAMILY_VIEW = "family_view"  # a dashboard page about one family (its page, an alert, an episode)
PHONE_REVEAL = "phone_reveal"
API_READ = "api_read"
EXPORT, ERASE = "export", "erase"
ACTIONS = {
    LOGIN: "signed in",
    LOGIN_FAILED: "failed to sign in",
    FAMILY_VIEW: "viewed",
    PHONE_REVEAL: "revealed the phone number",
    API_READ: "read through the API",
    EXPORT: "exported",
    ERASE: "erased",
}
ACTOR_MAX_CHARS = 254


def record(
    session: Session,
    action: str,
    *,
    actor: str,
    now: datetime,
    clinic_id: int | None = None,
    family_id: int | None = None,
    **detail: Any,
) -> AuditEntry:
    """Add one audit line (committed with the caller's transaction)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    entry = AuditEntry(
        at=now,
        clinic_id=clinic_id,
        family_id=family_id,
        actor=actor[:ACTOR_MAX_CHARS],
        action=action,
        detail=detail,
    )
    session.add(entry)
    return entry


def family_entries(session: Session, clinic_id: int, family_id: int, limit: int = 500) -> list[AuditEntry]:
    """Who saw this family's data at this clinic, newest first: the clinic's own lines, and the
    operator's (exports on the family's request), never another clinic's."""
    return list(
        session.scalars(
            select(AuditEntry)
            .where(
                or_(AuditEntry.clinic_id == clinic_id, AuditEntry.clinic_id.is_(None)),
                AuditEntry.family_id == family_id,
            )
            .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
            .limit(limit)
        )
    )


def can_read_audit(staff: Staff) -> bool:
    """Only a clinic's admins read who saw its families."""
    return staff.is_admin


def forget_family(session: Session, family_id: int) -> int:
    """Delete every line about the family, for its erasure; the caller records the erasure."""
    statement = delete(AuditEntry).where(AuditEntry.family_id == family_id)
    return session.execute(statement, execution_options={PURGE: True}).rowcount  # type: ignore[attr-defined]


def purge_expired(session: Session, *, retention_days: int, now: datetime) -> int:
    """Delete lines older than the audit's retention (0: keep them all); the count deleted."""
    if retention_days <= 0:
        return 0
    statement = delete(AuditEntry).where(AuditEntry.at < now - timedelta(days=retention_days))
    return session.execute(statement, execution_options={PURGE: True}).rowcount  # type: ignore[attr-defined]
