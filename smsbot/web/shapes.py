"""The clinic API's request and response shapes, defined once.

The views build every answer from these models (``Family.of(enrollment)`` …), check each
request's fields and query parameters against them, and ``openapi.py`` generates the OpenAPI
document from them, so a new field is added in one place. What a value must be beyond its
shape (a dialable phone number, a time zone that exists) is ``smsbot.clinics``' validation,
shared with the CSV import and the dashboard; the document says as much of it as JSON
Schema can.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, PlainSerializer, WithJsonSchema
from pydantic.json_schema import JsonSchemaValue, SkipJsonSchema
from pydantic_core import CoreSchema

from smsbot import episodes, models
from smsbot.clinics.consent import consent_state
from smsbot.clinics.enrollment import MAX_BABY_AGE, TEXT_LIMITS, TIMEZONE_MAX_CHARS
from smsbot.models import utcnow
from smsbot.vocabulary import CHANNELS, LANGS, MAX_ID, NOTE_MAX_CHARS, STAFF_TEXT_MAX_CHARS

Channel = Literal[CHANNELS]  # type: ignore[valid-type]
Language = Literal[LANGS]  # type: ignore[valid-type]
EnrollmentStatus = Literal["awaiting_consent", "active", "ended"]
AlertStatus = Literal["open", "acknowledged"]
ConsentState = Literal[
    "requested", "sending", "given", "failed", "not_requested", "blocked_opted_out", "none"
]
AlertReason = Literal[
    "emergency", "urgent", "worse", "undelivered", "unprocessed", "hospital", "loss", "home"
]
FollowupHold = Literal["hospital", "loss"]
EpisodeStatus = Literal["open", "closed"]
CloseReason = Literal["staff", "quiet"]

DEFAULT_LIMIT, MAX_LIMIT = 50, 100  # items per page

# Naive UTC in the database; RFC 3339 with an explicit Z on the wire.
Timestamp = Annotated[
    datetime,
    PlainSerializer(lambda moment: moment.isoformat(timespec="seconds") + "Z", return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
# Something to read, not only spaces: the API strips text, and a blank phone or zone is refused.
NotBlank = r"\S"


class BirthDateWindow:
    """The JSON Schema of a birth date the API accepts: a young baby's, not in the future.

    JSON Schema cannot compare dates, so the window (today back to ``MAX_BABY_AGE``) is
    written as a pattern of the dates in it, made afresh whenever the document is.
    """

    def __get_pydantic_json_schema__(
        self, core: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core)
        today = utcnow().date()
        schema["pattern"] = dates_between(today - MAX_BABY_AGE, today)
        schema["description"] = "A young baby's birth date: not in the future, at most two years ago."
        return schema


def dates_between(first: date, last: date) -> str:
    """A regular expression for the ISO dates from ``first`` to ``last`` (calendar validity
    is the ``date`` format's: this pattern allows day 31 of every month)."""

    def either(values: range) -> str:
        return "(?:" + "|".join(f"{value:02d}" for value in values) + ")"

    whole_month = r"\d{2}"
    days: list[str] = []
    for year in range(first.year, last.year + 1):
        months = range(
            first.month if year == first.year else 1, (last.month if year == last.year else 12) + 1
        )
        for month in months:
            low = first.day if (year, month) == (first.year, first.month) else 1
            high = last.day if (year, month) == (last.year, last.month) else 31
            day = whole_month if (low, high) == (1, 31) else either(range(low, high + 1))
            days.append(f"{year}-{month:02d}-{day}")
    return "^(?:" + "|".join(days) + ")$"


class Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- requests ---------------------------------------------------------------------------------


class FamilyDetails(Shape):
    """The details a clinic keeps of a family it follows, all optional; null clears one.
    Another clinic enrolling the same phone neither sees nor changes them."""

    language: Language | SkipJsonSchema[None] = None
    baby_name: Annotated[str, Field(max_length=TEXT_LIMITS["baby_name"])] | None = None
    baby_birth_date: Annotated[date, BirthDateWindow()] | None = None
    timezone: (
        Annotated[
            str,
            Field(
                max_length=TIMEZONE_MAX_CHARS,
                pattern=NotBlank,
                description="An IANA zone, e.g. America/Chicago.",
            ),
        ]
        | None
    ) = None
    external_ref: (
        Annotated[
            str, Field(max_length=TEXT_LIMITS["external_ref"], description="Your own id for the family.")
        ]
        | None
    ) = None


class FamilyCreate(FamilyDetails):
    """Enrolling a phone already enrolled here updates it (200) and sends no second text.
    A null field is one not given: the family keeps what it has."""

    phone: Annotated[
        str,
        Field(pattern=r"[0-9]", description="Any format; national numbers use the default region."),
    ]
    programme: Annotated[str, Field(description="A check-in programme id from rules/checkins.yaml.")]
    channel: Channel | None = Field(None, json_schema_extra={"default": "sms"})
    language: Language | None = None


class EnrollmentRequest(Shape):
    programme: str


class Acknowledge(Shape):
    note: Annotated[str, Field(max_length=NOTE_MAX_CHARS)] | None = None


class StaffMessageCreate(Shape):
    """A text to the family, signed with the clinic's name: ``text`` or a quick-reply
    ``template`` (rules/clinic.yaml), not both."""

    text: Annotated[str, Field(min_length=1, max_length=STAFF_TEXT_MAX_CHARS, pattern=NotBlank)] | None = None
    template: Annotated[str, Field(description="A quick reply id from rules/clinic.yaml.")] | None = None
    acknowledge: Annotated[
        bool, Field(description="Also acknowledge the family's open alerts (once the text is sent).")
    ] = False


# --- query parameters -------------------------------------------------------------------------


class PageQuery(Shape):
    """Keyset pages, newest first."""

    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: (
        Annotated[
            str,
            Field(
                pattern=rf"^[1-9][0-9]{{0,{len(str(MAX_ID)) - 2}}}$",
                description="A next_cursor value from a previous page.",
            ),
        ]
        | SkipJsonSchema[None]
    ) = None


class FamilyQuery(PageQuery):
    status: EnrollmentStatus | SkipJsonSchema[None] = None


class AlertQuery(PageQuery):
    status: AlertStatus | SkipJsonSchema[None] = None


# --- responses --------------------------------------------------------------------------------


class Family(Shape):
    """A family as this clinic follows it: `id` and the details are this clinic's own;
    another clinic enrolling the same phone neither sees nor changes them."""

    id: int
    phone: Annotated[str, Field(description="E.164")]
    channel: Channel
    language: Language
    timezone: str | None
    baby_name: str | None
    baby_birth_date: date | None
    external_ref: str | None
    programme: str | None
    status: EnrollmentStatus
    consent: Annotated[
        ConsentState,
        Field(
            description="requested: the consent text went out and awaits the family's YES; "
            "sending: Twilio has not answered, or did not answer (consent_error says how); "
            "it is asked what it took before the text is sent again, so the family gets one; "
            "failed: it did not go out or never arrived (consent_error says why); it is "
            "retried by itself unless the failure is permanent, and enrolling again sends it now; "
            "blocked_opted_out: the family had texted STOP, so no consent text was sent; "
            "not_requested: it has not gone out (the family texted START since): enroll again "
            "to send it. Until consent is given the clinic gets no "
            "messages, check-ins or alerts of the family."
        ),
    ]
    consent_error: Annotated[
        str | None,
        Field(description="Why the consent text failed (failed), or why its outcome is unknown (sending)."),
    ]
    opted_out: bool
    followup_hold: Annotated[
        FollowupHold | None,
        Field(
            description="Sensitive news the parent sent: hospital pauses automated messages "
            "until the parent texts that the baby is home or you resume them; loss ends them."
        ),
    ]
    followup_hold_since: Timestamp | None
    enrolled_at: Timestamp
    consented_at: Timestamp | None
    ended_at: Timestamp | None

    @classmethod
    def of(cls, enrollment: models.Enrollment) -> Family:
        """The family as this clinic knows it: its own details, never another clinic's."""
        family = enrollment.family
        return cls(
            id=enrollment.id,
            phone=family.phone,
            channel=family.channel,
            language=enrollment.language,
            timezone=enrollment.timezone,
            baby_name=enrollment.baby_name,
            baby_birth_date=enrollment.baby_birth_date,
            external_ref=enrollment.external_ref,
            programme=enrollment.programme,
            status=enrollment.status,
            consent=consent_state(enrollment),
            consent_error=enrollment.consent_error,
            opted_out=family.opted_out,
            followup_hold=family.followup_hold,
            followup_hold_since=family.followup_hold_since,
            enrolled_at=enrollment.enrolled_at,
            consented_at=enrollment.consented_at,
            ended_at=enrollment.ended_at,
        )


class Message(Shape):
    id: int
    direction: Literal["in", "out"]
    kind: str
    body: Annotated[str | None, Field(description="null once purged by retention")]
    status: str
    level: str | None
    sent_by: Annotated[str | None, Field(description="Who wrote a staff text (kind staff).")] = None
    created_at: Timestamp

    @classmethod
    def of(cls, message: models.Message) -> Message:
        return cls(
            id=message.id,
            direction=message.direction,
            kind=message.kind,
            body=message.body,
            status=message.status,
            level=message.level,
            sent_by=message.sent_by,
            created_at=message.created_at,
        )


class StaffMessageSent(Shape):
    message: Message
    error: Annotated[str | None, Field(description="Why the provider refused it (status failed).")] = None
    acknowledged_alerts: list[int]


class CheckIn(Shape):
    id: int
    programme: str
    step: int
    status: str
    due_at: Timestamp
    sent_at: Timestamp | None
    answered_at: Timestamp | None
    outcome: str | None

    @classmethod
    def of(cls, checkin: models.CheckIn) -> CheckIn:
        return cls(
            id=checkin.id,
            programme=checkin.programme,
            step=checkin.step,
            status=checkin.status,
            due_at=checkin.due_at,
            sent_at=checkin.sent_at,
            answered_at=checkin.answered_at,
            outcome=checkin.outcome,
        )


class Alert(Shape):
    id: int
    family_id: Annotated[int | None, Field(description="null: a walk-in texter never enrolled")]
    level: Annotated[str, Field(description="sensitive: a notice of sensitive news (never paged)")]
    reason: Annotated[
        AlertReason,
        Field(
            description="unprocessed: a text smsbot could not process after retries (read it); "
            "hospital, loss, home: sensitive news the parent sent."
        ),
    ]
    status: AlertStatus
    created_at: Timestamp
    acknowledged_at: Timestamp | None
    acknowledged_by: str | None
    note: str | None

    @classmethod
    def of(cls, alert: models.Alert, enrollment_id: int | None) -> Alert:
        """``enrollment_id``: the clinic's id for the alert's family (None: a walk-in texter)."""
        return cls(
            id=alert.id,
            family_id=enrollment_id,
            level=alert.level,
            reason=alert.reason,
            status="open" if alert.acknowledged_at is None else "acknowledged",
            created_at=alert.created_at,
            acknowledged_at=alert.acknowledged_at,
            acknowledged_by=alert.acknowledged_by,
            note=alert.ack_note,
        )


class Episode(Shape):
    """A family's episode at this clinic: from its first report to its close by staff, or
    after the clinic's quiet days without a text from the family."""

    id: int
    family_id: int
    status: EpisodeStatus
    opened_at: Timestamp
    closed_at: Timestamp | None
    close_reason: Annotated[
        CloseReason | None,
        Field(description="staff: closed by `closed_by`; quiet: no text from the family for the quiet days."),
    ]
    closed_by: str | None
    highest_level: Annotated[str, Field(description="The most severe level the family's texts reached.")]

    @classmethod
    def of(cls, story: episodes.Story) -> Episode:
        episode = story.episode
        return cls(
            id=episode.id,
            family_id=episode.enrollment_id,
            status="open" if episode.closed_at is None else "closed",
            opened_at=episode.opened_at,
            closed_at=episode.closed_at,
            close_reason=episode.close_reason,
            closed_by=episode.closed_by,
            highest_level=story.highest_level,
        )


class RuleFlag(Shape):
    rule_id: str
    reason: Annotated[str, Field(description="Why the rule matters, in the rule file's words.")]


class TriagedText(Shape):
    """A text from the family and how triage read it: the levels over time."""

    message_id: int
    at: Timestamp
    level: str
    flags: list[RuleFlag]


class Answer(Shape):
    checkin_id: int
    at: Timestamp
    outcome: str | None


class TimelineEntry(Shape):
    at: Timestamp
    text: str


class EpisodeDetail(Episode):
    levels: list[TriagedText]
    replies: list[Message]
    staff_messages: list[Message]
    answers: list[Answer]
    alerts: list[Alert]
    timeline: Annotated[list[TimelineEntry], Field(description="The episode in plain words, oldest first.")]

    @classmethod
    def of(cls, story: episodes.Story) -> EpisodeDetail:  # type: ignore[override]
        enrollment_id = story.episode.enrollment_id
        return cls(
            **dict(Episode.of(story)),
            levels=[
                TriagedText(
                    message_id=report.message.id,
                    at=report.at,
                    level=report.level,
                    flags=[RuleFlag(rule_id=flag.rule_id, reason=flag.reason) for flag in report.flags],
                )
                for report in story.reports
            ],
            replies=[Message.of(message) for message in story.replies],
            staff_messages=[Message.of(message) for message in story.staff_messages],
            answers=[
                Answer(
                    checkin_id=checkin.id, at=checkin.answered_at or checkin.due_at, outcome=checkin.outcome
                )
                for checkin in story.answers
            ],
            alerts=[Alert.of(alert, enrollment_id) for alert in story.alerts],
            timeline=[TimelineEntry(at=entry.at, text=entry.text) for entry in story.timeline],
        )


class EpisodeList(Shape):
    data: Annotated[list[Episode], Field(description="Oldest first.")]


class Export(Shape):
    family: Family
    messages: list[Message]
    checkins: list[CheckIn]
    alerts: list[Alert]


class Erased(Shape):
    erased: Annotated[dict[str, int], Field(description="Rows removed, per table.")]


class Page(Shape):
    next_cursor: Annotated[
        str | None,
        Field(description="Pass as `cursor` for the next (older) page; null on the last page."),
    ]


class FamilyPage(Page):
    data: list[Family]


class MessagePage(Page):
    data: list[Message]


class CheckInPage(Page):
    data: list[CheckIn]


class AlertPage(Page):
    data: list[Alert]


class ErrorDetail(Shape):
    code: str
    message: str
    field: str | None


class Error(Shape):
    """The one error shape: `field` names the input at fault, when there is one."""

    error: ErrorDetail


def fields_of(shape: type[BaseModel]) -> tuple[str, ...]:
    """The names a request of this shape may carry."""
    return tuple(shape.model_fields)
