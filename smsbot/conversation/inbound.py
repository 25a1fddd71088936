"""Inbound texts: stored once, processed once, and never lost.

Plain functions over the models; the webhook and ``smsbot chat`` are thin callers. Nearly
every text is answered at once (``at_once``: stored in one write with its triage, its reply
and its follow-ups in the outbox). The rest take the full run here: the inbound row is
committed before any processing, so nothing a parent sent is ever lost, and a provider retry
with the same ``MessageSid`` gets the stored reply, not a second run. What the reply is, and
what the text sets off, is ``respond.process``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Insert,
    and_,
    bindparam,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from smsbot import families, privacy
from smsbot.config import Settings
from smsbot.conversation.at_once import answer_at_once, reply_segments
from smsbot.conversation.respond import (
    Outcome,
    process,
    rulebook,
    service_reply,
)
from smsbot.db import Database, dialect_insert
from smsbot.messaging.segments import count_segments
from smsbot.metrics import INBOUND_RECOVERY
from smsbot.models import Family, Message, utcnow

log = logging.getLogger(__name__)

# How long a duplicate delivery waits for the first one's reply before giving up.
DUPLICATE_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class Inbound:
    """One message as a provider hands it to us."""

    sid: str
    phone: str  # E.164
    channel: str = "sms"
    body: str = ""
    num_media: int = 0


def receive(db: Database, settings: Settings, inbound: Inbound, now: datetime | None = None) -> Outcome:
    """Store ``inbound`` (once per SID), process it once, and return the reply to send.

    Nearly every text is answered from one read and stored with one write: the text, its
    triage, its reply and an outbox row for what it sets off (``Outcome.queued``: the
    caller has ``smsbot.outbox`` do that after answering). The rest (a first text, a
    keyword, a check-in answer, news, a retry) take the full run below.
    """
    now = now or utcnow()
    return answer_at_once(db, settings, inbound, now) or _receive_in_full(db, settings, inbound, now)


def _receive_in_full(db: Database, settings: Settings, inbound: Inbound, now: datetime) -> Outcome:
    """Store ``inbound`` (once per SID), process it once, and return the reply to send.

    Two transactions on one connection, each a single commit: the inbound row, already
    claimed for processing, then everything processing decides plus the reply. Commits
    are the cost that matters under load (each waits for the WAL to reach the disk).
    A run that fails leaves the text for a provider retry or, past the sweep deadline, the
    sweeper (``smsbot.sweeper``).
    """
    if _erased_since(db, inbound.sid):
        return Outcome(reply=None, erased_replay=True)
    lease = timedelta(seconds=settings.sweep_after_seconds)
    # Bound to one connection for both transactions, rather than back to the pool in
    # between; no autoflush: processing writes once, at the commit, not before each read.
    connection = db.engine.connect()
    session = db.sessionmaker(bind=connection, autoflush=False)
    try:
        message = _store_inbound(session, inbound, now, lease)
        claim = None
        if isinstance(message, int):
            # Seen this MessageSid before: process it only if no run finished it.
            claim = _claim(session, message, now, lease)
            if claim is None:
                session.close()
                connection.close()  # not held while waiting for the first delivery's reply
                return _previous_outcome(db, message)
            message = session.get_one(Message, message)
        message_id = message.id
        try:
            outcome = process_claimed(session, settings, message, now, claim=claim)
        except Exception:
            session.rollback()
            log.exception("processing inbound message %s failed", message_id)
            return _failure_reply(db, settings, message_id, inbound.body)
        if outcome is None:  # a sweeper took the text over meanwhile and answers it
            return Outcome(reply=None, duplicate=True)
        if claim is not None:
            INBOUND_RECOVERY.labels("retried").inc()
            log.warning("inbound message %s processed on a provider retry", message_id)
        return outcome
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
        connection.close()


def _erased_since(db: Database, sid: str) -> bool:
    """``privacy.was_erased``, asked again once on a fresh connection when the pooled one
    turns out to have been dropped by the server (nothing was written, so that is safe)."""
    try:
        with db.session() as session:
            return privacy.was_erased(session, sid)
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
    with db.session() as session:
        return privacy.was_erased(session, sid)


def process_claimed(
    session: Session,
    settings: Settings,
    message: Message,
    now: datetime,
    *,
    claim: datetime | None = None,
    reply_status: str = "twiml",
) -> Outcome | None:
    """Process a stored text this caller has claimed, and commit the outcome with its reply.

    ``claim`` is the ``claimed_until`` a retry's or the sweeper's claim set: once the family
    is locked the text must still carry it, or another run took it over after our claim
    ran out (None is returned and nothing written). ``reply_status`` is "twiml" when the
    reply goes back in the webhook's answer, "sending" when the caller sends it by REST
    (``Outcome.reply_id`` then names the stored reply).
    """
    # Processing reads the family through the message: no lazy load.
    set_committed_value(message, "family", _lock_family(session, message.family_id, now))
    if claim is not None and session.scalar(_CLAIM_HELD, {"id": message.id}) != claim:
        session.rollback()
        return None
    # Set first, committed only together with the outcome: one UPDATE, not two.
    message.status = "processed"
    outcome = process(session, settings, message, message.num_media, now)
    if outcome.reply is not None:
        row = _reply_row(message, outcome, reply_status)
        if reply_status == "twiml":
            session.connection().execute(_REPLY_INSERT, row)
        else:
            outcome.reply_id = session.connection().execute(_REPLY_INSERT_RETURNING, row).scalar_one()
    session.commit()
    return outcome


_CLAIM_HELD = select(Message.claimed_until).where(
    Message.id == bindparam("id"), Message.status == "processing"
)


def mark_failed(db: Database, message_id: int) -> Family | None:
    """Record that processing ``message_id`` failed, so a retry or the sweeper takes it up.

    On a fresh connection: the one that broke may be the request's. Returns the family as it
    stands, or None when the database cannot be reached (the text then stays
    ``processing`` until its claim runs out, and the sweeper takes it up all the same).
    """
    INBOUND_RECOVERY.labels("failed").inc()
    try:
        with db.session() as session:
            session.execute(
                update(Message)
                .where(Message.id == message_id, Message.status == "processing")
                .values(status="failed")
            )
            return session.scalar(
                select(Family).join(Message, Message.family_id == Family.id).where(Message.id == message_id)
            )
    except SQLAlchemyError:
        log.exception("could not mark inbound message %s failed; the sweeper will take it up", message_id)
        return None


def _failure_reply(db: Database, settings: Settings, message_id: int, text: str) -> Outcome:
    """The "sorry, something went wrong" reply: never to a family that opted out or is opting
    out with this very text, nor when the database cannot say whether it did."""
    family = mark_failed(db, message_id)
    if family is None or family.opted_out or rulebook(settings)[0].opting_out(text):
        INBOUND_RECOVERY.labels("error_reply_withheld").inc()
        log.warning("inbound message %s failed; no error reply (opted out, or unknown)", message_id)
        return Outcome(reply=None)
    INBOUND_RECOVERY.labels("error_reply").inc()
    return Outcome(reply=service_reply(settings, "error", family.language))


def _store_inbound(session: Session, inbound: Inbound, now: datetime, lease: timedelta) -> Message | int:
    """Commit the inbound row, claimed for processing, before anything else.

    Returns the new row, or the id of the row an earlier delivery of the same SID stored.
    The unique ``provider_sid`` decides which delivery is first (``ON CONFLICT DO
    NOTHING``), so a new message costs no lookup and no separate claim.
    """
    for _attempt in range(3):
        committing = False
        try:
            values = {
                "family_id": families.family_id(session, inbound.phone, inbound.channel, now),
                "direction": "in",
                "kind": "symptom",
                "body": inbound.body,
                "provider_sid": inbound.sid,
                "status": "processing",
                "claimed_until": now + lease,
                "attempts": 1,
                "num_media": inbound.num_media,
                "segments": count_segments(inbound.body),
                "created_at": now,
            }
            message_id = session.scalar(_store_statement(session.get_bind().dialect.name), values)
            if message_id is None:
                existing = session.scalar(select(Message.id).where(Message.provider_sid == inbound.sid))
                session.commit()
                if existing is not None:
                    return existing
                continue  # erased in between (privacy erase, retention): store it afresh
            unset = dict.fromkeys(
                (
                    "clinic_id",
                    "reply_to_id",
                    "checkin_id",
                    "error_code",
                    "level",
                    "rules_version",
                    "model_version",
                    "lang",
                )
            )
            message = _persistent(session, Message(id=message_id, **values, **unset, flags=[]))
            committing = True
            session.commit()
            return message
        except IntegrityError:
            # The family was erased between finding it and storing the text: find it again.
            session.rollback()
        except DBAPIError as error:
            # A pooled connection the server dropped since its last use, found before the
            # commit: nothing was stored and the pool has replaced it, so storing again is
            # safe. A connection lost during the commit may have stored it: no guessing.
            if committing or not error.connection_invalidated:
                raise
            session.rollback()
    raise RuntimeError("could not store inbound message")


# The first write of processing, so it takes the family's row lock (PostgreSQL) or the
# database's write lock (SQLite) before anything is read; it returns the row it locked.
_TOUCH_FAMILY = (
    update(Family)
    .where(Family.id == bindparam("family"))
    .values(last_contact_at=bindparam("contact"))
    .returning(Family)
    .execution_options(synchronize_session=False, populate_existing=True)
)


def _lock_family(session: Session, family_id: int, now: datetime) -> Family:
    """The family, read only once its lock is held: one text of a family is processed at a time.

    So each text sees what the family's previous one wrote (the check-ins it scheduled, the
    alert it raised, a STOP) instead of both scheduling the same check-ins, and the second
    failing on their unique key.
    """
    return session.scalars(_TOUCH_FAMILY, {"family": family_id, "contact": now}).one()


def _persistent(session: Session, message: Message) -> Message:
    """``message``, fully built from the row just inserted, as if the session had loaded it."""
    make_transient_to_detached(message)
    session.add(message)
    return message


@lru_cache(maxsize=2)
def _store_statement(dialect: str) -> Insert:
    """The inbound INSERT (its columns are the values it is run with), built once per database
    kind: composing it costs more than running it."""
    return (
        dialect_insert(dialect, Message.__table__)
        .on_conflict_do_nothing(index_elements=["provider_sid"])
        .returning(Message.__table__.c.id)
    )


def _claim(session: Session, message_id: int, now: datetime, lease: timedelta) -> datetime | None:
    """Claim a stored text whose processing failed or died with its process; one delivery wins.

    A text still ``processing`` past its claim belongs to a run that was killed or lost its
    database mid-request: a retry must triage it, or an emergency text would never raise
    its alert. Returns the new claim's deadline, or None when the text is not ours to take.
    """
    until = now + lease
    result = session.execute(
        update(Message)
        .where(
            Message.id == message_id,
            or_(
                Message.status.in_(("received", "failed")),
                and_(Message.status == "processing", Message.claimed_until < now),
            ),
        )
        .values(status="processing", claimed_until=until, attempts=Message.attempts + 1)
    )
    session.commit()
    return until if result.rowcount == 1 else None


def _previous_outcome(db: Database, message_id: int) -> Outcome:
    """The reply stored for an earlier delivery of the same message (waiting briefly if needed)."""
    deadline = time.monotonic() + DUPLICATE_WAIT_SECONDS
    while True:
        with db.session() as session:
            inbound = session.get(Message, message_id)
            reply = session.scalar(select(Message).where(Message.reply_to_id == message_id))
            if reply is not None or inbound.status == "processed":
                return Outcome(
                    # A reply the sweeper sent by REST is not sent again in TwiML.
                    reply=reply.body if reply is not None and reply.status == "twiml" else None,
                    level=inbound.level,
                    flags=tuple(inbound.flags or ()),
                    duplicate=True,
                )
        if time.monotonic() > deadline:
            return Outcome(reply=None, duplicate=True)
        time.sleep(0.05)


# The reply is written, never read back in this session: a plain INSERT, no ORM object.
_REPLY_INSERT = Message.__table__.insert()
_REPLY_INSERT_RETURNING = _REPLY_INSERT.returning(Message.__table__.c.id)


def _reply_row(inbound: Message, outcome: Outcome, status: str) -> dict[str, Any]:
    return {
        "family_id": inbound.family_id,
        "direction": "out",
        "kind": "reply",
        "body": outcome.reply,
        "reply_to_id": inbound.id,
        "status": status,
        "level": outcome.level,
        "flags": list(outcome.flags),
        "lang": inbound.lang,
        "num_media": 0,
        "segments": reply_segments(outcome.reply or ""),
        "created_at": inbound.created_at,
    }
