"""``GET /metrics`` for Prometheus: a bearer token when ``SMSBOT_METRICS_TOKEN`` is set,
otherwise loopback only, so metrics never leak to the internet by default."""

from __future__ import annotations

import hmac
import time

from flask import Blueprint, Flask, Response, abort, current_app, g, request

from smsbot import metrics
from smsbot.web.twilio_auth import from_loopback

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def exposition() -> Response:
    token = current_app.extensions["smsbot.settings"].metrics_token
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            abort(401, "metrics need Authorization: Bearer <SMSBOT_METRICS_TOKEN>")
    elif not from_loopback():
        abort(403, "metrics are served to loopback only unless SMSBOT_METRICS_TOKEN is set")
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)


def init_app(app: Flask) -> None:
    """Time every Twilio webhook request."""

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        if request.blueprint == "webhooks" and "started" in g:
            metrics.WEBHOOK_LATENCY.labels(request.endpoint or "-").observe(time.perf_counter() - g.started)
        return response

    app.register_blueprint(bp)
