"""Client addresses behind a reverse proxy: ``X-Forwarded-For`` is honoured only when the
request comes straight from an address in ``SMSBOT_FORWARDED_ALLOW_IPS``.

Without it, a proxy on the same host makes every request look like loopback: unsigned
console texts, ``/metrics`` without a token and one rate-limit bucket for every client.
With it, a client that is not that proxy cannot claim another address by sending the header.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.middleware.proxy_fix import ProxyFix

FORWARDED_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST")


class TrustedProxies:
    """WSGI middleware: ProxyFix (one proxy hop) for requests from ``allowed``; from anyone
    else the forwarding headers are dropped, so nothing downstream can be fooled by them."""

    def __init__(self, app: Callable[..., Any], allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = frozenset(allowed)
        self.fixed = ProxyFix(app, x_for=1, x_proto=1, x_host=1)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if "*" in self.allowed or environ.get("REMOTE_ADDR") in self.allowed:
            return self.fixed(environ, start_response)
        for header in FORWARDED_HEADERS:
            environ.pop(header, None)
        return self.app(environ, start_response)
