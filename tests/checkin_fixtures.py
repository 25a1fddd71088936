"""Helpers for the check-in tests: a fresh database, settings and a small named world.

Plain functions (not fixtures) so each test module states the fixtures it uses, and the
PostgreSQL test and the benchmark can build the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from smsbot.config import Settings, load_settings
from smsbot.db import Database
from smsbot.models import CheckIn, Clinic, Enrollment, Family

RULES_DIR = Path(__file__).resolve().parent.parent / "rules"
PARENT_PHONE = "+15550100001"


def checkin_database(database_url: str) -> Iterator[Database]:
    """A ``Database`` on conftest's fresh per-test ``database_url``, without the Flask app.

    Use as ``db = pytest.fixture(checkin_database, name="db")`` in a test module.
    """
    database = Database(database_url)
    yield database
    database.engine.dispose()


def make_settings(**overrides: Any) -> Settings:
    """Settings from code defaults only (the developer's environment must not leak in)."""
    return load_settings({"rules_dir": str(RULES_DIR), **overrides}, environ={})


def add_family(session: Any, *, phone: str = PARENT_PHONE, **fields: Any) -> Family:
    """Ana's parent, in New York unless told otherwise."""
    values = {"language": "en", "timezone": "America/New_York", "baby_name": "Ana", **fields}
    family = Family(phone=phone, channel="sms", **values)
    session.add(family)
    session.flush()
    return family


def add_checkin(session: Any, family: Family, *, due_at: datetime, dedupe_key: str) -> CheckIn:
    """A pending first step of the routine follow-up, due at ``due_at``."""
    checkin = CheckIn(
        family_id=family.id,
        programme="after_routine",
        step=1,
        status="pending",
        due_at=due_at,
        attempts=0,
        dedupe_key=dedupe_key,
    )
    session.add(checkin)
    return checkin


def add_enrollment(
    session: Any, family: Family, *, status: str = "active", **clinic_fields: Any
) -> Enrollment:
    """``family`` enrolled at Riverside Pediatrics."""
    clinic = Clinic(slug="riverside", name="Riverside Pediatrics", **clinic_fields)
    enrollment = Enrollment(clinic=clinic, family=family, programme="clinic_followup", status=status)
    session.add(enrollment)
    session.flush()
    return enrollment


def all_checkins(db: Database) -> list[CheckIn]:
    with db.session() as session:
        return list(session.scalars(select(CheckIn).order_by(CheckIn.id)))


def insert_due_checkins(db: Database, count: int, *, due_at: datetime) -> None:
    """``count`` families in New York, each with one check-in due at ``due_at`` (bulk, fast)."""
    with db.session() as session:
        session.execute(
            insert(Family),
            [
                {"phone": f"+1555{n:07d}", "channel": "sms", "language": "en", "timezone": "America/New_York"}
                for n in range(count)
            ],
        )
        family_ids = list(session.scalars(select(Family.id).order_by(Family.id)))
        session.execute(
            insert(CheckIn),
            [
                {
                    "family_id": family_id,
                    "programme": "after_routine",
                    "step": 1,
                    "status": "pending",
                    "due_at": due_at,
                    "attempts": 0,
                    "dedupe_key": f"{family_id}:bench",
                }
                for family_id in family_ids
            ],
        )
