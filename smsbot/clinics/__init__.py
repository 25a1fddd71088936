"""Clinics, their staff and API tokens, and enrolling families for follow-up.

``accounts``: clinics, staff (scrypt password hashes; disabling, new passwords and ending
their sessions) and hashed API tokens.
``enrollment``: validation, idempotent enrollment, unenroll. ``consent``: each enrollment's
consent request and the YES that answers it. ``details``: each clinic's own details of a
family, and the copy texts use. ``queries``: what one clinic may read and change, shared by
the API and the dashboard. ``texts``: what is sent on a clinic's behalf (``rules/clinic.yaml``).
``csv_import``: enrolling a clinic's CSV, row by row.
Import from here: ``from smsbot import clinics``.
"""

from smsbot.clinics.accounts import (
    ROLES,
    add_staff,
    authenticate_token,
    create_clinic,
    create_token,
    disable_staff,
    enable_staff,
    end_sessions,
    get_clinic,
    get_staff,
    is_timezone,
    list_clinics,
    list_staff,
    list_tokens,
    parse_quiet_hours,
    revoke_token,
    set_password,
    set_role,
    update_clinic,
)
from smsbot.clinics.consent import (
    answer_consent,
    consent_confirmation,
    consent_state,
    record_consent_failure,
    retry_consents,
)
from smsbot.clinics.details import sync_family_details
from smsbot.clinics.enrollment import (
    FAMILY_FIELDS,
    clean_family_fields,
    enroll_family,
    is_storable_text,
    programme_ids,
    unenroll,
    update_family,
)
from smsbot.clinics.errors import ConflictError, FieldError, InvalidFieldsError
from smsbot.clinics.queries import family_checkins, family_messages, message_visibility

__all__ = [
    "FAMILY_FIELDS",
    "ROLES",
    "ConflictError",
    "FieldError",
    "InvalidFieldsError",
    "add_staff",
    "answer_consent",
    "authenticate_token",
    "clean_family_fields",
    "consent_confirmation",
    "consent_state",
    "create_clinic",
    "create_token",
    "disable_staff",
    "enable_staff",
    "end_sessions",
    "enroll_family",
    "family_checkins",
    "family_messages",
    "get_clinic",
    "get_staff",
    "is_storable_text",
    "is_timezone",
    "list_clinics",
    "list_staff",
    "list_tokens",
    "message_visibility",
    "parse_quiet_hours",
    "programme_ids",
    "record_consent_failure",
    "retry_consents",
    "revoke_token",
    "set_password",
    "set_role",
    "sync_family_details",
    "unenroll",
    "update_clinic",
    "update_family",
]
