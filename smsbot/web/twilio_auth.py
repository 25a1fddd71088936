"""Verifying that a request really comes from Twilio (``X-Twilio-Signature``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, current_app, request
from twilio.request_validator import RequestValidator

from smsbot.config import Settings


def signed_url(settings: Settings) -> str:
    """The URL Twilio signed: the public URL plus path and query, so it works behind a proxy."""
    if not settings.public_url:
        return request.url
    path = request.full_path if request.query_string else request.path
    return settings.public_url.rstrip("/") + path


def from_loopback() -> bool:
    """Whether the client is this machine: the peer and, behind a proxy, the address it
    forwarded too, so that no forwarded header alone can claim loopback."""
    peer = request.environ.get("werkzeug.proxy_fix.orig", {}).get("REMOTE_ADDR", request.remote_addr)
    try:
        return all(ipaddress.ip_address(address or "").is_loopback for address in (peer, request.remote_addr))
    except ValueError:
        return False


def request_is_trusted(settings: Settings) -> bool:
    signature = request.headers.get("X-Twilio-Signature")
    if signature is None:
        # Local trying-out only: the console transport never talks to Twilio.
        return settings.transport == "console" and from_loopback()
    if not settings.twilio_auth_token:
        return False
    validator = RequestValidator(settings.twilio_auth_token)
    return validator.validate(signed_url(settings), request.form, signature)


def twilio_signed(view: Callable[..., Any]) -> Callable[..., Any]:
    """403 (and nothing stored) unless the request carries a valid Twilio signature."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not request_is_trusted(current_app.extensions["smsbot.settings"]):
            abort(403, "invalid or missing X-Twilio-Signature")
        return view(*args, **kwargs)

    return wrapper
