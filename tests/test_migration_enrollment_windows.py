"""Migration 0004 carries existing enrollments forward: details, end reasons and windows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import create_engine, select, text

from smsbot.db import normalise_url, upgrade
from smsbot.models import Enrollment, EnrollmentWindow
from tests.conftest import postgres_backend
from tests.postgres import scratch_postgres_database


@contextmanager
def empty_database(tmp_path: Path) -> Iterator[str]:
    server_url = postgres_backend()
    if server_url is None:
        yield f"sqlite:///{tmp_path / 'old.db'}"
    else:
        with scratch_postgres_database(server_url) as url:
            yield url


def test_enrollments_get_their_familys_details_and_consented_windows(tmp_path: Path) -> None:
    consented, opted_out = datetime(2026, 11, 1, 9), datetime(2026, 11, 5, 9)
    with empty_database(tmp_path) as url:
        upgrade(url, "0003")
        engine = create_engine(normalise_url(url))
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO clinics (id, slug, name, timezone, created_at) VALUES"
                    " (1, 'riverside', 'Riverside', 'America/Chicago', :at),"
                    " (2, 'lakeside', 'Lakeside', 'America/Chicago', :at)"
                ),
                {"at": consented},
            )
            connection.execute(
                text(
                    "INSERT INTO families (id, phone, channel, language, timezone, baby_name,"
                    " baby_birth_date, opted_out_at, created_at) VALUES (1, '+15550100001', 'sms',"
                    " 'es', 'America/Denver', 'Ana', :born, :opted_out, :at)"
                ),
                {"born": date(2026, 9, 1), "opted_out": opted_out, "at": consented},
            )
            connection.execute(
                text(
                    "INSERT INTO enrollments (id, clinic_id, family_id, status, enrolled_at, consented_at,"
                    " ended_at) VALUES (1, 1, 1, 'ended', :at, :at, :opted_out),"
                    " (2, 2, 1, 'awaiting_consent', :later, NULL, NULL)"
                ),
                {"at": consented, "opted_out": opted_out, "later": datetime(2026, 11, 6, 9)},
            )
        upgrade(url)
        with engine.connect() as connection:
            e, w = Enrollment, EnrollmentWindow  # typed columns: dates come back as dates
            rows = connection.execute(
                select(e.id, e.language, e.timezone, e.baby_name, e.baby_birth_date, e.ended_reason).order_by(
                    e.id
                )
            ).all()
            windows = connection.execute(select(w.enrollment_id, w.started_at, w.ended_at)).all()
        engine.dispose()
    born = date(2026, 9, 1)
    assert [tuple(row) for row in rows] == [
        (1, "es", "America/Denver", "Ana", born, "opted_out"),
        (2, "es", "America/Denver", "Ana", born, None),
    ]
    assert [tuple(window) for window in windows] == [(1, consented, opted_out)]
