"""Scratch PostgreSQL databases for tests: created on the server named by
``SMSBOT_TEST_DATABASE_URL`` and dropped afterwards, so runs never collide."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from smsbot.db import normalise_url
from smsbot.models import Base


@contextmanager
def scratch_postgres_database(server_url: str) -> Iterator[str]:
    """Yield the URL of a new, empty database on the same server; drop it on exit."""
    server = make_url(normalise_url(server_url))
    name = f"smsbot_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def truncate_all(url: str) -> None:
    """Empty every table (ids restart) so each test starts from a clean database."""
    engine = create_engine(normalise_url(url))
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
