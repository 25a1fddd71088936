"""Fixtures for tests that send through the real Twilio client to the local fake Twilio API.

Import into a test module with ``from tests.twilio_fixtures import *``; mark a module
``pytest.mark.usefixtures("app_on_fake_twilio")`` to send every text of its app there.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from smsbot.messaging.twilio import TwilioTransport
from tests.fake_twilio import FakeTwilio

__all__ = ["SENDER", "app_on_fake_twilio", "fake", "twilio"]

SENDER = "+15005550006"


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def twilio(fake: FakeTwilio) -> Iterator[TwilioTransport]:
    transport = TwilioTransport(fake.account_sid, fake.auth_token, SENDER, api_url=fake.url)
    yield transport
    transport.close()


@pytest.fixture
def app_on_fake_twilio(app: Flask, twilio: TwilioTransport) -> TwilioTransport:
    """The app's transport is the Twilio client pointed at the fake."""
    app.extensions["smsbot.transport"] = twilio
    return twilio
