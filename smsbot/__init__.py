"""smsbot: safe SMS guidance for parents of young babies with arm or leg tremors."""

from __future__ import annotations

from typing import Any

from flask import Flask

from smsbot.config import ConfigError, load_settings, parse_allow_ips
from smsbot.db import Database
from smsbot.messaging.factory import make_transport


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the web app: settings from the environment, overridden by ``config`` (tests)."""
    from smsbot import alerts, logs
    from smsbot.web import api, dashboard, dashboard_workflow, errors, health, limits, webhooks
    from smsbot.web import metrics as metrics_web
    from smsbot.web.proxies import TrustedProxies

    settings = load_settings(config)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key or None,
        MAX_CONTENT_LENGTH=256 * 1024,  # Twilio posts a few KB; anything huge is not Twilio
    )
    app.extensions["smsbot.settings"] = settings
    app.wsgi_app = TrustedProxies(app.wsgi_app, parse_allow_ips(settings.forwarded_allow_ips))  # type: ignore[method-assign]
    database = Database(settings.database_url)
    try:
        alerts.require_public_url(database, settings)
    except ConfigError:
        database.close()  # the app is never built: nothing else would close its pool
        raise
    database.init_app(app)
    app.extensions["smsbot.transport"] = make_transport(settings)
    logs.init_app(app)
    errors.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(api.bp)
    limits.init_app(app)
    metrics_web.init_app(app)
    dashboard.init_app(app)
    app.register_blueprint(dashboard_workflow.bp)
    return app
