"""Alerts reach the clinic: an on-call SMS through the transport and a signed webhook POST,
exactly once, retried with backoff when the clinic's endpoint fails."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from smsbot import alerts, privacy
from smsbot.messaging import TransportError
from smsbot.messaging.retry import ALERT_RETRY
from smsbot.models import Alert, AlertDelivery, CheckIn, Clinic, Enrollment, Family, utcnow
from tests.clinic_fixtures import *  # noqa: F403
from tests.clinic_fixtures import ONCALL, PROGRAMME, WebhookReceiver
from tests.conftest import PARENT, PUBLIC_URL

EMERGENCY_TEXT = "his lips are blue and his arms keep jerking"


@pytest.fixture
def settings(app):  # type: ignore[no-untyped-def]
    return app.extensions["smsbot.settings"]


@pytest.fixture
def webhook(db, world, receiver: WebhookReceiver) -> WebhookReceiver:
    """Riverside posts its alerts to the local receiver."""
    with db.session() as session:
        session.get(Clinic, world.riverside_id).webhook_url = receiver.url
    return receiver


@pytest.fixture
def family_id(db, enroll_consenting_parent) -> int:
    enrolled = enroll_consenting_parent(baby_name="Ana")
    with db.session() as session:
        return session.get(Enrollment, enrolled["id"]).family_id


def raise_alert(db, settings, family_id: int, now, level: str = "emergency") -> list[int]:  # type: ignore[no-untyped-def]
    with db.session() as session:
        family = session.get(Family, family_id)
        created = alerts.raise_alert(
            session, settings, family, level=level, reason=level, message=None, now=now
        )
        return [alert.id for alert in created]


def oncall_texts(outbox) -> list[str]:  # type: ignore[no-untyped-def]
    return [sent.body for sent in outbox.outbox if sent.to == ONCALL]


def delivery(db, channel: str) -> AlertDelivery:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return session.scalar(select(AlertDelivery).where(AlertDelivery.channel == channel))


def verify(receiver: WebhookReceiver, db, world) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Check every POST's HMAC as a clinic would (independently of our code); return payloads."""
    with db.session() as session:
        secret = session.get(Clinic, world.riverside_id).webhook_secret
    payloads = []
    for headers, body in receiver.requests:
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Smsbot-Signature"], expected)
        payload = json.loads(body)
        assert headers["X-Smsbot-Timestamp"] == str(payload["timestamp"])
        payloads.append(payload)
    return payloads


def test_alert_reaches_the_oncall_phone_and_the_signed_webhook_once(
    db, settings, world, family_id, webhook, outbox
):
    now = utcnow()
    [alert_id] = raise_alert(db, settings, family_id, now)
    assert alerts.deliver_pending_alerts(db, outbox, settings, now) == {"sent": 2, "retry": 0, "failed": 0}
    [text] = oncall_texts(outbox)
    assert "emergency" in text and f"{PUBLIC_URL}/dashboard/alerts/{alert_id}" in text
    assert "Ana" not in text and PARENT not in text  # no identifying or clinical detail by SMS
    [payload] = verify(webhook, db, world)
    with db.session() as session:
        enrollment_id = session.scalar(select(Enrollment.id).where(Enrollment.family_id == family_id))
    assert payload["alert_id"] == alert_id and payload["family_id"] == enrollment_id
    assert (payload["clinic"], payload["level"], payload["reason"]) == ("riverside", "emergency", "emergency")
    assert payload["created_at"].endswith("Z")
    assert payload["dashboard_url"] == f"{PUBLIC_URL}/dashboard/alerts/{alert_id}"
    # Nothing is due any more: a second run sends nothing.
    assert alerts.deliver_pending_alerts(db, outbox, settings, now + timedelta(hours=1))["sent"] == 0
    assert len(oncall_texts(outbox)) == 1 and len(webhook.requests) == 1


def test_repeated_red_flags_within_the_window_alert_once(db, settings, family_id):
    now = utcnow()
    first = raise_alert(db, settings, family_id, now)
    assert len(first) == 1
    # A second emergency pages again (the same alert, see test_escalation), an urgent one does not.
    assert raise_alert(db, settings, family_id, now + timedelta(minutes=30)) == first
    assert len(raise_alert(db, settings, family_id, now + timedelta(minutes=30), level="urgent")) == 1
    assert raise_alert(db, settings, family_id, now + timedelta(minutes=40), level="urgent") == []
    assert len(raise_alert(db, settings, family_id, now + alerts.DEDUPE_WINDOW + timedelta(minutes=1))) == 1
    with db.session() as session:
        assert session.scalar(select(func.count(Alert.id))) == 3


def test_failed_webhook_is_retried_with_exponential_backoff(db, settings, family_id, webhook, outbox):
    webhook.statuses = [500, 503]
    start = utcnow()
    raise_alert(db, settings, family_id, start)
    assert alerts.deliver_pending_alerts(db, outbox, settings, start) == {"sent": 1, "retry": 1, "failed": 0}
    failed = delivery(db, "webhook")
    assert (failed.attempts, failed.last_error) == (1, "webhook answered HTTP 500")
    assert failed.next_attempt_at == start + ALERT_RETRY.base
    assert alerts.deliver_pending_alerts(db, outbox, settings, start + timedelta(seconds=10))["retry"] == 0
    second = start + ALERT_RETRY.base
    assert alerts.deliver_pending_alerts(db, outbox, settings, second)["retry"] == 1
    assert delivery(db, "webhook").next_attempt_at == second + 2 * ALERT_RETRY.base
    third = second + 2 * ALERT_RETRY.base
    assert alerts.deliver_pending_alerts(db, outbox, settings, third)["sent"] == 1
    assert (delivery(db, "webhook").status, delivery(db, "webhook").attempts) == ("sent", 3)
    assert len(webhook.requests) == 3 and len(oncall_texts(outbox)) == 1


def test_unreachable_webhook_is_given_up_after_max_attempts(db, settings, world, family_id, outbox):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with db.session() as session:
        session.get(Clinic, world.riverside_id).webhook_url = f"http://127.0.0.1:{port}/hook"
    now = utcnow()
    raise_alert(db, settings, family_id, now)
    for _ in range(alerts.MAX_ATTEMPTS):
        alerts.deliver_pending_alerts(db, outbox, settings, now)
        now += ALERT_RETRY.cap
    gave_up = delivery(db, "webhook")
    assert (gave_up.status, gave_up.attempts) == ("failed", alerts.MAX_ATTEMPTS)
    assert gave_up.last_error.startswith("webhook unreachable")


class RefusingTransport:
    """A transport whose provider refuses the on-call number for good (e.g. Twilio 21211)."""

    def send(self, to: str, body: str, **opts: Any) -> str:
        raise TransportError("invalid number", code=21211, permanent=True)


def test_permanent_sms_failure_is_not_retried(db, settings, family_id):
    raise_alert(db, settings, family_id, utcnow())
    assert alerts.deliver_pending_alerts(db, RefusingTransport(), settings)["failed"] == 1
    assert (delivery(db, "sms").status, delivery(db, "sms").attempts) == ("failed", 1)


def test_immediate_delivery_runs_without_blocking_the_caller(db, settings, family_id, outbox):
    raise_alert(db, settings, family_id, utcnow())
    courier = alerts.AlertCourier(db, outbox, settings)
    courier.wake()
    courier.stop()
    assert len(oncall_texts(outbox)) == 1


def test_walk_in_texter_alerts_go_to_the_default_clinic(db, settings, world):
    with db.session() as session:
        walk_in = Family(phone="+15550100077", channel="sms")
        session.add(walk_in)
        session.flush()
        [alert] = alerts.raise_alert(
            session,
            replace(settings, default_clinic="riverside"),
            walk_in,
            level="urgent",
            reason="urgent",
            message=None,
            now=utcnow(),
        )
        assert alert.clinic_id == world.riverside_id
        assert session.scalar(select(func.count(AlertDelivery.id))) == 1  # on-call SMS


def add_checkin(db, family_id: int, step: int, status: str) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    with db.session() as session:
        session.add(
            CheckIn(
                family_id=family_id,
                programme=PROGRAMME,
                step=step,
                status=status,
                due_at=now + timedelta(days=step),
                sent_at=now + timedelta(days=step),
                dedupe_key=f"test-{step}",
            )
        )


def undelivered_alerts(db, settings, family_id: int) -> list[Alert]:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return alerts.alert_undelivered(session, settings, session.get(Family, family_id), utcnow())


def test_two_undelivered_checkins_in_a_row_alert_the_clinic_once(db, settings, family_id):
    add_checkin(db, family_id, 1, "answered")
    add_checkin(db, family_id, 2, "undelivered")
    assert undelivered_alerts(db, settings, family_id) == []
    add_checkin(db, family_id, 3, "failed")
    [alert] = undelivered_alerts(db, settings, family_id)
    assert (alert.reason, alert.level) == ("undelivered", alerts.UNDELIVERED_LEVEL)
    add_checkin(db, family_id, 4, "undelivered")
    assert undelivered_alerts(db, settings, family_id) == []  # same streak: no second alert


def test_emergency_text_from_an_enrolled_family_alerts_once_even_when_twilio_retries(
    db, settings, world, enroll_parent, text_bot, webhook, outbox
):
    enrolled = enroll_parent(baby_name="Ana")
    text_bot("YES")
    with db.session() as session:
        assert session.get(Enrollment, enrolled["id"]).status == "active"
    sid = "SM" + "7" * 32
    first = text_bot(EMERGENCY_TEXT, sid=sid)
    alerts.deliver_pending_alerts(db, outbox, settings)
    retry = text_bot(EMERGENCY_TEXT, sid=sid)  # Twilio retries the same MessageSid
    alerts.deliver_pending_alerts(db, outbox, settings)
    assert first.get_data() == retry.get_data()
    with db.session() as session:
        assert session.scalar(select(func.count(Alert.id))) == 1
    assert len(oncall_texts(outbox)) == 1
    [payload] = verify(webhook, db, world)
    assert (payload["family_id"], payload["level"]) == (enrolled["id"], "emergency")


def test_a_family_erased_during_delivery_is_skipped_and_the_batch_goes_on(
    db, settings, family_id, webhook, outbox, enroll_consenting_parent
):
    other = enroll_consenting_parent("+15550100002")
    with db.session() as session:
        other_family_id = session.get(Enrollment, other["id"]).family_id
    now = utcnow()
    raise_alert(db, settings, family_id, now)
    raise_alert(db, settings, other_family_id, now)

    class ErasingTransport(type(outbox)):
        """The first family is erased while its on-call text is on its way, which then fails."""

        erased = False

        def send(self, to: str, body: str, **opts: Any) -> str:
            if not self.erased:
                self.erased = True
                with db.session() as session:
                    privacy.erase_family(session, session.get_one(Family, family_id), now=now, by="test")
                raise TransportError("timed out")
            return super().send(to, body, **opts)

    counts = alerts.deliver_pending_alerts(db, ErasingTransport(), settings, now)
    assert counts == {"sent": 2, "retry": 0, "failed": 0}  # the second family's text and webhook
    with db.session() as session:
        left = session.scalars(select(AlertDelivery.status)).all()
        assert session.get(Family, family_id) is None
    assert left == ["sent", "sent"]
