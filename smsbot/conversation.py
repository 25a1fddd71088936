"""The inbound pipeline: store, then keywords → check-in answer → triage → reply and actions.

Plain functions over the models; the webhook and ``smsbot chat`` are thin callers. The
inbound row is committed before any processing, so nothing a parent sent is ever lost,
and a provider retry with the same ``MessageSid`` gets the stored reply, not a second run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Insert, and_, bindparam, func, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from smsbot import alerts, clinics, families, reminders
from smsbot.config import Settings
from smsbot.db import Database, dialect_insert
from smsbot.keywords import Keywords, load_keywords
from smsbot.messaging.segments import count_segments
from smsbot.models import Enrollment, Event, Family, Message, utcnow
from smsbot.programmes import load_programmes
from smsbot.replies import render_reply
from smsbot.triage import Decision, RuleSet, assess, load_rules, severity
from smsbot.triage.engine import engine_for

log = logging.getLogger(__name__)

# How long a duplicate delivery waits for the first one's reply before giving up.
DUPLICATE_WAIT_SECONDS = 5.0
FLOOD_WINDOW = timedelta(minutes=1)  # texts counted for the flood limit
# Longer than any request may run (gunicorn's timeout is 15 s, Twilio's budget too).
ABANDONED_AFTER = timedelta(seconds=30)
CHECKIN_WORSE = "checkin-worse"  # the flag of a text made urgent by a "worse" check-in answer


@dataclass(frozen=True)
class Inbound:
    """One message as a provider hands it to us."""

    sid: str
    phone: str  # E.164
    channel: str = "sms"
    body: str = ""
    num_media: int = 0


@dataclass
class Outcome:
    """What we answer: ``reply`` None means an empty TwiML response (no message)."""

    reply: str | None
    level: str | None = None
    flags: tuple[str, ...] = field(default_factory=tuple)
    duplicate: bool = False
    paged: bool = False  # raised an alert for a clinic: its on-call should hear now


def prepare(settings: Settings) -> None:
    """Load and compile the rule files the pipeline reads, once, before the first text.

    They are cached per process; under gunicorn (``preload_app``) this runs in the master,
    so every forked worker starts warm instead of each thread parsing YAML and building the
    triage engine at once on its first message, while Twilio waits.
    """
    _keywords, ruleset = _rulebook(settings)
    engine_for(ruleset)
    load_programmes(settings.rules_path)


@lru_cache(maxsize=8)
def _rulebook(settings: Settings) -> tuple[Keywords, RuleSet]:
    """The keyword list and triage rules of ``settings``' rules directory.

    Looked up once per settings: finding the directory stats the file system, and this
    runs for every message.
    """
    return load_keywords(settings.rules_path), load_rules(settings.rules_path)


# Replies repeat (one text per level and language, give or take the baby's name), and
# counting walks every character.
_reply_segments = lru_cache(maxsize=1024)(count_segments)


def receive(db: Database, settings: Settings, inbound: Inbound, now: datetime | None = None) -> Outcome:
    """Store ``inbound`` (once per SID), process it once, and return the reply to send.

    Two transactions on one connection, each a single commit: the inbound row, already
    claimed for processing, then everything processing decides plus the reply. Commits
    are the cost that matters under load (each waits for the WAL to reach the disk).
    """
    now = now or utcnow()
    # Bound to one connection for both transactions, rather than back to the pool in
    # between; no autoflush: processing writes once, at the commit, not before each read.
    connection = db.engine.connect()
    session = db.sessionmaker(bind=connection, autoflush=False)
    try:
        message = _store_inbound(session, inbound, now)
        if isinstance(message, int):
            # Seen this MessageSid before: process it only if the earlier run failed.
            if not _claim(session, message, now):
                session.close()
                connection.close()  # not held while waiting for the first delivery's reply
                return _previous_outcome(db, message)
            message = session.get_one(Message, message)
        message_id = message.id
        try:
            # Processing reads the family through the message: no lazy load.
            set_committed_value(message, "family", _lock_family(session, message.family_id, now))
            # Set first, committed only together with the outcome: one UPDATE, not two.
            message.status = "processed"
            outcome = process(session, settings, message, inbound.num_media, now)
            if outcome.reply is not None:
                session.connection().execute(_REPLY_INSERT, _reply_row(message, outcome))
            session.commit()
            return outcome
        except Exception:
            session.rollback()
            log.exception("processing inbound message %s failed", message_id)
            session.execute(update(Message).where(Message.id == message_id).values(status="failed"))
            session.commit()
            return Outcome(reply=_reply_text(settings, "error", "en"))
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
        connection.close()


def _store_inbound(session: Session, inbound: Inbound, now: datetime) -> Message | int:
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
            unset = dict.fromkeys(("clinic_id", "reply_to_id", "checkin_id", "error_code", "level", "lang"))
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


_RECENT_INBOUND = select(func.count(Message.id)).where(
    Message.family_id == bindparam("family"),
    Message.direction == "in",
    Message.created_at > bindparam("since"),
)


def _claim(session: Session, message_id: int, now: datetime) -> bool:
    """Claim a stored message whose processing failed or died with its process; one delivery wins.

    A row still ``processing`` long after it arrived belongs to a worker that was killed
    mid-request: a retry must triage it, or an emergency text would never raise its alert.
    """
    result = session.execute(
        update(Message)
        .where(
            Message.id == message_id,
            or_(
                Message.status.in_(("received", "failed")),
                and_(Message.status == "processing", Message.created_at < now - ABANDONED_AFTER),
            ),
        )
        .values(status="processing")
    )
    session.commit()
    return result.rowcount == 1


def _previous_outcome(db: Database, message_id: int) -> Outcome:
    """The reply stored for an earlier delivery of the same message (waiting briefly if needed)."""
    deadline = time.monotonic() + DUPLICATE_WAIT_SECONDS
    while True:
        with db.session() as session:
            inbound = session.get(Message, message_id)
            reply = session.scalar(select(Message).where(Message.reply_to_id == message_id))
            if reply is not None or inbound.status == "processed":
                return Outcome(
                    reply=reply.body if reply else None,
                    level=inbound.level,
                    flags=tuple(inbound.flags or ()),
                    duplicate=True,
                )
        if time.monotonic() > deadline:
            return Outcome(reply=None, duplicate=True)
        time.sleep(0.05)


# The reply is written, never read back in this session: a plain INSERT, no ORM object.
_REPLY_INSERT = Message.__table__.insert()


def _reply_row(inbound: Message, outcome: Outcome) -> dict[str, Any]:
    return {
        "family_id": inbound.family_id,
        "direction": "out",
        "kind": "reply",
        "body": outcome.reply,
        "reply_to_id": inbound.id,
        "status": "twiml",
        "level": outcome.level,
        "flags": list(outcome.flags),
        "lang": inbound.lang,
        "num_media": 0,
        "segments": _reply_segments(outcome.reply or ""),
        "created_at": inbound.created_at,
    }


def process(session: Session, settings: Settings, message: Message, num_media: int, now: datetime) -> Outcome:
    """Decide the reply and actions for one stored inbound message.

    ``message.family`` is the row ``_lock_family`` locked, which also recorded the contact.
    """
    family = message.family
    text = (message.body or "").strip()
    keywords, ruleset = _rulebook(settings)

    keyword = keywords.match(text)
    if keyword is not None:
        message.kind = "keyword"
        message.lang = keyword.lang
        return _handle_keyword(session, settings, family, keyword.action, keyword.lang, now)

    if not text:
        lang = family.language
        name = "media" if num_media else "empty"
        return Outcome(reply=None if family.opted_out else _reply_text(settings, name, lang), level="info")

    decision = assess(text, baby_age_days=_baby_age_days(family, now), rules=ruleset)
    message.level, message.flags, message.lang = decision.level, list(decision.flags), decision.lang
    if decision.level != "info" or decision.lang != "en":
        family.language = decision.lang
    family.last_level = decision.level

    answered = reminders.answer_open_checkin(
        session, family, text, decision.level, now=now, settings=settings
    )
    if answered is not None:
        message.kind, message.checkin_id = "answer", answered.checkin.id

    level = decision.level
    worse = answered is not None and answered.outcome == "worse"
    if worse and severity(level) < severity("urgent"):
        # "Worse" on a check-in means same-day care even when the words alone look mild.
        level = "urgent"
        decision = Decision(level=level, flags=(*decision.flags, CHECKIN_WORSE), lang=decision.lang)
        message.level, message.flags = level, list(decision.flags)

    paged = False
    if level in ("emergency", "urgent"):
        raised = alerts.raise_alert(
            session,
            settings,
            family,
            level=level,
            reason="worse" if worse else level,
            message=message,
            now=now,
        )
        paged = any(alert.clinic_id is not None for alert in raised)
    if not family.opted_out:
        reminders.schedule_after_decision(session, family, level, now=now, settings=settings)

    if family.opted_out:
        # They said STOP: we still triage and alert their clinic, but send nothing.
        return Outcome(reply=None, level=level, flags=decision.flags, paged=paged)
    if level != "emergency" and _flooding(session, settings, family, now):
        # Stored, triaged and alerted like any other text; only the reply is held back,
        # and never for an emergency.
        return Outcome(reply=None, level=level, flags=decision.flags, paged=paged)
    reply = (
        answered.reply
        if answered is not None and answered.reply and level in ("info", "routine")
        else render_reply(
            decision, emergency_number=settings.emergency_number, rules=ruleset, baby_name=family.baby_name
        )
    )
    return Outcome(reply=reply, level=level, flags=decision.flags, paged=paged)


def _handle_keyword(
    session: Session, settings: Settings, family: Family, action: str, lang: str, now: datetime
) -> Outcome:
    if action != "start" and family.opted_out:
        # Opted out means no message of any kind: not even a second STOP confirmation or a
        # HELP text. (Twilio would refuse to deliver them too.) START is the way back.
        return Outcome(reply=None, level="info")
    consented: Enrollment | None = None
    if action == "stop":
        families.opt_out(session, family, now=now, source="keyword")
    elif action == "start":
        family.opted_out_at = None
        session.add(Event(family_id=family.id, kind="opted_in", detail={}, created_at=now))
        # A YES answers the clinic consent request it replies to (after STOP, none is pending).
        consented = clinics.answer_consent(session, family, now=now, settings=settings)
    family.language = lang
    if settings.twilio_advanced_opt_out:
        return Outcome(reply=None, level="info")  # Twilio has already answered the keyword
    if consented is not None:
        return Outcome(reply=clinics.consent_confirmation(consented, lang, settings), level="info")
    return Outcome(reply=_reply_text(settings, action, lang), level="info")


def _flooding(session: Session, settings: Settings, family: Family, now: datetime) -> bool:
    """More texts from this family in the last minute than anyone writes by hand."""
    recent = session.scalar(_RECENT_INBOUND, {"family": family.id, "since": now - FLOOD_WINDOW})
    return recent > settings.flood_messages_per_minute


def _reply_text(settings: Settings, name: str, lang: str) -> str:
    return _rulebook(settings)[0].reply(name, lang, emergency_number=settings.emergency_number)


def _baby_age_days(family: Family, now: datetime) -> int | None:
    if family.baby_birth_date is None:
        return None
    return max((now.date() - family.baby_birth_date).days, 0)
