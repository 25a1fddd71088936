"""A family's right to see and erase its data, and the retention purge of message bodies."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from smsbot import audit
from smsbot.db import dialect_insert
from smsbot.families import lock_family
from smsbot.models import Alert, CheckIn, Enrollment, ErasedSid, Event, Family, Message

EXPORTED = {
    "family": (
        "phone",
        "channel",
        "language",
        "timezone",
        "baby_name",
        "baby_birth_date",
        "opted_out_at",
        "followup_hold",
        "followup_hold_since",
        "created_at",
        "last_contact_at",
        "last_level",
    ),
    "enrollments": (
        "id",
        "clinic_id",
        "programme",
        "status",
        "external_ref",
        "language",
        "timezone",
        "baby_name",
        "baby_birth_date",
        "enrolled_at",
        "consent_requested_at",
        "consented_at",
        "ended_at",
        "ended_reason",
    ),
    "messages": (
        "id",
        "direction",
        "kind",
        "body",
        "status",
        "level",
        "flags",
        "rules_version",
        "model_version",
        "lang",
        "created_at",
    ),
    "checkins": ("id", "programme", "step", "status", "due_at", "sent_at", "answered_at", "outcome"),
    "alerts": ("id", "clinic_id", "level", "reason", "created_at", "acknowledged_at"),
}


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


def _row(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: _plain(getattr(obj, name)) for name in names}


def find_family(session: Session, phone: str) -> list[Family]:
    """Every contact (SMS and WhatsApp) with this E.164 number."""
    return list(session.scalars(select(Family).where(Family.phone == phone).order_by(Family.id)))


def export_family(session: Session, family: Family) -> dict[str, Any]:
    """Everything smsbot holds about one contact, as plain JSON-ready data."""

    def rows(model: Any, key: str) -> list[dict[str, Any]]:
        found = session.scalars(select(model).where(model.family_id == family.id).order_by(model.id))
        return [_row(obj, EXPORTED[key]) for obj in found]

    return {
        "family": _row(family, EXPORTED["family"]),
        "enrollments": rows(Enrollment, "enrollments"),
        "messages": rows(Message, "messages"),
        "checkins": rows(CheckIn, "checkins"),
        "alerts": rows(Alert, "alerts"),
    }


def erase_family(
    session: Session,
    family: Family,
    *,
    now: datetime,
    by: str,
    asked_by: str | None = None,
    clinic_id: int | None = None,
) -> dict[str, int]:
    """Delete the contact and everything linked to it, its access audit included; keep only
    an anonymous event and one anonymous audit line saying who erased it (``by``), at whose
    request (``asked_by``) and for which clinic (None: the operator).

    The family's row is locked first, as every path that changes a family does
    (``families.lock_family``); a family erased meanwhile has nothing left to count.
    """
    if lock_family(session, family.id) is None:
        return {}
    inbound_sids = session.scalars(
        select(Message.provider_sid).where(
            Message.family_id == family.id, Message.direction == "in", Message.provider_sid.is_not(None)
        )
    ).all()
    if inbound_sids:
        session.execute(
            dialect_insert(session.get_bind().dialect.name, ErasedSid)
            .values([{"sid_hash": sid_hash(sid), "erased_at": now} for sid in inbound_sids])
            .on_conflict_do_nothing()
        )
    counts = {}
    for model in (Alert, CheckIn, Message, Enrollment, Event):
        counts[model.__tablename__] = session.execute(
            delete(model).where(model.family_id == family.id)
        ).rowcount
    counts["audit_log"] = audit.forget_family(session, family.id)
    session.delete(family)
    session.add(Event(family_id=None, kind="family_erased", detail=counts, created_at=now))
    audit.record(
        session, audit.ERASE, actor=by, now=now, clinic_id=clinic_id, asked_by=asked_by, erased=counts
    )
    session.flush()
    return counts


def sid_hash(sid: str) -> str:
    """One-way: the erased text's id cannot be read back, only recognised when it comes again."""
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


def was_erased(session: Session, sid: str) -> bool:
    """Whether ``sid`` is a text of a family erased since: a replay, to be ignored."""
    return session.get(ErasedSid, sid_hash(sid)) is not None


def purge_old_bodies(session: Session, *, retention_days: int, now: datetime) -> int:
    """Blank message bodies older than the retention period; levels and counts stay."""
    if retention_days <= 0:
        return 0
    cutoff = now - timedelta(days=retention_days)
    return session.execute(
        update(Message).where(Message.created_at < cutoff, Message.body.is_not(None)).values(body=None)
    ).rowcount
