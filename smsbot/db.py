"""Database engine, sessions and migrations.

SQLite (WAL, foreign keys on) for one machine; PostgreSQL with a connection pool for
several workers. The schema is only ever created by Alembic migrations.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from flask import Flask, current_app, g
from sqlalchemy import Engine, Table, create_engine, event, exc, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from smsbot import audit

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# A pooled connection returned this recently is taken as alive; older ones are pinged first.
IDLE_PING_SECONDS = 5.0
# How long a SQLite write waits for another writer's lock: well inside the 15 s Twilio gives
# a webhook, so a locked database is answered with a 503 (which Twilio retries) in time.
SQLITE_BUSY_SECONDS = 5


def normalise_url(url: str) -> str:
    """Let operators write ``postgresql://`` and still get the psycopg 3 driver."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_SECONDS})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            # WAL lets the web app read while the scheduler writes. It is a property of the
            # file, set once (by ``upgrade``): switching takes a lock, and fails at once (no
            # busy wait) while another process is writing.
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
            cursor.close()

        return engine
    engine = create_engine(url, pool_size=10, max_overflow=20)
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: Engine) -> None:
    """Pre-ping only connections that sat idle, so the webhook does not pay a round trip per message.

    A connection used a moment ago is alive; one that waited in the pool may have been cut
    (a PostgreSQL restart, a proxy's idle timeout) and is replaced before anyone uses it.
    """

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection, record, _proxy) -> None:  # type: ignore[no-untyped-def]
        returned = record.info.get("returned_at")
        if returned is not None and time.monotonic() - returned < IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise exc.DisconnectionError() from error  # the pool reconnects and tries again

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
        record.info["returned_at"] = time.monotonic()


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Create or upgrade the schema through Alembic (never ``create_all``).

    A SQLite file is switched to WAL here, once, so that no connection of the running app
    has to switch it (which cannot wait for another writer's lock).
    """
    command.upgrade(alembic_config(url), revision)
    if normalise_url(url).startswith("sqlite"):
        engine = make_engine(url)
        engine.connect().close()  # the connect hook sets WAL
        engine.dispose()


class Database:
    """An engine and its session factory, shared by the web app, CLI and scheduler."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        audit.protect(self.sessionmaker)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error."""
        session = self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def close(self) -> None:
        """Close every pooled connection (commands and tests that end before the process)."""
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def init_app(self, app: Flask) -> None:
        app.extensions["smsbot.db"] = self
        app.teardown_appcontext(_close_request_session)


def get_db() -> Database:
    return current_app.extensions["smsbot.db"]


def request_session() -> Session:
    """The session for the current request, closed (and rolled back if open) at teardown."""
    if "db_session" not in g:
        g.db_session = get_db().sessionmaker()
    return g.db_session


def upsert(session: Session, model: type) -> postgresql.Insert | sqlite.Insert:
    """An INSERT for ``model`` that can take ``ON CONFLICT`` on the session's database."""
    return dialect_insert(session.get_bind().dialect.name, model)


def dialect_insert(dialect: str, target: type | Table) -> postgresql.Insert | sqlite.Insert:
    """Both supported databases spell ``ON CONFLICT`` the same; SQLAlchemy needs to know which.

    ``target`` a model for an ORM insert (rows come back as objects), a table for plain Core.
    """
    return postgresql.insert(target) if dialect == "postgresql" else sqlite.insert(target)


def _close_request_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.rollback()
        session.close()


_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (\w+)\.")


def clashing_table(error: exc.IntegrityError) -> str | None:
    """The table whose unique key a write clashed on, or None for another integrity error.

    Read from the driver's diagnostics (PostgreSQL) or message (SQLite), never from the
    statement's parameters, so it is safe to log and to show.
    """
    original = error.orig
    diag = getattr(original, "diag", None)
    if diag is not None:  # psycopg: SQLSTATE 23505 is unique_violation
        return diag.table_name if getattr(original, "sqlstate", None) == "23505" else None
    found = _SQLITE_UNIQUE.search(str(original))
    return found.group(1) if found else None


# PostgreSQL's lock_not_available, deadlock_detected and serialization_failure: worth a retry.
_RETRYABLE_SQLSTATES = {"55P03", "40P01", "40001"}


def is_busy(error: exc.DBAPIError) -> bool:
    """The database could not take the write in time (a lock held elsewhere): retry later."""
    original = error.orig
    if getattr(original, "sqlstate", None) in _RETRYABLE_SQLSTATES:
        return True
    return isinstance(error, exc.OperationalError) and "database is locked" in str(original)
