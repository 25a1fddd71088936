"""Rate limits on the clinic API (Flask-Limiter), keyed by API token, else by client IP.

Counters live in Redis when ``SMSBOT_REDIS_URL`` is set, so every web worker shares one
budget per token; otherwise in this process's memory (one machine, tests).
"""

from __future__ import annotations

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from smsbot.web import api


def _client_key() -> str:
    # Only a *valid* token gets its own budget: spraying made-up tokens from one address
    # still counts against that address.
    token = api.current_token()
    return f"token:{token.id}" if token is not None else f"ip:{get_remote_address()}"


def init_app(app: Flask) -> Limiter:
    """Attach a limiter to ``app`` and apply ``settings.api_rate_limit`` to the API blueprint.

    Over the limit, Flask-Limiter raises a 429 HTTPException, which ``web.errors`` renders in
    the JSON error shape (plus ``Retry-After``).
    """
    settings = app.extensions["smsbot.settings"]
    limiter = Limiter(
        key_func=_client_key,
        storage_uri=settings.redis_url or "memory://",
        headers_enabled=True,
        key_prefix="smsbot",
    )
    limiter.init_app(app)
    # One budget for the whole API, not one per endpoint.
    limiter.shared_limit(settings.api_rate_limit, scope="api")(api.bp)
    app.extensions["smsbot.limiter"] = limiter
    return limiter
