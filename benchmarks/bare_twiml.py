"""The floors for ``bench_webhook.py``: a bare Flask app answering ``POST /twilio/sms`` with a fixed
TwiML reply, served with the same gunicorn settings as smsbot.

With ``BARE_DATABASE_URL`` (a PostgreSQL URL) each request also stores its ``MessageSid`` in
one table and commits before answering: the least any webhook that must not lose a message
can do (no signature check, no ORM, one statement and one durable commit).

    gunicorn -c python:smsbot.web.gunicorn_conf --chdir benchmarks 'bare_twiml:create_app()'
"""

from __future__ import annotations

import os
import threading

import psycopg
from flask import Flask, Response, request
from twilio.twiml.messaging_response import MessagingResponse

STORE = "INSERT INTO bare_inbound (sid) VALUES (%s) ON CONFLICT DO NOTHING"


def create_app() -> Flask:
    app = Flask(__name__)
    database_url = os.environ.get("BARE_DATABASE_URL")
    local = threading.local()  # one connection per gunicorn thread, opened on first use

    if database_url:
        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute("CREATE TABLE IF NOT EXISTS bare_inbound (sid text PRIMARY KEY)")

    @app.post("/twilio/sms")
    def inbound_sms() -> Response:
        if database_url:
            if not hasattr(local, "connection"):
                local.connection = psycopg.connect(database_url, autocommit=True)
            local.connection.execute(STORE, (request.form.get("MessageSid", ""),))
        response = MessagingResponse()
        response.message("Thanks, we got your message. This is not a diagnosis.")
        return Response(str(response), mimetype="text/xml")

    @app.get("/healthz")
    def healthz() -> tuple[str, int]:
        return "ok", 200

    return app
