"""The audit log is append-only for the application: an ORM guard refuses any other write.

Installed on every session smsbot makes (``Database``): changing or deleting an
``AuditEntry`` through the ORM, or an UPDATE or DELETE statement on its table, raises
``AuditLogAppendOnlyError``. The two sanctioned deletions, the retention purge and a
family's erasure, say so with the ``PURGE`` execution option; nothing may update a row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from smsbot.models import AuditEntry

PURGE = "audit_purge"  # execution option of the retention purge and of erasure's deletion


class AuditLogAppendOnlyError(RuntimeError):
    def __init__(self, what: str) -> None:
        super().__init__(f"the audit log is append-only: {what} refused")


def _refuse_changes(session: Session, _context: Any, _instances: Any) -> None:
    for entry in session.deleted:
        if isinstance(entry, AuditEntry):
            raise AuditLogAppendOnlyError("deleting an entry")
    for entry in session.dirty:
        if isinstance(entry, AuditEntry) and session.is_modified(entry):
            raise AuditLogAppendOnlyError("changing an entry")


def _refuse_statements(state: ORMExecuteState) -> None:
    # An ORM statement names an annotated copy of the table: compare by name.
    table = getattr(state.statement, "table", None)
    if not (state.is_update or state.is_delete) or getattr(table, "name", None) != AuditEntry.__tablename__:
        return
    if state.is_update:
        raise AuditLogAppendOnlyError("an UPDATE")
    if not state.execution_options.get(PURGE):
        raise AuditLogAppendOnlyError("a DELETE outside retention and erasure")


def protect(sessions: sessionmaker[Session]) -> None:
    """Guard every session ``sessions`` makes (idempotent)."""
    for name, listener in (("before_flush", _refuse_changes), ("do_orm_execute", _refuse_statements)):
        if not event.contains(sessions, name, listener):
            event.listen(sessions, name, listener)
