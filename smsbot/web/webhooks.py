"""Twilio webhooks: inbound messages (``/twilio/sms``) and delivery status (``/twilio/status``)."""

from __future__ import annotations

import logging
import uuid

from flask import Blueprint, Response, abort, current_app, request
from twilio.twiml.messaging_response import MessagingResponse

from smsbot import conversation, metrics, outbox
from smsbot.alerts import AlertCourier
from smsbot.checkins.schedule import RED_FLAG_LEVELS
from smsbot.db import get_db
from smsbot.messaging.status import STATUS_RANK, record_status
from smsbot.models import utcnow
from smsbot.phones import InvalidPhoneError, mask_phone, parse_address
from smsbot.vocabulary import BODY_LIMITS, MAX_ID
from smsbot.web.inputs import fit_to_limit, whole_number
from smsbot.web.twilio_auth import twilio_signed

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__, url_prefix="/twilio")


@bp.record_once
def _warm_rules(state) -> None:  # type: ignore[no-untyped-def]
    # At app creation (the gunicorn master, with preload_app), not on a parent's first text.
    conversation.prepare(state.app.extensions["smsbot.settings"])


MAX_SID_CHARS = 64  # the column's width; Twilio's SIDs have 34 characters


# C0 controls other than tab and newlines carry no meaning in a text, and PostgreSQL
# refuses NUL outright; lone surrogates (broken UTF-8) cannot be stored either.
_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9, 10, 13))


def clean_text(raw: str) -> str:
    return raw.translate(_CONTROL).encode("utf-8", "replace").decode("utf-8")


def twiml(text: str | None) -> Response:
    response = MessagingResponse()
    if text:
        response.message(text)
    return Response(str(response), mimetype="text/xml")


def _num_media() -> int:
    count = whole_number(request.form.get("NumMedia", "0") or "0", 10)
    if count is None:
        abort(400, "NumMedia must be a number from 0 to 10")
    return count


def _alert_courier() -> AlertCourier:
    """This process's courier, made on first use with the app's transport: it does the
    inbound texts' follow-ups (``smsbot.outbox``) and delivers the alerts they raise."""
    extensions = current_app.extensions
    if "smsbot.alert_courier" not in extensions:
        db, settings = get_db(), extensions["smsbot.settings"]
        courier = AlertCourier(
            db,
            extensions["smsbot.transport"],
            settings,
            follow_ups=lambda: outbox.drain_all(db, settings).paged,
            batch_seconds=outbox.BATCH_SECONDS,
        )
        extensions.setdefault("smsbot.alert_courier", courier)
    return extensions["smsbot.alert_courier"]


@bp.post("/sms")
@twilio_signed
def inbound_sms() -> Response:
    """A parent's SMS or WhatsApp message: store it, triage it, answer in TwiML."""
    settings = current_app.extensions["smsbot.settings"]
    try:
        phone, channel = parse_address(request.form.get("From", ""), settings.default_region)
    except InvalidPhoneError as error:
        abort(400, f"From: {error}")
    body = fit_to_limit(clean_text(request.form.get("Body", "")), BODY_LIMITS[channel])
    sid = clean_text(request.form.get("MessageSid") or request.form.get("SmsMessageSid") or "")[:64]
    sid = sid or f"LOCAL{uuid.uuid4().hex}"
    inbound = conversation.Inbound(sid=sid, phone=phone, channel=channel, body=body, num_media=_num_media())
    outcome = conversation.receive(get_db(), settings, inbound)
    if outcome.erased_replay:
        # A signed replay of a text whose family was erased: it must not bring them back.
        log.info("replayed text of an erased family ignored")
        return twiml(None)
    if outcome.queued:
        # Follow-ups right after the reply: a red flag's (its alert) at once, others batched.
        _alert_courier().wake(urgent=outcome.level in RED_FLAG_LEVELS)
    elif outcome.paged:
        # Page the clinic now rather than at the next scheduler tick; never block the reply.
        _alert_courier().wake()
    metrics.INBOUND.labels(outcome.level or "none").inc()
    if outcome.reply is not None:
        metrics.REPLIES.labels(outcome.level or "none").inc()
    log.info(
        "inbound from %s level=%s duplicate=%s replied=%s",
        mask_phone(phone),
        outcome.level,
        outcome.duplicate,
        outcome.reply is not None,
    )
    return twiml(outcome.reply)


@bp.post("/status")
@twilio_signed
def status_callback() -> tuple[str, int]:
    """Delivery status for one of our outbound messages (out of order is fine)."""
    sid = request.form.get("MessageSid", "")
    status = request.form.get("MessageStatus", "").lower()
    if not sid or status not in STATUS_RANK:
        abort(400, "MessageSid and a known MessageStatus are required")
    if len(sid) > MAX_SID_CHARS or clean_text(sid) != sid:
        abort(400, f"MessageSid must be at most {MAX_SID_CHARS} plain characters")
    raw_code = request.form.get("ErrorCode") or None
    error_code = None if raw_code is None else whole_number(raw_code, MAX_ID)
    if raw_code is not None and error_code is None:
        abort(400, "ErrorCode must be a number")
    with get_db().session() as session:
        record_status(
            session,
            current_app.extensions["smsbot.settings"],
            sid,
            status,
            error_code,
            now=utcnow(),
        )
    return "", 204
