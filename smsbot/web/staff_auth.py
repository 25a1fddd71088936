"""Staff sign-in: password check with a lockout after repeated failures, and the check that
a session cookie still counts.

Plain functions over a session, so tests drive them with a chosen ``now``; the dashboard
views only store ``session_claims`` in the (signed, HttpOnly) session cookie and ask
``signed_in_staff`` on every request.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Row, case, func, or_, update
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
    """The staff member with this email and password, or None; counts tries and locks.

    The try is counted before the password is checked, in one conditional UPDATE, so
    parallel guesses each take one of the ``MAX_FAILED_LOGINS`` tries: the one that takes
    the last locks the account, and any after it are refused unchecked, even with the
    right password. A right password clears the count, in a second conditional UPDATE
    that refuses it if later tries locked the account while its hash was checked.

    Every path runs exactly one password hash check, so an unknown email or a locked or
    disabled account answers in the same time as a wrong password and reveals nothing.
    """
    attempt = _take_try(session, email, now)
    if attempt is None:
        check_password_hash(_decoy_hash(), password)
        return None
    if not check_password_hash(attempt.password_hash, password):
        return None  # the try stays counted
    return _admit(session, attempt, now)


def _unlocked(now: datetime) -> ColumnElement[bool]:
    return or_(Staff.locked_until.is_(None), Staff.locked_until <= now)


def _take_try(session: Session, email: str, now: datetime) -> Row[tuple[int, str, int]] | None:
    """Count a try on an enabled account that is not locked; None if there is no such account.

    Committed at once: no row lock is held while the (slow) password hash runs.
    """
    # Only unlocked accounts match, so a set ``locked_until`` here is a lapsed lock: start again.
    tries = case((Staff.locked_until.is_(None), Staff.failed_logins + 1), else_=1)
    attempt = session.execute(
        update(Staff)
        .where(func.lower(Staff.email) == email.strip().lower(), Staff.disabled_at.is_(None), _unlocked(now))
        .values(
            failed_logins=tries,
            locked_until=case((tries >= MAX_FAILED_LOGINS, now + LOCKOUT), else_=None),
        )
        .returning(Staff.id, Staff.password_hash, Staff.failed_logins)
    ).first()
    session.commit()
    return attempt


def _admit(session: Session, attempt: Row[tuple[int, str, int]], now: datetime) -> Staff | None:
    """Clear the count and lock, unless, while the hash ran, later tries locked the account
    (a lock this try set itself, as the last allowed, does not count), or the account was
    disabled or its password changed (the password just checked is no longer the account's)."""
    staff = session.scalar(
        update(Staff)
        .where(
            Staff.id == attempt.id,
            Staff.password_hash == attempt.password_hash,
            Staff.disabled_at.is_(None),
            # Tries are not counted while locked: still the last count means this try locked it.
            or_(_unlocked(now), Staff.failed_logins == attempt.failed_logins),
        )
        .values(failed_logins=0, locked_until=None)
        .returning(Staff)
        .execution_options(populate_existing=True)
    )
    session.commit()
    return staff


def session_claims(staff: Staff) -> dict[str, int]:
    """What the signed session cookie holds for a signed-in staff member."""
    return {"staff_id": staff.id, "session_generation": staff.session_generation}


def signed_in_staff(session: Session, cookie: Mapping[str, Any]) -> Staff | None:
    """The staff member the cookie's claims name, or None once they no longer count.

    Signing out, a password change and disabling the account each raise the account's
    session generation (``clinics.end_sessions``), so every cookie issued before stops
    working on the server side, even one copied before it was cleared from the browser.
    """
    staff_id, generation = cookie.get("staff_id"), cookie.get("session_generation")
    if not isinstance(staff_id, int) or not isinstance(generation, int):
        return None
    staff = session.get(Staff, staff_id)
    if staff is None or staff.disabled_at is not None or staff.session_generation != generation:
        return None
    return staff
