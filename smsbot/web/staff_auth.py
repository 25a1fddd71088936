"""Staff sign-in: password check with a lockout after repeated failures.

Plain functions over a session, so tests drive them with a chosen ``now``; the dashboard
views only store the staff id in the (signed, HttpOnly) session cookie.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from smsbot.models import Staff

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)


@cache
def _decoy_hash() -> str:
    """A hash to check when there is no real one, computed once and lazily (scrypt is slow)."""
    return generate_password_hash("decoy password, never accepted")


def authenticate(session: Session, email: str, password: str, *, now: datetime) -> Staff | None:
    """The staff member with this email and password, or None; counts failures and locks.

    Every path runs exactly one password hash check, so an unknown email or a locked
    account answers in the same time as a wrong password and reveals nothing.
    """
    staff = session.scalar(select(Staff).where(func.lower(Staff.email) == email.strip().lower()))
    if staff is None:
        check_password_hash(_decoy_hash(), password)
        return None
    password_ok = check_password_hash(staff.password_hash, password)
    if staff.locked_until is not None and staff.locked_until > now:
        return None
    if not password_ok:
        _record_failure(session, staff, now)
        return None
    staff.failed_logins = 0
    staff.locked_until = None
    session.commit()
    return staff


def _record_failure(session: Session, staff: Staff, now: datetime) -> None:
    # Incremented in SQL, not in Python: parallel guesses must each count.
    failures = session.scalar(
        update(Staff)
        .where(Staff.id == staff.id)
        .values(failed_logins=Staff.failed_logins + 1)
        .returning(Staff.failed_logins)
    )
    if failures is not None and failures >= MAX_FAILED_LOGINS:
        session.execute(
            update(Staff).where(Staff.id == staff.id).values(failed_logins=0, locked_until=now + LOCKOUT)
        )
    session.commit()
