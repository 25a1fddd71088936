"""The dashboard's "enroll a family" form over ``clinics.enroll_family``.

Validation, idempotency and the consent text are the clinic service's, shared with the API
and the CSV import; this module only turns the form into its arguments and its errors
into messages shown next to each input.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.orm import Session

from smsbot import clinics
from smsbot.config import Settings
from smsbot.messaging import Transport
from smsbot.models import Clinic, Enrollment

FORM_FIELDS = ("phone", "language", "baby_name", "baby_birth_date", "programme")


class EnrollFormError(ValueError):
    """The form cannot be accepted; ``errors`` maps each input at fault to one message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = errors


def enroll_from_form(
    session: Session,
    clinic: Clinic,
    form: Mapping[str, str],
    *,
    settings: Settings,
    transport: Transport,
    now: datetime,
) -> tuple[Enrollment, bool]:
    """Enroll (or update) the family the form describes; (enrollment, newly enrolled)."""
    # A blank optional input means "not given": keep what the family already has.
    given = {field: form.get(field, "").strip() or None for field in FORM_FIELDS}
    try:
        return clinics.enroll_family(
            session, clinic, **given, now=now, settings=settings, transport=transport
        )
    except clinics.InvalidFieldsError as error:
        messages: dict[str, str] = {}
        for problem in error.errors:
            messages.setdefault(problem.field, problem.message)
        raise EnrollFormError(messages) from None
    except clinics.ConflictError as error:
        raise EnrollFormError({error.field or "phone": str(error)}) from None
