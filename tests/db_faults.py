"""Real database faults for tests, raised by the database itself through triggers.

``fault(db, "reply")`` makes every INSERT of an outbound message fail, as a full disk or a
lost lock would, mid-request; ``fault(db, "reply", drop_connection=True)`` (PostgreSQL) makes
the server drop the connection that runs it instead. ``"processed"`` hits the statement
that stores a text processed (the full run's closing UPDATE, replied or not, or the INSERT of
a text answered at once), ``"mark_failed"`` the one that records a failed run, so the
text stays ``processing``. ``"parent_update"`` hits any UPDATE of the parent's (+15550100001)
family row, as an inbound follow-up makes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from smsbot.db import Database

# (table, events, condition) per fault name, in both databases' trigger syntax.
FAULTS = {
    "reply": ("messages", ("INSERT",), "NEW.direction = 'out'"),
    "processed": ("messages", ("INSERT", "UPDATE"), "NEW.status = 'processed'"),
    "mark_failed": ("messages", ("UPDATE",), "NEW.status = 'failed'"),
    "parent_update": ("families", ("UPDATE",), "NEW.phone = '+15550100001'"),
}


@contextmanager
def fault(db: Database, *names: str, drop_connection: bool = False) -> Iterator[None]:
    """While the block runs, the statements named by ``names`` fail inside the database."""
    if drop_connection and not db.is_postgres:
        raise ValueError("only PostgreSQL can drop a connection from a trigger")
    create, drop = [], []
    for name in names:
        table, events, condition = FAULTS[name]
        function = f"smsbot_test_fault_{name}"
        if db.is_postgres:
            action = (
                "PERFORM pg_terminate_backend(pg_backend_pid())"
                if drop_connection
                else "RAISE EXCEPTION 'injected fault'"
            )
            create.append(
                f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN {action}; RETURN NEW; END $$"
            )
        for event in events:
            trigger = f"{function}_{event.lower()}"
            if db.is_postgres:
                create.append(
                    f"CREATE TRIGGER {trigger} BEFORE {event} ON {table} FOR EACH ROW "
                    f"WHEN ({condition}) EXECUTE FUNCTION {function}()"
                )
                drop.append(f"DROP TRIGGER {trigger} ON {table}")
            else:
                create.append(
                    f"CREATE TRIGGER {trigger} BEFORE {event} ON {table} WHEN {condition} "
                    "BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
                )
                drop.append(f"DROP TRIGGER {trigger}")
        if db.is_postgres:
            drop.append(f"DROP FUNCTION {function}()")
    with db.engine.begin() as connection:
        for statement in create:
            connection.execute(text(statement))
    try:
        yield
    finally:
        with db.engine.begin() as connection:
            for statement in drop:
                connection.execute(text(statement))
