"""Fixtures for clinic tests: two clinics (Riverside Pediatrics and Lakeside Family Clinic),
an API token for each, and a JSON client that speaks as one of them.

Import into a test module with ``from tests.clinic_fixtures import *``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from smsbot import clinics
from smsbot.db import Database
from smsbot.models import utcnow

__all__ = [
    "ONCALL",
    "PROGRAMME",
    "ClinicWorld",
    "WebhookReceiver",
    "api",
    "enroll_consenting_parent",
    "enroll_parent",
    "receiver",
    "world",
]

ONCALL = "+15550109999"
PROGRAMME = "clinic_followup"


@dataclass(frozen=True)
class ClinicWorld:
    riverside_id: int
    lakeside_id: int
    riverside_token: str
    lakeside_token: str
    revoked_token: str


@pytest.fixture
def world(app: Flask, db: Database) -> ClinicWorld:
    settings = app.extensions["smsbot.settings"]
    with db.session() as session:
        riverside = clinics.create_clinic(
            session,
            settings,
            slug="riverside",
            name="Riverside Pediatrics",
            timezone="America/Chicago",
            oncall_phone="(555) 010-9999",
        )
        lakeside = clinics.create_clinic(
            session, settings, slug="lakeside", name="Lakeside Family Clinic", timezone="America/New_York"
        )
        revoked = clinics.create_token(session, riverside, "old")
        clinics.revoke_token(session, riverside, revoked[:13], now=utcnow())
        return ClinicWorld(
            riverside_id=riverside.id,
            lakeside_id=lakeside.id,
            riverside_token=clinics.create_token(session, riverside, "ehr"),
            lakeside_token=clinics.create_token(session, lakeside, "ehr"),
            revoked_token=revoked,
        )


@pytest.fixture
def api(client: FlaskClient, world: ClinicWorld) -> Callable[..., TestResponse]:
    """Call the API as Riverside (or ``token=...``); ``json=`` sends a JSON body."""

    def call(
        method: str, path: str, *, token: str | None = world.riverside_token, **kwargs: Any
    ) -> TestResponse:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return client.open("/api/v1" + path, method=method, headers=headers, **kwargs)

    return call


@pytest.fixture
def enroll_parent(api: Callable[..., TestResponse]) -> Callable[..., dict[str, Any]]:
    """Enroll a parent through the API and return the family JSON."""

    def enroll(phone: str = "+15550100001", **fields: Any) -> dict[str, Any]:
        response = api("POST", "/families", json={"phone": phone, "programme": PROGRAMME, **fields})
        assert response.status_code in (200, 201), response.get_json()
        return response.get_json()

    return enroll


@pytest.fixture
def enroll_consenting_parent(
    enroll_parent: Callable[..., dict[str, Any]], text_bot: Callable[..., Any]
) -> Callable[..., dict[str, Any]]:
    """Enroll a parent through the API, who then answers YES: the clinic follows them."""

    def enroll(phone: str = "+15550100001", **fields: Any) -> dict[str, Any]:
        family = enroll_parent(phone, **fields)
        assert text_bot("YES", sender=phone).status_code == 200
        return family

    return enroll


@dataclass
class WebhookReceiver:
    """A clinic's webhook endpoint on 127.0.0.1: records every POST, answers ``statuses`` in turn."""

    url: str
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # then 204 forever


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    state = WebhookReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.requests.append((dict(self.headers.items()), body))
            self.send_response(state.statuses.pop(0) if state.statuses else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_port}/smsbot-alerts"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()
