"""A clinic's own details of a family it enrolled, and which of them texts to the family use.

Each clinic records its details (baby's name and birth date, language, time zone, external
ref) on its own enrollment: another clinic enrolling the same phone neither sees nor
changes them. Texts to the family (replies to its texts, check-ins) read them from the
family row, a copy of the details of its *primary* clinic: among the clinics following it
with consent, the one it consented to first. The copy is refreshed whenever that could
change (a consent, an enrollment ending, the primary clinic editing its details); the
family's own texts also set its language. A family no clinic follows keeps the last copy
(a walk-in texter has none: "your baby", the assumed age, the deployment's time zone).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from smsbot.enrollment_windows import following
from smsbot.models import Enrollment, Family

# What texts to the family use, copied from the primary clinic's enrollment.
ADDRESSING_FIELDS = ("language", "baby_name", "baby_birth_date", "timezone")
DETAIL_FIELDS = (*ADDRESSING_FIELDS, "external_ref")


def apply_details(session: Session, enrollment: Enrollment, values: Mapping[str, Any]) -> None:
    """Record cleaned details (``clinics.clean_family_fields``) on ``enrollment``."""
    for field in DETAIL_FIELDS:
        if field in values:
            setattr(enrollment, field, values[field])
    session.flush()
    sync_family_details(session, enrollment.family)


def sync_family_details(session: Session, family: Family) -> None:
    """Copy the primary clinic's details to ``family``, if a clinic follows it."""
    primary = next(iter(following(session, family)), None)
    if primary is None:
        return
    for field in ADDRESSING_FIELDS:
        setattr(family, field, getattr(primary, field))
