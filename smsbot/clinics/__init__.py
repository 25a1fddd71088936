"""Clinics, their staff and API tokens, and enrolling families for follow-up.

``accounts``: clinics, staff (scrypt password hashes) and hashed API tokens.
``enrollment``: validation, idempotent enrollment with one consent text, unenroll, and
the clinic-scoped queries every view uses. Import from here: ``from smsbot import clinics``.
"""

from smsbot.clinics.accounts import (
    add_staff,
    authenticate_token,
    create_clinic,
    create_token,
    get_clinic,
    is_timezone,
    parse_quiet_hours,
    revoke_token,
)
from smsbot.clinics.enrollment import (
    FAMILY_FIELDS,
    clean_family_fields,
    enroll_family,
    family_checkins,
    family_messages,
    is_storable_text,
    message_visibility,
    programme_ids,
    unenroll,
    update_family,
)
from smsbot.clinics.errors import ConflictError, FieldError, InvalidFieldsError

__all__ = [
    "FAMILY_FIELDS",
    "ConflictError",
    "FieldError",
    "InvalidFieldsError",
    "add_staff",
    "authenticate_token",
    "clean_family_fields",
    "create_clinic",
    "create_token",
    "enroll_family",
    "family_checkins",
    "family_messages",
    "get_clinic",
    "is_storable_text",
    "is_timezone",
    "message_visibility",
    "parse_quiet_hours",
    "programme_ids",
    "revoke_token",
    "unenroll",
    "update_family",
]
