"""The two-way inbox: staff text a family they follow, and the answer lands in the same thread.

A staff text goes through the transport like any other (WhatsApp's 24-hour window planned by
``smsbot.messaging.whatsapp``), signed with the clinic's name (``rules/clinic.yaml``: ``staff_message``),
stored with who sent it, and only to a family that consented to this clinic and has not
opted out. Replying to the family of an open alert can acknowledge it in the same step.
The parent's answer is an ordinary inbound text: the clinic reads it in the same thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from smsbot import alerts
from smsbot.alerts import timeline
from smsbot.clinics.enrollment import is_storable_text
from smsbot.clinics.errors import ConflictError, FieldError, InvalidFieldsError
from smsbot.clinics.texts import load_clinic_texts
from smsbot.config import Settings
from smsbot.messaging import Transport, TransportError, whatsapp
from smsbot.messaging.segments import count_segments
from smsbot.models import Alert, Enrollment, Message
from smsbot.vocabulary import MAX_SEGMENTS, STAFF_TEXT_MAX_CHARS

STAFF_KIND = "staff"  # Message.kind of a text staff wrote


@dataclass(frozen=True)
class StaffText:
    """What sending did: the stored message (``status`` failed, with its error, if the provider
    refused it) and the alerts it acknowledged."""

    message: Message
    acknowledged: list[int]
    error: str | None = None


def open_alerts(session: Session, enrollment: Enrollment) -> list[Alert]:
    """The clinic's unacknowledged alerts about this family, oldest first."""
    return list(
        session.scalars(
            select(Alert)
            .where(
                Alert.clinic_id == enrollment.clinic_id,
                Alert.family_id == enrollment.family_id,
                Alert.acknowledged_at.is_(None),
            )
            .order_by(Alert.created_at, Alert.id)
        )
    )


def compose(settings: Settings, enrollment: Enrollment, *, text: str | None, template: str | None) -> str:
    """The signed text, from what staff wrote or a quick reply; InvalidFieldsError if neither fits."""
    texts = load_clinic_texts(settings.rules_path)
    lang = enrollment.family.language
    if template is not None:
        if text is not None:
            raise InvalidFieldsError(
                [FieldError("template", "text_and_template", "send a text or a template")]
            )
        if template not in texts.quick_replies:
            known = ", ".join(sorted(texts.quick_replies))
            raise InvalidFieldsError(
                [FieldError("template", "unknown_template", f"template must be one of {known}")]
            )
        baby = texts.baby(enrollment.baby_name, lang)
        text = texts.quick_reply(template, lang, baby=baby, emergency_number=settings.emergency_number)
    text = text.strip() if isinstance(text, str) else ""
    if not text or len(text) > STAFF_TEXT_MAX_CHARS or not is_storable_text(text):
        raise InvalidFieldsError(
            [FieldError("text", "invalid_text", f"write a text of 1 to {STAFF_TEXT_MAX_CHARS} characters")]
        )
    body = texts.render("staff_message", lang, clinic=enrollment.clinic.name, text=text)
    if count_segments(body) > MAX_SEGMENTS + 1:
        raise InvalidFieldsError(
            [FieldError("text", "too_long", "shorten the text: it would cost too many SMS")]
        )
    return body


def check_reachable(enrollment: Enrollment) -> None:
    """ConflictError unless the family may get a text from this clinic now."""
    family = enrollment.family
    if family.opted_out:
        raise ConflictError("opted_out", "the family texted STOP: call them instead")
    if enrollment.status != "active":
        raise ConflictError("no_consent", "the family has not agreed (YES) to texts from this clinic")


def send_staff_text(
    session: Session,
    settings: Settings,
    transport: Transport,
    enrollment: Enrollment,
    *,
    text: str | None,
    template: str | None = None,
    sender: str,
    acknowledge: bool = False,
    now: datetime,
) -> StaffText:
    """Send a staff text to the family, store it, and (``acknowledge``) acknowledge open alerts.

    Raises InvalidFieldsError (bad text) or ConflictError (opted out, no consent) before
    anything is sent. A provider refusal is stored on the message, not raised: nothing is
    acknowledged then, since the parent did not get it. Commits.
    """
    check_reachable(enrollment)
    body = compose(settings, enrollment, text=text, template=template)
    family, clinic = enrollment.family, enrollment.clinic
    message = Message(
        family_id=family.id,
        clinic_id=clinic.id,
        direction="out",
        kind=STAFF_KIND,
        body=body,
        lang=family.language,
        sent_by=sender,
        segments=count_segments(body),
        created_at=now,
    )
    routes = whatsapp.plan(
        family,
        now,
        template=whatsapp.load_templates(settings.rules_path).get("staff_message"),
        lang=family.language,
        values={"clinic": clinic.name, "text": body, "baby": enrollment.baby_name or ""},
        sms_fallback=clinic.whatsapp_sms_fallback,
    )
    error = None
    try:
        message.provider_sid, _route = whatsapp.send(transport, routes, body)
        message.status = "queued"
    except TransportError as failure:
        message.status, message.error_code, error = "failed", failure.code, str(failure)
    session.add(message)
    session.flush()
    acknowledged: list[int] = []
    for alert in open_alerts(session, enrollment):
        timeline.record(
            session, alert.id, timeline.STAFF_TEXT, now, by=sender, message_id=message.id, sent=error is None
        )
        if acknowledge and error is None:
            acknowledged.append(alert.id)
    session.commit()
    acknowledged = [
        alert_id
        for alert_id in acknowledged
        if alerts.acknowledge(
            session, session.get_one(Alert, alert_id), by=sender, note="Texted the parent.", now=now
        )
    ]
    return StaffText(message=message, acknowledged=acknowledged, error=error)
