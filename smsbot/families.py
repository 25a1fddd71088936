"""Families as contacts: finding them by number and honouring an opt-out from any source."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from smsbot import checkins
from smsbot.db import upsert
from smsbot.enrollment_windows import ENDED_BY_OPT_OUT, end_enrollments
from smsbot.models import Enrollment, Event, Family
from smsbot.phones import mask_phone

log = logging.getLogger(__name__)


# Built once: composing a statement costs more than running it, and this runs for every text.
_ID_BY_NUMBER = select(Family.id).where(
    Family.phone == bindparam("phone"), Family.channel == bindparam("channel")
)


def family_id(session: Session, phone: str, channel: str, now: datetime) -> int:
    """The id of the family texting from ``phone`` on ``channel``, created on its first text.

    Every inbound message starts here, and nearly all come from known families: one read.
    Two first texts from the same number at once both get the one row: the unique phone
    and channel decide, and the loser's no-op update returns the winner's id.
    """
    found = session.scalar(_ID_BY_NUMBER, {"phone": phone, "channel": channel})
    if found is not None:
        return found
    insert = upsert(session, Family).values(phone=phone, channel=channel, created_at=now)
    statement = insert.on_conflict_do_update(
        index_elements=[Family.phone, Family.channel], set_={"phone": insert.excluded.phone}
    ).returning(Family.id)
    return session.scalars(statement).one()


def lock_family(session: Session, family_id: int) -> Family | None:
    """The family, its row locked until the transaction ends; None when it has been erased.

    Every path that changes a family's rows takes this lock before touching them (an
    inbound text does, by updating the row), so two of them never wait on each other's
    rows: one waits for the other, never a deadlock. It is ``FOR NO KEY UPDATE``, so a
    check-in or message being stored for the family meanwhile is not held up.
    """
    return session.scalars(
        select(Family)
        .where(Family.id == family_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).one_or_none()


def find_or_create_family(session: Session, phone: str, channel: str, now: datetime) -> Family:
    """The family texting from ``phone`` on ``channel`` (see ``family_id``), its row locked."""
    while (family := lock_family(session, family_id(session, phone, channel, now))) is None:
        pass  # erased between finding and locking it: it is created afresh
    return family


def opt_out(session: Session, family: Family, *, now: datetime, source: str, **detail: Any) -> int:
    """STOP (texted to us, or reported by Twilio as 21610): no more messages of any kind.

    Pending check-ins are cancelled and every clinic enrollment ends at once (ended by the
    opt-out: those clinics still get the family's red flags). Returns the number of
    check-ins cancelled.
    """
    family.opted_out_at = family.opted_out_at or now
    cancelled = checkins.cancel_pending(session, family, reason="opted out")
    end_enrollments(session, Enrollment.family_id == family.id, now=now, reason=ENDED_BY_OPT_OUT)
    session.add(
        Event(
            family_id=family.id,
            kind="opted_out",
            detail={"source": source, "cancelled": cancelled, **detail},
            created_at=now,
        )
    )
    log.info("family %s opted out (%s), %d check-ins cancelled", mask_phone(family.phone), source, cancelled)
    return cancelled
