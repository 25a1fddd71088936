"""SQLAlchemy 2 models: the one source of truth for families, messages and check-ins.

Times are stored as naive UTC (``utcnow()``) so SQLite and PostgreSQL compare them the same.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """Naive UTC now: the only kind of datetime the database holds."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Clinic(Base):
    """A clinic enrolling families; every staff, token and alert query is scoped by it."""

    __tablename__ = "clinics"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="America/New_York")
    quiet_hours_start: Mapped[str | None] = mapped_column(String(5))  # None: deployment default
    quiet_hours_end: Mapped[str | None] = mapped_column(String(5))
    oncall_phone: Mapped[str | None] = mapped_column(String(20))
    webhook_url: Mapped[str | None] = mapped_column(String(500))
    webhook_secret: Mapped[str | None] = mapped_column(String(128))
    # Escalation (``smsbot.alerts.escalation``): minutes an alert waits for an acknowledgement
    # before the next contact of the chain is paged; the urgent clock runs in clinic hours only.
    emergency_delay_minutes: Mapped[int] = mapped_column(Integer, default=10, server_default="10")
    urgent_delay_minutes: Mapped[int] = mapped_column(Integer, default=60, server_default="60")
    clinic_hours_start: Mapped[str | None] = mapped_column(String(5))  # None: deployment default
    clinic_hours_end: Mapped[str | None] = mapped_column(String(5))
    # WhatsApp families outside the 24-hour window with no approved template: send by SMS.
    whatsapp_sms_fallback: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # An episode with no text from the family for this many days is closed (``smsbot.episodes``).
    episode_quiet_days: Mapped[int] = mapped_column(Integer, default=14, server_default="14")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Staff(Base):
    """A dashboard account; its signed session cookies hold ``session_generation``."""

    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    # Raised by sign-out, a password change and disabling: cookies of an older one are void.
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime)
    # nurse | admin (manages staff, the escalation chain and its delays)
    role: Mapped[str] = mapped_column(String(10), default="nurse", server_default="nurse")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    clinic: Mapped[Clinic] = relationship()

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class EscalationContact(Base):
    """A backup paged, in ``position`` order, after the on-call phone when nobody acknowledges."""

    __tablename__ = "escalation_contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(20))  # E.164
    # Minutes to wait for an acknowledgement before paging this contact; None: the level's delay.
    delay_minutes: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ApiToken(Base):
    """A clinic API token; only its SHA-256 is stored, the token is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)

    clinic: Mapped[Clinic] = relationship()


class Family(Base):
    """A contact who texts us: one per phone number and channel, shared by clinics.

    ``language``, ``timezone``, ``baby_name`` and ``baby_birth_date`` are what texts to the
    family use: the details recorded by its primary clinic (``clinics.sync_family_details``),
    and the language of its own latest text. Clinics read their own enrollment's details.
    """

    __tablename__ = "families"
    __table_args__ = (UniqueConstraint("phone", "channel", name="uq_family_phone_channel"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(20))  # E.164
    channel: Mapped[str] = mapped_column(String(10), default="sms")  # sms | whatsapp
    language: Mapped[str] = mapped_column(String(2), default="en")
    timezone: Mapped[str | None] = mapped_column(String(64))  # None: deployment default
    baby_name: Mapped[str | None] = mapped_column(String(100))
    baby_birth_date: Mapped[date | None] = mapped_column(Date)
    opted_out_at: Mapped[datetime | None] = mapped_column(DateTime)
    undeliverable_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_contact_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_level: Mapped[str | None] = mapped_column(String(10))
    # Sensitive news the parent sent (``smsbot.conversation.news``): "hospital" pauses automated messages
    # until the baby is home, "loss" ends them; None: nothing held.
    followup_hold: Mapped[str | None] = mapped_column(String(10))
    followup_hold_since: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    @property
    def address(self) -> str:
        """The address a transport sends to: ``+1555…`` or ``whatsapp:+1555…``."""
        return f"whatsapp:{self.phone}" if self.channel == "whatsapp" else self.phone

    @property
    def opted_out(self) -> bool:
        return self.opted_out_at is not None


class Enrollment(Base):
    """A clinic's record of a family it follows; the same phone may be enrolled at several clinics.

    The details (baby's name and birth date, language, time zone, external ref) are this
    clinic's own: another clinic enrolling the same phone neither sees nor changes them.
    ``status`` is the current enrollment; ``windows`` every stretch of time the clinic
    followed the family with its consent (what the clinic may read of a shared family).
    """

    __tablename__ = "enrollments"
    __table_args__ = (UniqueConstraint("clinic_id", "family_id", name="uq_enrollment_clinic_family"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("families.id", ondelete="CASCADE"), index=True)
    programme: Mapped[str | None] = mapped_column(String(64))
    # awaiting_consent → active → ended (unenrolled by the clinic, or STOP)
    status: Mapped[str] = mapped_column(String(20), default="awaiting_consent")
    external_ref: Mapped[str | None] = mapped_column(String(100))
    language: Mapped[str] = mapped_column(String(2), default="en", server_default="en")
    timezone: Mapped[str | None] = mapped_column(String(64))  # None: the clinic's
    baby_name: Mapped[str | None] = mapped_column(String(100))
    baby_birth_date: Mapped[date | None] = mapped_column(Date)
    enrolled_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # When the consent text went out; None: not sent (the family had opted out, or it failed).
    consent_requested_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Sends of the consent text so far; why the last one failed; when it is tried again
    # (None: no retry due, it went out or failed for good).
    consent_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    consent_error: Mapped[str | None] = mapped_column(String(255))
    consent_retry_at: Mapped[datetime | None] = mapped_column(DateTime)
    consented_at: Mapped[datetime | None] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    ended_reason: Mapped[str | None] = mapped_column(String(20))  # unenrolled | opted_out

    clinic: Mapped[Clinic] = relationship()
    family: Mapped[Family] = relationship()


class EnrollmentWindow(Base):
    """A stretch of time a clinic followed a family with its consent: from its YES to the end.

    A clinic that unenrolls and later re-enrolls a family gets a new window at the next
    YES, so it never sees what the family said in between (perhaps to another clinic).
    """

    __tablename__ = "enrollment_windows"

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)


class Message(Base):
    """Every SMS in or out. Inbound rows are stored before we reply (nothing lost)."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_family_created", "family_id", "created_at"),
        # The sweeper's look for inbound texts left unprocessed: few rows are in these statuses.
        Index("ix_messages_status_claimed", "status", "claimed_until"),
        Index("ux_messages_family_answered_seq", "family_id", "answered_seq", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("families.id", ondelete="CASCADE"))
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinics.id", ondelete="SET NULL"))
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    # reply | checkin | consent | keyword | alert | staff (outbound purpose); symptom | answer | keyword (in)
    kind: Mapped[str] = mapped_column(String(16), default="reply")
    body: Mapped[str | None] = mapped_column(Text)  # None once purged by retention
    provider_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    # Indexed: a retried webhook looks up the reply stored for the first delivery, and deleting
    # messages (erase, retention) must find the replies pointing at them.
    reply_to_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), index=True
    )
    checkin_id: Mapped[int | None] = mapped_column(ForeignKey("checkins.id", ondelete="SET NULL"))
    # in: processing → processed | failed (retried by a provider retry or the sweeper);
    # out: twiml, sending (REST), queued, sent, delivered, undelivered, failed
    status: Mapped[str] = mapped_column(String(20), default="received")
    # Inbound only: until when the current processing run owns the text (past it, the sweeper
    # takes it over), and how many runs have started. None: never to be swept.
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[int | None] = mapped_column(Integer)
    level: Mapped[str | None] = mapped_column(String(10))
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Which rule files and which classifier decided ``level`` (an inbound text's triage).
    rules_version: Mapped[str | None] = mapped_column(String(32))
    model_version: Mapped[str | None] = mapped_column(String(32))
    # A text staff wrote (kind "staff"): who sent it (a staff email, or "api:<token name>").
    sent_by: Mapped[str | None] = mapped_column(String(254))
    lang: Mapped[str | None] = mapped_column(String(2))
    num_media: Mapped[int] = mapped_column(Integer, default=0)
    # An inbound text answered at once (``conversation.inbound``): the family's count of those,
    # unique per family, so two texts of one family answered from the same read cannot both
    # be stored; the later one takes the full run, which sees the first (the flood limit).
    answered_seq: Mapped[int | None] = mapped_column(Integer)
    segments: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)

    family: Mapped[Family] = relationship()


class CheckIn(Base):
    """A scheduled check-in: the row, not the scheduler, is the source of truth."""

    __tablename__ = "checkins"
    __table_args__ = (Index("ix_checkins_status_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("families.id", ondelete="CASCADE"), index=True)
    enrollment_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrollments.id", ondelete="CASCADE"), index=True
    )
    programme: Mapped[str] = mapped_column(String(64))
    step: Mapped[int] = mapped_column(Integer)
    # pending → sending → sent → answered | unanswered | undelivered; or cancelled | failed | missed;
    # ended: the gentle last message went out in its place (three unanswered in a row)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    due_at: Mapped[datetime] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(255))
    provider_sid: Mapped[str | None] = mapped_column(String(64))
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime)
    outcome: Mapped[str | None] = mapped_column(String(16))  # better | same | worse | text
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    family: Mapped[Family] = relationship()
    enrollment: Mapped[Enrollment | None] = relationship()


class OutboxEntry(Base):
    """Follow-up work an inbound text set off, written in the same transaction as the text.

    The webhook answers from what it read; what the reply does not depend on (the family's
    language and level, alerts, follow-up check-ins) is done from here right after commit.
    A row is claimed by deleting it in the transaction that does its work
    (``smsbot.outbox``), so each follow-up happens once, even after a crash.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    # A red flag: handed to this process's courier at once, and drained first.
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[datetime] = mapped_column(DateTime)  # later after a failed attempt
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Alert(Base):
    """A red flag a clinic must see: one open alert per family, level and time window."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinics.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("families.id", ondelete="CASCADE"), index=True)
    level: Mapped[str] = mapped_column(String(10))
    # emergency | urgent | worse | undelivered | unprocessed; and, at level "sensitive" and never
    # paged, sensitive news: hospital | loss | home (``smsbot.conversation.news``)
    reason: Mapped[str] = mapped_column(String(20))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(254))
    ack_note: Mapped[str | None] = mapped_column(Text)
    # Escalation: the chain step paged last (0: the on-call phone) and when the next is due
    # unless someone acknowledges first (None: not escalating).
    escalation_step: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_page_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)

    family: Mapped[Family] = relationship()
    clinic: Mapped[Clinic | None] = relationship()
    message: Mapped[Message | None] = relationship()


class AlertDelivery(Base):
    """One way an alert reaches a clinic (on-call SMS or webhook), retried with backoff."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (Index("ix_alert_deliveries_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(10))  # sms | webhook
    step: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # escalation step paged
    target: Mapped[str | None] = mapped_column(String(20))  # a backup's phone; None: the on-call phone
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ErasedSid(Base):
    """A one-way hash of the MessageSid of each text an erased family sent: a signed replay
    of that webhook is then recognised and ignored, instead of bringing the family back."""

    __tablename__ = "erased_sids"

    sid_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(DateTime)


class AlertEvent(Base):
    """The alert's timeline: raised, paged, delivered, failed, new text, acknowledged."""

    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Event(Base):
    """An audit trail of things that happened (opt-out, alert raised, programme ended)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    family_id: Mapped[int | None] = mapped_column(ForeignKey("families.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Episode(Base):
    """A family's episode at one clinic: from its first report to its close.

    Closed by staff (``closed_by`` says who) or after the clinic's ``episode_quiet_days``
    without a text from the family (``close_reason`` "quiet"). What happened in it (levels,
    flags, replies, check-in answers, alerts) is read from the other tables over its span.
    """

    __tablename__ = "episodes"
    __table_args__ = (
        # Two readers bringing the same family's episodes up to date at once open it once.
        UniqueConstraint("enrollment_id", "first_message_id", name="uq_episode_first_report"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id", ondelete="CASCADE"), index=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("families.id", ondelete="CASCADE"), index=True)
    first_message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    opened_at: Mapped[datetime] = mapped_column(DateTime)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)
    close_reason: Mapped[str | None] = mapped_column(String(10))  # staff | quiet
    closed_by: Mapped[str | None] = mapped_column(String(254))  # staff:<email> | api:<token name>

    enrollment: Mapped[Enrollment] = relationship()
    family: Mapped[Family] = relationship()


class AuditEntry(Base):
    """One access to a family's data, or a sign-in: who, what, when (``smsbot.audit``).

    Append-only for the application: only the audit retention purge and a family's erasure
    delete rows, and nothing updates them (an ORM guard refuses it).
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_clinic_family_at", "clinic_id", "family_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinics.id", ondelete="CASCADE"))
    family_id: Mapped[int | None] = mapped_column(ForeignKey("families.id", ondelete="CASCADE"))
    # staff:<email> | api:<token name> | operator:<name>; a failed sign-in: the email typed
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(20))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


__all__ = [
    "Alert",
    "AlertDelivery",
    "AlertEvent",
    "ApiToken",
    "AuditEntry",
    "Base",
    "CheckIn",
    "Clinic",
    "Enrollment",
    "EnrollmentWindow",
    "Episode",
    "ErasedSid",
    "EscalationContact",
    "Event",
    "Family",
    "Message",
    "Staff",
    "utcnow",
]
