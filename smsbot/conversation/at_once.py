"""Answering a text at once: one read, one write, follow-ups left in the outbox.

Nearly every text comes from a known family with no check-in awaiting its answer, and its
reply depends on reads alone (``respond.decide``). One read finds the family and all the
reply needs; one write stores the text with its triage, the reply and an outbox row for
what the text sets off (``smsbot.outbox`` does that after the reply). Anything else, or any
failure before the write is done, is left to the full run (``inbound.receive``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import (
    Boolean,
    DateTime,
    Executable,
    Insert,
    Integer,
    String,
    and_,
    bindparam,
    exists,
    func,
    literal,
    select,
    true,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from smsbot import privacy
from smsbot.checkins.schedule import ANSWER_WINDOW, RED_FLAG_LEVELS
from smsbot.config import Settings
from smsbot.conversation.recent import CONTEXT_WINDOW, EARLIER_OF_FAMILY, Recent, recent, recent_of
from smsbot.conversation.respond import FLOOD_WINDOW, Decided, Outcome, decide
from smsbot.db import Database, dialect_insert
from smsbot.messaging.segments import count_segments
from smsbot.models import CheckIn, ErasedSid, Family, Message, OutboxEntry
from smsbot.vocabulary import MAX_ID

log = logging.getLogger(__name__)

# Replies repeat (one text per level and language, give or take the baby's name), and
# counting walks every character.
reply_segments = lru_cache(maxsize=1024)(count_segments)


class Text(Protocol):
    """One message as a provider hands it to us (``inbound.Inbound``)."""

    @property
    def sid(self) -> str: ...
    @property
    def phone(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def num_media(self) -> int: ...


@dataclass(frozen=True)
class _Known:
    """What the one read of ``answer_at_once`` found."""

    erased: bool  # this MessageSid is a text of a family erased since: a replay
    family: Family | None
    seen: bool  # this MessageSid is stored already: a retry
    open_checkin: bool  # the text may answer a check-in
    last_minute: int  # the family's texts of the flood window, before this one
    answered_seq: int  # the family's texts answered at once so far (``Message.answered_seq``)
    earlier: Recent | None  # its texts the new one may add to (``recent``)


# The one read: the family by number, and around it, what decides whether the text can be
# answered at once. Built once: composing a statement costs more than running it.
_ONE_ROW = select(literal(1).label("one")).subquery("one")
_FAMILY_COLUMNS = tuple(Family.__table__.columns)
_KNOWN = select(
    exists().where(ErasedSid.sid_hash == bindparam("sid_hash")).label("erased"),
    *_FAMILY_COLUMNS,
    exists().where(Message.provider_sid == bindparam("sid")).label("seen"),
    exists()
    .where(
        CheckIn.family_id == Family.id,
        CheckIn.status == "sent",
        CheckIn.sent_at >= bindparam("answer_since"),
    )
    .label("open_checkin"),
    select(func.count(Message.id))
    .where(
        Message.family_id == Family.id,
        Message.direction == "in",
        Message.created_at > bindparam("flood_since"),
    )
    .scalar_subquery()
    .label("last_minute"),
    select(func.max(Message.answered_seq))
    .where(Message.family_id == Family.id)
    .scalar_subquery()
    .label("answered_seq"),
)
_FAMILY_BY_NUMBER = and_(Family.phone == bindparam("phone"), Family.channel == bindparam("channel"))
_KNOWN_ALONE = _KNOWN.select_from(_ONE_ROW.outerjoin(Family, _FAMILY_BY_NUMBER))
# PostgreSQL: the family's recent texts in the same statement (a row each, LATERAL).
_EARLIER = EARLIER_OF_FAMILY.lateral("earlier")
_KNOWN_WITH_EARLIER = (
    _KNOWN.add_columns(_EARLIER.c.body, _EARLIER.c.level, _EARLIER.c.flags, _EARLIER.c.kind)
    .select_from(_ONE_ROW.outerjoin(Family, _FAMILY_BY_NUMBER).outerjoin(_EARLIER, true()))
    .order_by(_EARLIER.c.id.desc())
)


def answer_at_once(db: Database, settings: Settings, inbound: Text, now: datetime) -> Outcome | None:
    """The reply to a text that needs no write before it, stored with one write; None: the
    text takes the full run (``inbound.receive``), which also reports any failure."""
    postgres = db.engine.dialect.name == "postgresql"
    with db.engine.connect() as connection:
        if postgres:
            # One statement each, so no BEGIN and COMMIT round trips around them.
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        try:
            known = _read_known(connection, postgres, inbound, now)
            connection.rollback()  # the read's transaction (none on PostgreSQL): the write is its own
        except Exception as error:
            # A dropped pooled connection, or a fault: the full run stores the text first,
            # then reconnects or records the failure for a retry or the sweeper.
            invalidated = isinstance(error, DBAPIError) and error.connection_invalidated
            log.warning("reading for an inbound text failed; taking the full run", exc_info=not invalidated)
            return None
        if known.erased:
            return Outcome(reply=None, erased_replay=True)
        family = known.family
        if family is None or known.seen or known.open_checkin:
            return None
        try:
            decided = decide(
                settings,
                family,
                inbound.body,
                known.earlier,
                flooding=known.last_minute + 1 > settings.flood_messages_per_minute,
                now=now,
            )
        except Exception:
            log.exception("answering an inbound text at once failed; taking the full run")
            return None
        if decided is None:
            return None
        try:
            with connection.begin():
                stored = _store_decided(
                    connection, postgres, inbound, family.id, known.answered_seq + 1, decided, now
                )
        except IntegrityError:
            # Another text of the family was answered since the read (its ``answered_seq``),
            # or the family was erased: the full run, under the family's lock, sees it.
            return None
        except Exception:
            # Nothing or everything was stored (one statement): the full run stores the text
            # first, or finds it stored, and records any failure for a retry or the sweeper.
            log.warning("storing an inbound text at once failed; taking the full run", exc_info=True)
            return None
    if stored is None:
        return None  # a concurrent delivery of the same SID stored it first: answered as a retry
    decision = decided.decision
    return Outcome(reply=decided.reply, level=decision.level, flags=decision.flags, queued=True)


def _read_known(connection: Connection, postgres: bool, inbound: Text, now: datetime) -> _Known:
    params = {
        "sid_hash": privacy.sid_hash(inbound.sid),
        "sid": inbound.sid,
        "answer_since": now - ANSWER_WINDOW,
        "flood_since": now - FLOOD_WINDOW,
        "phone": inbound.phone,
        "channel": inbound.channel,
        "before": MAX_ID,
        "since": now - CONTEXT_WINDOW,
    }
    rows = connection.execute(_KNOWN_WITH_EARLIER if postgres else _KNOWN_ALONE, params).all()
    first = rows[0]
    # Plain rows, no session: the family is built as read, and the decision's language and
    # level are set on it in memory only (the follow-ups write them).
    family = (
        None
        if first.id is None
        else Family(**{column.key: first._mapping[column] for column in _FAMILY_COLUMNS})
    )
    answerable = family is not None and not first.erased and not first.seen and not first.open_checkin
    earlier = None
    if answerable:
        found = [row for row in rows if row.kind is not None] if postgres else None
        earlier = recent_of(found) if found is not None else recent(connection, family.id, now)
    return _Known(
        bool(first.erased),
        family,
        bool(first.seen),
        bool(first.open_checkin),
        first.last_minute or 0,
        first.answered_seq or 0,
        earlier,
    )


def _store_decided(
    connection: Connection,
    postgres: bool,
    inbound: Text,
    family_id: int,
    answered_seq: int,
    decided: Decided,
    now: datetime,
) -> int | None:
    """The text with its triage, its reply and its outbox row; the text's id, or None when
    this MessageSid was stored meanwhile (then nothing is written)."""
    decision = decided.decision
    values = {
        "p_family": family_id,
        "p_seq": answered_seq,
        "p_body": inbound.body,
        "p_sid": inbound.sid,
        "p_media": inbound.num_media,
        "p_segments": count_segments(inbound.body),
        "p_level": decision.level,
        "p_flags": list(decision.flags),
        "p_lang": decision.lang,
        "p_rules": decision.rules_version,
        "p_model": decision.model_version,
        "p_at": now,
        "p_reply": decided.reply,
        "p_reply_segments": reply_segments(decided.reply or ""),
        "p_urgent": decision.level in RED_FLAG_LEVELS,
    }
    with_reply = decided.reply is not None
    if postgres:
        return connection.scalar(_store_at_once(with_reply), values)
    message_id = connection.scalar(_inbound_insert("sqlite"), values)
    if message_id is not None:
        values["p_message"] = message_id
        if with_reply:
            connection.execute(_REPLY_FOR_ID, values)
        connection.execute(_QUEUE_FOR_ID, values)
    return message_id


_MESSAGES = Message.__table__
_FLAGS = _MESSAGES.c.flags.type


@lru_cache(maxsize=2)
def _inbound_insert(dialect: str) -> Insert:
    """The text, processed as it is stored; nothing when its MessageSid is stored already."""
    return (
        dialect_insert(dialect, _MESSAGES)
        .values(
            family_id=bindparam("p_family", type_=Integer),
            direction="in",
            kind="symptom",
            body=bindparam("p_body", type_=String),
            provider_sid=bindparam("p_sid", type_=String),
            status="processed",
            attempts=1,
            num_media=bindparam("p_media", type_=Integer),
            segments=bindparam("p_segments", type_=Integer),
            level=bindparam("p_level", type_=String),
            flags=bindparam("p_flags", type_=_FLAGS),
            lang=bindparam("p_lang", type_=String),
            rules_version=bindparam("p_rules", type_=String),
            model_version=bindparam("p_model", type_=String),
            created_at=bindparam("p_at", type_=DateTime),
            answered_seq=bindparam("p_seq", type_=Integer),
        )
        .on_conflict_do_nothing(index_elements=["provider_sid"])
        .returning(_MESSAGES.c.id)
    )


_REPLY_COLUMNS = (
    "family_id",
    "direction",
    "kind",
    "body",
    "reply_to_id",
    "status",
    "level",
    "flags",
    "lang",
    "num_media",
    "segments",
    "created_at",
)
_QUEUE_COLUMNS = ("message_id", "urgent", "attempts", "available_at", "created_at")


def _reply_values(message_id: Any) -> tuple[Any, ...]:
    return (
        bindparam("p_family", type_=Integer),
        literal("out", String),
        literal("reply", String),
        bindparam("p_reply", type_=String),
        message_id,
        literal("twiml", String),
        bindparam("p_level", type_=String),
        bindparam("p_flags", type_=_FLAGS),
        bindparam("p_lang", type_=String),
        literal(0, Integer),
        bindparam("p_reply_segments", type_=Integer),
        bindparam("p_at", type_=DateTime),
    )


def _queue_values(message_id: Any) -> tuple[Any, ...]:
    at = bindparam("p_at", type_=DateTime)
    return (message_id, bindparam("p_urgent", type_=Boolean), literal(0, Integer), at, at)


_OUTBOX = OutboxEntry.__table__
_REPLY_FOR_ID = _MESSAGES.insert().from_select(
    _REPLY_COLUMNS, select(*_reply_values(bindparam("p_message", type_=Integer)))
)
_QUEUE_FOR_ID = _OUTBOX.insert().from_select(
    _QUEUE_COLUMNS, select(*_queue_values(bindparam("p_message", type_=Integer)))
)


@lru_cache(maxsize=2)
def _store_at_once(with_reply: bool) -> Executable:
    """PostgreSQL: the text, its reply and its outbox row in one statement (data-modifying
    CTEs), so one autocommitted round trip stores all three or, on a known SID, none."""
    stored = _inbound_insert("postgresql").cte("stored")
    queued = _OUTBOX.insert().from_select(_QUEUE_COLUMNS, select(*_queue_values(stored.c.id))).cte("queued")
    statement = select(stored.c.id).add_cte(queued)
    if with_reply:
        reply = _MESSAGES.insert().from_select(_REPLY_COLUMNS, select(*_reply_values(stored.c.id)))
        statement = statement.add_cte(reply.cte("reply"))
    return statement
