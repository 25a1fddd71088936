"""The dashboard's "enroll a family" form: parse and validate what a nurse typed.

Validation matches the clinic API (E.164 phone, ``en``/``es``, a plausible birth date for
a young baby), and every error names its field so the form can show it next to the input.

Merge note: ``enroll`` below is a stand-in until ``smsbot.clinics.enroll_family`` lands on
main; at that merge the view calls ``enroll_family`` (which also sends the consent SMS)
and ``enroll`` is deleted.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from smsbot.models import Enrollment, Family
from smsbot.phones import InvalidPhoneError, normalise_phone

LANGUAGES = {"en": "English", "es": "Español"}
MAX_BABY_NAME = 100
MAX_BABY_AGE = timedelta(days=366)  # the service is for young babies; older is a typo


@dataclass(frozen=True)
class EnrollRequest:
    phone: str  # E.164
    language: str
    baby_name: str | None
    baby_birth_date: date | None
    programme: str | None


class EnrollError(ValueError):
    """The family cannot be enrolled; ``field`` names the form input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def parse_enroll_form(
    form: Mapping[str, str], *, region: str, today: date, programmes: Collection[str]
) -> EnrollRequest:
    """Validate the form; raise EnrollError for the first bad field, in form order.

    ``programmes`` are the check-in programme ids in ``rules/checkins.yaml``; none chosen
    means the rules' default for enrollments.
    """
    try:
        phone = normalise_phone(form.get("phone", ""), region)
    except InvalidPhoneError as error:
        raise EnrollError("phone", f"Enter the parent's mobile number ({error}).") from None
    language = form.get("language", "")
    if language not in LANGUAGES:
        raise EnrollError("language", "Choose English or Spanish.")
    baby_name = form.get("baby_name", "").strip() or None
    if baby_name is not None and len(baby_name) > MAX_BABY_NAME:
        raise EnrollError("baby_name", f"Keep the baby's name under {MAX_BABY_NAME} characters.")
    birth_date = None
    if raw_date := form.get("baby_birth_date", "").strip():
        try:
            birth_date = date.fromisoformat(raw_date)
        except ValueError:
            raise EnrollError("baby_birth_date", "Write the birth date as YYYY-MM-DD.") from None
        if birth_date > today or today - birth_date > MAX_BABY_AGE:
            raise EnrollError("baby_birth_date", "The birth date must be within the last year.")
    programme = form.get("programme", "").strip() or None
    if programme is not None and programme not in programmes:
        raise EnrollError("programme", "Choose one of the check-in programmes listed.")
    return EnrollRequest(phone, language, baby_name, birth_date, programme)


def enroll(session: Session, clinic_id: int, request: EnrollRequest, *, now: datetime) -> Enrollment:
    """Stand-in for ``smsbot.clinics.enroll_family`` (see the module docstring)."""
    family = session.scalar(select(Family).where(Family.phone == request.phone, Family.channel == "sms"))
    enrollment = None
    if family is not None:
        enrollment = session.scalar(
            select(Enrollment).where(Enrollment.clinic_id == clinic_id, Enrollment.family_id == family.id)
        )
        if enrollment is not None and enrollment.status != "ended":
            raise EnrollError("phone", "This family is already enrolled at your clinic.")
    else:
        family = Family(phone=request.phone, channel="sms")
        session.add(family)
    family.language = request.language
    family.baby_name = request.baby_name or family.baby_name
    family.baby_birth_date = request.baby_birth_date or family.baby_birth_date
    if enrollment is None:
        enrollment = Enrollment(clinic_id=clinic_id, family=family)
        session.add(enrollment)
    enrollment.programme = request.programme
    enrollment.status = "awaiting_consent"
    enrollment.enrolled_at = now
    enrollment.ended_at = None
    session.commit()
    return enrollment
