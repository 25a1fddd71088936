"""The access audit: who signed in, viewed, revealed, read, exported or erased a family's data.

Append-only for the application (``guard``); its own retention (``purge_expired``).
"""

from smsbot.audit.guard import AuditLogAppendOnlyError, protect
from smsbot.audit.log import (
    ACTIONS,
    API_READ,
    ERASE,
    EXPORT,
    FAMILY_VIEW,
    LOGIN,
    LOGIN_FAILED,
    PHONE_REVEAL,
    can_read_audit,
    family_entries,
    forget_family,
    purge_expired,
    record,
)

__all__ = [
    "ACTIONS",
    "API_READ",
    "ERASE",
    "EXPORT",
    "FAMILY_VIEW",
    "LOGIN",
    "LOGIN_FAILED",
    "PHONE_REVEAL",
    "AuditLogAppendOnlyError",
    "can_read_audit",
    "family_entries",
    "forget_family",
    "protect",
    "purge_expired",
    "record",
]
