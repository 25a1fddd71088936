"""TwilioTransport through the real twilio client against the local fake Twilio API."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fake_twilio import FakeTwilio

from smsbot.config import Settings
from smsbot.messaging import TransportError
from smsbot.messaging.console import ConsoleTransport
from smsbot.messaging.factory import make_transport
from smsbot.messaging.twilio import TwilioTransport, classify

SENDER = "+15550009999"
SERVICE = "MG" + "0" * 32
PARENT = "+15550100001"
CALLBACK = "https://bot.example.org/twilio/status"


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def make(fake_twilio: FakeTwilio) -> Iterator[Callable[..., TwilioTransport]]:
    """Builds transports pointed at the fake and closes them after the test."""
    made: list[TwilioTransport] = []

    def build(sender: str = SENDER, **kwargs: Any) -> TwilioTransport:
        kwargs.setdefault("api_url", fake_twilio.url)
        transport = TwilioTransport(fake_twilio.account_sid, fake_twilio.auth_token, sender, **kwargs)
        made.append(transport)
        return transport

    yield build
    for transport in made:
        transport.close()


def test_it_sends_the_fields_twilio_expects(fake_twilio, make):
    sid = make(status_callback=CALLBACK).send(PARENT, "How is Ana today?", validity_period=3600)

    [received] = fake_twilio.requests
    assert received.form == {
        "To": PARENT,
        "From": SENDER,
        "Body": "How is Ana today?",
        "StatusCallback": CALLBACK,
        "ValidityPeriod": "3600",
    }
    assert sid == received.sid
    assert sid.startswith("SM") and len(sid) == 34


def test_it_leaves_out_optional_fields_when_not_given(fake_twilio, make):
    make().send(PARENT, "Hello")

    assert fake_twilio.requests[0].form == {"To": PARENT, "From": SENDER, "Body": "Hello"}


def test_it_sends_through_a_messaging_service(fake_twilio, make):
    make(SERVICE).send(PARENT, "Hello")

    [received] = fake_twilio.requests
    assert received.form == {"To": PARENT, "MessagingServiceSid": SERVICE, "Body": "Hello"}
    assert received.resource["status"] == "accepted"


def test_it_addresses_whatsapp_from_the_whatsapp_sender(fake_twilio, make):
    make().send(f"whatsapp:{PARENT}", "Hola")

    assert fake_twilio.sent_to(f"whatsapp:{PARENT}")[0].form["From"] == f"whatsapp:{SENDER}"


@pytest.mark.parametrize(
    ("code", "permanent", "opted_out", "text"),
    [
        (21211, True, False, "Twilio 21211: invalid 'To' number (HTTP 400)"),
        (21610, True, True, "Twilio 21610: recipient replied STOP (HTTP 400)"),
        (21614, True, False, "Twilio 21614: 'To' is not a mobile number (HTTP 400)"),
    ],
)
def test_it_raises_a_typed_error_for_twilio_refusals(fake_twilio, make, code, permanent, opted_out, text):
    fake_twilio.fail_number(PARENT, code=code)

    with pytest.raises(TransportError) as caught:
        make().send(PARENT, "Hello")

    error = caught.value
    assert (error.code, error.status, error.permanent, error.opted_out) == (code, 400, permanent, opted_out)
    assert str(error) == text
    assert PARENT not in str(error)  # the message is logged: no phone numbers
    assert fake_twilio.count() == 0


def test_the_fake_rejects_a_number_that_is_not_e164_like_twilio(make):
    with pytest.raises(TransportError) as caught:
        make().send("555-0100", "Hello")

    assert (caught.value.code, caught.value.permanent) == (21211, True)


@pytest.mark.parametrize(("status", "code"), [(429, 20429), (500, 20500), (503, 20503)])
def test_overload_and_server_errors_are_transient(fake_twilio, make, status, code):
    fake_twilio.fail_next(1, status=status)
    transport = make()

    with pytest.raises(TransportError) as caught:
        transport.send(PARENT, "Hello")

    assert (caught.value.code, caught.value.status, caught.value.permanent) == (code, status, False)
    assert transport.send(PARENT, "Hello")  # the next attempt goes through
    assert fake_twilio.attempts == 2 and fake_twilio.count() == 1


def test_a_refused_connection_is_transient():
    with FakeTwilio() as fake:
        url, sid, token = fake.url, fake.account_sid, fake.auth_token
    transport = TwilioTransport(sid, token, SENDER, api_url=url)

    with pytest.raises(TransportError) as caught:
        transport.send(PARENT, "Hello")
    transport.close()

    error = caught.value
    assert (error.code, error.status, error.permanent) == (None, None, False)
    assert str(error) == "Twilio: network error (ConnectionError)"


def test_the_timeout_is_passed_to_every_request(fake_twilio, make):
    fake_twilio.delay = 2.0

    with pytest.raises(TransportError) as caught:
        make(timeout=0.2).send(PARENT, "Hello")

    assert str(caught.value) == "Twilio: network error (ReadTimeout)"
    assert caught.value.permanent is False


def test_wrong_credentials_name_the_settings_to_fix(fake_twilio):
    transport = TwilioTransport(fake_twilio.account_sid, "wrong-token", SENDER, api_url=fake_twilio.url)

    with pytest.raises(TransportError) as caught:
        transport.send(PARENT, "Hello")
    transport.close()

    assert caught.value.code == 20003 and caught.value.status == 401
    assert "TWILIO_AUTH_TOKEN" in str(caught.value)
    assert fake_twilio.count() == 0


def test_the_list_endpoint_answers_the_real_client(fake_twilio, make):
    transport = make()
    sids = [transport.send(PARENT, f"Check-in {n}") for n in range(3)]
    transport.send("+15550100002", "Someone else")

    listed = transport.client.messages.list(to=PARENT, page_size=2)

    assert [m.sid for m in listed] == sids[::-1]  # newest first, across two pages


def test_threads_share_one_transport(fake_twilio, make):
    transport = make()
    errors: list[Exception] = []

    def send_some(worker: int) -> None:
        try:
            for n in range(20):
                transport.send(f"+1555020{worker:02d}{n:02d}", "Hello")
        except Exception as exc:  # surfaced below: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=send_some, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert fake_twilio.count() == 80
    assert len({m.sid for m in fake_twilio.requests}) == 80


@pytest.mark.parametrize(
    ("code", "status", "permanent", "opted_out"),
    [
        (21610, 400, True, True),
        (30005, None, True, False),
        (30003, None, False, False),
        (20429, 429, False, False),
        (None, 502, False, False),
        (None, None, False, False),
        (21999, 400, True, False),
    ],
)
def test_classify_maps_codes_then_statuses(code, status, permanent, opted_out):
    kind = classify(code, status)

    assert (kind.permanent, kind.opted_out) == (permanent, opted_out)


def test_make_transport_defaults_to_the_console():
    assert isinstance(make_transport(Settings()), ConsoleTransport)


def test_make_transport_builds_twilio_with_our_status_webhook():
    settings = Settings(
        transport="twilio",
        twilio_account_sid="AC" + "1" * 32,
        twilio_auth_token="token",
        sender=SENDER,
        twilio_api_url="http://127.0.0.1:9",
        public_url="https://bot.example.org/",
    )

    transport = make_transport(settings)

    assert isinstance(transport, TwilioTransport)
    assert transport.status_callback == CALLBACK
    assert transport.api_url == "http://127.0.0.1:9"
    assert transport.sender == SENDER


def test_a_seeded_failure_rate_fails_some_sends_transiently(fake_twilio, make):
    fake_twilio.set_failure_rate(0.5, statuses=(429, 500), seed=7)
    transport = make()
    failures: list[TransportError] = []

    for n in range(40):
        try:
            transport.send(f"+155502000{n:02d}", "Hello")
        except TransportError as error:
            failures.append(error)

    assert 5 < len(failures) < 35
    assert {e.status for e in failures} == {429, 500}
    assert not any(e.permanent for e in failures)
    assert fake_twilio.count() + len(failures) == fake_twilio.attempts == 40


def test_the_fake_stops_cleanly_under_an_idle_keep_alive_connection():
    threads_before = threading.active_count()
    with FakeTwilio() as fake:
        transport = TwilioTransport(fake.account_sid, fake.auth_token, SENDER, api_url=fake.url)
        transport.send(PARENT, "Hello")  # leaves the connection open in the client's pool

    transport.close()
    assert threading.active_count() == threads_before
