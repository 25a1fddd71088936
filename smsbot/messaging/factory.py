"""Build the configured transport from settings."""

from __future__ import annotations

from smsbot.config import Settings
from smsbot.messaging import Transport
from smsbot.messaging.console import ConsoleTransport


def make_transport(settings: Settings) -> Transport:
    """``ConsoleTransport`` by default; ``TwilioTransport`` reporting status to our webhook."""
    if settings.transport == "twilio":
        # Imported here so the console default never loads the Twilio client.
        from smsbot.messaging.twilio import TwilioTransport

        return TwilioTransport(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.sender,
            api_url=settings.twilio_api_url,
            status_callback=settings.public_url.rstrip("/") + "/twilio/status",
        )
    return ConsoleTransport()
