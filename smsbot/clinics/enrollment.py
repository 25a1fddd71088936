"""Enrolling families for clinic follow-up: the one path shared by the REST API, the CSV
import and the dashboard, so validation, idempotency and the consent rule live in one
place. Enrolling records the enrollment, commits it, then sends one consent text
(``clinics.consent``), so no text goes out that is not recorded; nothing else goes out, and
the clinic reads nothing of the family, until the family says YES.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from smsbot import checkins
from smsbot.checkins.programmes import load_programmes
from smsbot.clinics.accounts import is_timezone
from smsbot.clinics.consent import consent_in_flight, request_consent
from smsbot.clinics.details import apply_details, sync_family_details
from smsbot.clinics.errors import ConflictError, FieldError, InvalidFieldsError
from smsbot.config import Settings
from smsbot.enrollment_windows import ENDED_BY_CLINIC, end_enrollments
from smsbot.families import find_or_create_family
from smsbot.messaging import Transport
from smsbot.models import Clinic, Enrollment, Event
from smsbot.phones import InvalidPhoneError, normalise_phone
from smsbot.vocabulary import CHANNELS, LANGS

# Check-ins are for young babies; an older birth date is almost always a typo (e.g. the
# parent's own birth date in a CSV column).
MAX_BABY_AGE = timedelta(days=2 * 366)
TEXT_LIMITS = {"baby_name": 100, "external_ref": 100}
TIMEZONE_MAX_CHARS = 64  # the longest IANA zone name is 32
CLEARABLE_FIELDS = ("baby_name", "baby_birth_date", "timezone", "external_ref")
FAMILY_FIELDS = ("phone", "channel", "programme", "language", *CLEARABLE_FIELDS)


def programme_ids(settings: Settings) -> frozenset[str]:
    """Programme ids a clinic may enroll a family in, from ``rules/checkins.yaml``."""
    return frozenset(load_programmes(settings.rules_path).programmes)


def is_storable_text(value: str) -> bool:
    """PostgreSQL refuses NUL in text and a lone surrogate cannot be encoded: refuse both early."""
    return "\x00" not in value and not any(unicodedata.category(ch) == "Cs" for ch in value)


def is_one_line(value: str) -> bool:
    """No line break or other control character: a field that goes into a text or a report
    is one line (in a CSV, a line break in a cell is usually an unclosed quote)."""
    return not any(unicodedata.category(ch) == "Cc" for ch in value)


def clean_family_fields(
    raw: Mapping[str, Any], settings: Settings, *, today: date, required: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Validate and normalise family input from the API, a CSV row or the dashboard.

    Only the keys present are returned, so callers can update just what was given; a
    ``None`` optional field means "clear it". Raises InvalidFieldsError listing every problem.
    """
    errors: list[FieldError] = []
    values: dict[str, Any] = {}

    def fail(field: str, code: str, message: str) -> None:
        errors.append(FieldError(field, code, message))

    for field in required:
        if raw.get(field) in (None, ""):
            fail(field, "missing_field", f"{field} is required")
    for field, value in raw.items():
        if field not in FAMILY_FIELDS:
            fail(field, "unknown_field", f"unknown field {field!r}")
            continue
        if field in required and value in (None, ""):
            continue  # reported above
        if value is None:
            if field in CLEARABLE_FIELDS:
                values[field] = None
            else:
                fail(field, "invalid_value", f"{field} cannot be null")
            continue
        if field == "baby_birth_date" and isinstance(value, date):
            value = value.isoformat()
        if not isinstance(value, str):
            fail(field, "invalid_type", f"{field} must be a string")
            continue
        if not is_storable_text(value):
            fail(field, "invalid_value", f"{field} contains a NUL or unpaired surrogate character")
            continue
        value = value.strip()
        if not is_one_line(value):
            fail(field, "invalid_value", f"{field} contains a line break or control character")
            continue
        if field == "phone":
            try:
                values[field] = normalise_phone(value, settings.default_region)
            except InvalidPhoneError as error:
                fail(field, "invalid_phone", str(error))
        elif field == "channel":
            values[field] = value.lower()
            if values[field] not in CHANNELS:
                fail(field, "invalid_channel", f"channel must be one of {', '.join(CHANNELS)}")
        elif field == "language":
            values[field] = value.lower()
            if values[field] not in LANGS:
                fail(field, "unknown_language", f"language must be one of {', '.join(LANGS)}")
        elif field == "programme":
            values[field] = value
            if value not in programme_ids(settings):
                fail(field, "unknown_programme", f"no check-in programme {value!r}")
        elif field == "baby_birth_date":
            try:
                born = date.fromisoformat(value)
            except ValueError:
                fail(field, "invalid_date", "use a YYYY-MM-DD date")
                continue
            if born > today or born < today - MAX_BABY_AGE:
                fail(field, "invalid_date", "must be a young baby's birth date, not in the future")
            values[field] = born
        elif field == "timezone":
            values[field] = value
            if len(value) > TIMEZONE_MAX_CHARS or not is_timezone(value):
                fail(field, "invalid_timezone", f"{value!r} is not a time zone")
        else:
            values[field] = value or None
            if len(value) > TEXT_LIMITS[field]:
                fail(field, "too_long", f"{field} is longer than {TEXT_LIMITS[field]} characters")
    if errors:
        raise InvalidFieldsError(errors)
    return values


def enroll_family(
    session: Session,
    clinic: Clinic,
    *,
    phone: str | None,
    programme: str | None,
    language: str | None = None,
    baby_name: str | None = None,
    baby_birth_date: date | str | None = None,
    timezone: str | None = None,
    external_ref: str | None = None,
    channel: str = "sms",
    now: datetime,
    settings: Settings,
    transport: Transport,
) -> tuple[Enrollment, bool]:
    """Enroll a family at ``clinic``; return (enrollment, created).

    Idempotent: enrolling the same number at the same clinic updates the given details and
    sends nothing new; another clinic gets its own Enrollment, with its own details. A new
    (or re-opened, after unenroll) enrollment waits for consent and gets one consent text,
    unless the family has opted out: then it waits silently, and enrolling it again once
    the family has texted START sends the request (as it does after a failed send, but
    not while a send's outcome is unknown: ``clinics.consent`` settles that first). The
    enrollment is committed before its consent text goes out; the caller commits the outcome.
    Optional fields left as None keep their current value (a None phone or programme is
    reported as missing, so API callers can pass the body through). Raises InvalidFieldsError or
    ConflictError (already following the family in another programme).
    """
    given = {
        "phone": phone,
        "channel": channel,
        "programme": programme,
        "language": language,
        "baby_name": baby_name,
        "baby_birth_date": baby_birth_date,
        "timezone": timezone,
        "external_ref": external_ref,
    }
    values = clean_family_fields(
        {k: v for k, v in given.items() if v is not None},
        settings,
        today=now.date(),
        required=("phone", "programme"),
    )
    family = find_or_create_family(session, values["phone"], values.get("channel", "sms"), now)
    enrollment = session.scalar(
        select(Enrollment).where(Enrollment.clinic_id == clinic.id, Enrollment.family_id == family.id)
    )
    active = enrollment is not None and enrollment.status == "active"
    if active and enrollment.programme != values["programme"]:
        raise ConflictError(
            "enrolled_in_other_programme",
            f"already following this family in {enrollment.programme!r}; unenroll first",
            "programme",
        )
    created = enrollment is None
    if created:
        enrollment = Enrollment(clinic_id=clinic.id, family_id=family.id)
        session.add(enrollment)
    enrollment.programme = values["programme"]
    if created or enrollment.status == "ended":
        # A new enrollment, not the old one resumed: the clinic reads nothing from the gap.
        enrollment.status, enrollment.enrolled_at = "awaiting_consent", now
        enrollment.consent_requested_at = enrollment.consented_at = None
        enrollment.consent_attempts, enrollment.consent_error, enrollment.consent_retry_at = 0, None, None
        enrollment.ended_at = enrollment.ended_reason = None
        session.add(
            Event(
                family_id=family.id,
                kind="enrolled",
                detail={"clinic": clinic.slug, "programme": enrollment.programme},
                created_at=now,
            )
        )
    apply_details(session, enrollment, values)
    owed = enrollment.status == "awaiting_consent" and enrollment.consent_requested_at is None
    if owed and not family.opted_out and not consent_in_flight(session, enrollment):
        request_consent(session, enrollment, transport=transport, settings=settings, now=now)
    return enrollment, created


def update_family(session: Session, enrollment: Enrollment, values: Mapping[str, Any]) -> None:
    """Record cleaned details (see ``clean_family_fields``) on this clinic's enrollment."""
    apply_details(session, enrollment, values)


def unenroll(session: Session, enrollment: Enrollment, *, now: datetime) -> bool:
    """End an enrollment and cancel its pending check-ins; False when it had already ended."""
    if not end_enrollments(session, Enrollment.id == enrollment.id, now=now, reason=ENDED_BY_CLINIC):
        return False
    checkins.cancel_pending(session, enrollment.family, enrollment=enrollment, reason="unenrolled by clinic")
    sync_family_details(session, enrollment.family)  # another clinic may now be the primary one
    session.add(
        Event(
            family_id=enrollment.family_id,
            kind="unenrolled",
            detail={"clinic_id": enrollment.clinic_id},
            created_at=now,
        )
    )
    return True
