"""Consent texts that fail for a temporary reason are retried like check-ins, and the API
shows the real state: ``failed``, with the reason."""

from __future__ import annotations

from datetime import timedelta

from smsbot import clinics
from smsbot.messaging import TransportError
from smsbot.messaging.console import MemoryTransport
from smsbot.models import Enrollment, utcnow
from tests.clinic_fixtures import *  # noqa: F403
from tests.clinic_fixtures import PROGRAMME


class FlakyProvider(MemoryTransport):
    """Refuses the next ``failures`` sends with ``error``, then takes them."""

    def __init__(self, error: TransportError, failures: int = 1) -> None:
        super().__init__()
        self.error, self.failures = error, failures

    def send(self, to: str, body: str, **opts: object) -> str:
        if self.failures:
            self.failures -= 1
            raise self.error
        return super().send(to, body, **opts)


def enroll(api):  # type: ignore[no-untyped-def]
    response = api("POST", "/families", json={"phone": "+15550100001", "programme": PROGRAMME})
    assert response.status_code == 201
    return response.get_json()


def test_a_temporary_failure_shows_as_failed_and_is_retried(app, api, db):
    # A 429: Twilio refused it, so it surely did not go out (a 5xx might have: see test_consent_once).
    provider = FlakyProvider(TransportError("Twilio unavailable (HTTP 429)", status=429))
    app.extensions["smsbot.transport"] = provider
    family = enroll(api)
    assert (family["consent"], family["consent_error"]) == ("failed", "Twilio unavailable (HTTP 429)")
    settings = app.extensions["smsbot.settings"]
    with db.session() as session:
        retry_at = session.get(Enrollment, family["id"]).consent_retry_at
    assert retry_at is not None
    assert clinics.retry_consents(db, provider, settings, retry_at - timedelta(seconds=1)) == 0
    assert clinics.retry_consents(db, provider, settings, retry_at) == 1
    assert len(provider.outbox) == 1
    again = api("GET", f"/families/{family['id']}").get_json()
    assert (again["consent"], again["consent_error"]) == ("requested", None)
    assert clinics.retry_consents(db, provider, settings, retry_at + timedelta(days=1)) == 0


def test_a_permanent_failure_is_not_retried(app, api, db):
    provider = FlakyProvider(TransportError("Twilio 21211: invalid 'To' number", code=21211, permanent=True))
    app.extensions["smsbot.transport"] = provider
    family = enroll(api)
    assert family["consent"] == "failed" and "21211" in family["consent_error"]
    with db.session() as session:
        assert session.get(Enrollment, family["id"]).consent_retry_at is None


def test_retries_stop_after_the_check_in_limit(app, api, db):
    provider = FlakyProvider(TransportError("network error"), failures=99)
    app.extensions["smsbot.transport"] = provider
    family = enroll(api)
    settings = app.extensions["smsbot.settings"]
    later = utcnow() + timedelta(days=1)
    while clinics.retry_consents(db, provider, settings, later):
        later += timedelta(days=1)
    with db.session() as session:
        enrollment = session.get(Enrollment, family["id"])
        assert (enrollment.consent_attempts, enrollment.consent_retry_at) == (5, None)
    assert api("GET", f"/families/{family['id']}").get_json()["consent"] == "failed"


def test_a_consent_text_reported_undelivered_shows_as_failed_and_is_retried(
    app, api, db, outbox, post_signed
):
    family = enroll(api)
    assert family["consent"] == "requested"
    form = {"MessageSid": outbox.outbox[0].sid, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    assert post_signed("/twilio/status", form).status_code == 204
    shown = api("GET", f"/families/{family['id']}").get_json()
    assert shown["consent"] == "failed" and "30003" in shown["consent_error"]
    with db.session() as session:
        retry_at = session.get(Enrollment, family["id"]).consent_retry_at
    assert clinics.retry_consents(db, outbox, app.extensions["smsbot.settings"], retry_at) == 1
    assert len(outbox.outbox) == 2
    assert api("GET", f"/families/{family['id']}").get_json()["consent"] == "requested"
