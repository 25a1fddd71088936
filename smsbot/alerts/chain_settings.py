"""Configuring a clinic's escalation chain: backup contacts, delays and clinic hours.

Shared by ``smsbot clinic escalation …`` and the dashboard's escalation page (clinic admins),
so both validate the same way: every problem is reported at once as ``InvalidFieldsError``.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from smsbot.clinics.accounts import parse_quiet_hours
from smsbot.clinics.errors import FieldError, InvalidFieldsError
from smsbot.config import ALERT_LINKS_NEED_PUBLIC_URL, Settings
from smsbot.models import Clinic, EscalationContact
from smsbot.phones import InvalidPhoneError, normalise_phone

MAX_DELAY_MINUTES = 24 * 60
MAX_CONTACTS = 10
NAME_MAX_CHARS = 200


def _minutes(raw: int | str | None, field: str, errors: list[FieldError]) -> int | None:
    """A delay of 1 to ``MAX_DELAY_MINUTES`` minutes (None/"" : not given)."""
    if raw is None or raw == "":
        return None
    text = str(raw).strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_DELAY_MINUTES:
        errors.append(
            FieldError(field, "invalid_delay", f"use a whole number of minutes, 1 to {MAX_DELAY_MINUTES}")
        )
        return None
    return int(text)


def set_delays(
    session: Session,
    clinic: Clinic,
    *,
    emergency_minutes: int | str | None = None,
    urgent_minutes: int | str | None = None,
    clinic_hours: str | None = None,
) -> Clinic:
    """Change the level delays and clinic hours given (None keeps one; clinic hours "" resets
    them to the default)."""
    errors: list[FieldError] = []
    emergency = _minutes(emergency_minutes, "emergency_minutes", errors)
    urgent = _minutes(urgent_minutes, "urgent_minutes", errors)
    hours: tuple[str | None, str | None] | None = None
    if clinic_hours is not None:
        hours = (None, None)
        if clinic_hours.strip():
            try:
                hours = parse_quiet_hours(clinic_hours)
            except ValueError:
                hours = None
            if hours is None or hours[0] >= hours[1]:  # type: ignore[operator]
                hours = None
                errors.append(
                    FieldError(
                        "clinic_hours", "invalid_clinic_hours", "clinic hours must look like 08:00-18:00"
                    )
                )
    if errors:
        raise InvalidFieldsError(errors)
    if emergency is not None:
        clinic.emergency_delay_minutes = emergency
    if urgent is not None:
        clinic.urgent_delay_minutes = urgent
    if hours is not None:
        clinic.clinic_hours_start, clinic.clinic_hours_end = hours
    session.flush()
    return clinic


def contacts(session: Session, clinic: Clinic) -> list[EscalationContact]:
    """The clinic's backup contacts, in the order they are paged."""
    return list(
        session.scalars(
            select(EscalationContact)
            .where(EscalationContact.clinic_id == clinic.id)
            .order_by(EscalationContact.position, EscalationContact.id)
        )
    )


def add_contact(
    session: Session,
    settings: Settings,
    clinic: Clinic,
    *,
    name: str,
    phone: str,
    delay_minutes: int | str | None = None,
) -> EscalationContact:
    """Add a backup contact at the end of the chain (paged after everyone before it)."""
    errors: list[FieldError] = []
    name = (name or "").strip()
    if not name or len(name) > NAME_MAX_CHARS:
        errors.append(FieldError("name", "invalid_name", f"give a name of 1 to {NAME_MAX_CHARS} characters"))
    normalised = ""
    try:
        normalised = normalise_phone(phone or "", settings.default_region)
    except InvalidPhoneError as error:
        errors.append(FieldError("phone", "invalid_phone", str(error)))
    delay = _minutes(delay_minutes, "delay_minutes", errors)
    if not settings.public_url:
        errors.append(FieldError("phone", "needs_public_url", ALERT_LINKS_NEED_PUBLIC_URL))
    existing = contacts(session, clinic)
    if len(existing) >= MAX_CONTACTS:
        errors.append(FieldError("phone", "too_many_contacts", f"a chain has at most {MAX_CONTACTS} backups"))
    if errors:
        raise InvalidFieldsError(errors)
    position = (
        session.scalar(
            select(func.max(EscalationContact.position)).where(EscalationContact.clinic_id == clinic.id)
        )
        or 0
    ) + 1
    contact = EscalationContact(
        clinic_id=clinic.id, position=position, name=name, phone=normalised, delay_minutes=delay
    )
    session.add(contact)
    session.flush()
    return contact


def remove_contact(session: Session, clinic: Clinic, contact_id: int) -> EscalationContact:
    """Remove one of the clinic's backups (LookupError if it has none with this id)."""
    contact = session.scalar(
        select(EscalationContact).where(
            EscalationContact.id == contact_id, EscalationContact.clinic_id == clinic.id
        )
    )
    if contact is None:
        raise LookupError(f"no backup contact {contact_id} at {clinic.slug}")
    session.delete(contact)
    session.flush()
    return contact
