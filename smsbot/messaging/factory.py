"""Pick the transport the settings ask for."""

from __future__ import annotations

from smsbot.config import Settings
from smsbot.messaging import Transport
from smsbot.messaging.console import ConsoleTransport


def make_transport(settings: Settings) -> Transport:
    if settings.transport == "twilio":
        from smsbot.messaging.twilio import TwilioTransport

        return TwilioTransport(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.sender,
            api_url=settings.twilio_api_url,
            status_callback=settings.public_url.rstrip("/") + "/twilio/status",
        )
    return ConsoleTransport()
