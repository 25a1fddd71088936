"""The floor for ``bench_webhook.py``: a bare Flask app answering ``POST /twilio/sms`` with a fixed
TwiML reply (no signature check, no database), served with the same gunicorn settings as smsbot.

    gunicorn -c python:smsbot.gunicorn_conf --chdir benchmarks 'bare_twiml:create_app()'
"""

from __future__ import annotations

from flask import Flask, Response
from twilio.twiml.messaging_response import MessagingResponse


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/twilio/sms")
    def inbound_sms() -> Response:
        response = MessagingResponse()
        response.message("Thanks, we got your message. This is not a diagnosis.")
        return Response(str(response), mimetype="text/xml")

    @app.get("/healthz")
    def healthz() -> tuple[str, int]:
        return "ok", 200

    return app
