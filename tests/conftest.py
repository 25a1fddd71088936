"""Shared fixtures: a fresh app and database per test, a memory transport, a signer that
signs exactly as Twilio does, and a small named world (Riverside Pediatrics, parent
+15550100001, baby Ana)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator
from werkzeug.test import TestResponse

from smsbot import create_app
from smsbot.db import Database, upgrade
from smsbot.messaging.console import MemoryTransport
from smsbot.models import OutboxEntry
from smsbot.outbox import drain_all
from tests.postgres import scratch_postgres_database, truncate_all

AUTH_TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC_URL = "https://smsbot.example.org"
PARENT = "+15550100001"
OTHER_PARENT = "+15550100002"


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate once; each test copies the file (Alembic on every test would be slow)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


def postgres_backend() -> str | None:
    """With ``SMSBOT_TEST_BACKEND=postgres`` the whole suite runs on PostgreSQL."""
    if os.environ.get("SMSBOT_TEST_BACKEND", "sqlite") != "postgres":
        return None
    url = os.environ.get("SMSBOT_TEST_DATABASE_URL")
    if not url:
        pytest.exit("SMSBOT_TEST_BACKEND=postgres needs SMSBOT_TEST_DATABASE_URL", returncode=2)
    return url


@pytest.fixture(scope="session")
def postgres_suite_url() -> Iterator[str | None]:
    """A database of its own for this run, migrated once, dropped at the end."""
    server_url = postgres_backend()
    if server_url is None:
        yield None
        return
    with scratch_postgres_database(server_url) as url:
        upgrade(url)
        yield url


@pytest.fixture
def database_url(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh, migrated database for each test: a copied SQLite file, or emptied PostgreSQL."""
    suite_url = request.getfixturevalue("postgres_suite_url")
    if suite_url is not None:
        truncate_all(suite_url)
        return suite_url
    path = tmp_path / "smsbot.db"
    shutil.copy(request.getfixturevalue("migrated_template"), path)
    return f"sqlite:///{path}"


@pytest.fixture
def settings_overrides(database_url: str) -> dict[str, Any]:
    return {
        "database_url": database_url,
        "transport": "console",
        "twilio_auth_token": AUTH_TOKEN,
        "public_url": PUBLIC_URL,
        "secret_key": "test-secret",
        "run_scheduler": False,
    }


@pytest.fixture
def outbox() -> MemoryTransport:
    return MemoryTransport()


FOLLOW_UP_SECONDS = 10.0  # far beyond the outbox's own second: a hang, not a slow drain


def wait_for_follow_ups(app: Flask) -> None:
    """Wait until every inbound follow-up is done: the courier's work (the follow-ups and the
    alert deliveries it was woken for), then a drain as the scheduler's job would do.

    A row the courier has claimed is still counted until its transaction commits, so an
    empty outbox means the work is in the database, whoever did it.
    """
    db, settings = app.extensions["smsbot.db"], app.extensions["smsbot.settings"]
    if (courier := app.extensions.get("smsbot.alert_courier")) is not None:
        # Its follow-ups and the deliveries of the alerts they raised, done now.
        assert courier.settle(FOLLOW_UP_SECONDS), "the alert courier is still busy"
    deadline = time.monotonic() + FOLLOW_UP_SECONDS
    while True:
        drain_all(db, settings)
        with db.session() as session:
            if not session.scalar(select(func.count(OutboxEntry.id))):
                return
        if time.monotonic() > deadline:
            raise AssertionError("inbound follow-ups still pending")
        time.sleep(0.01)


class SettledClient(FlaskClient):
    """The test client, returning only once the follow-ups a request set off are done: tests
    read what a text did as the next text (or a nurse) would see it, a moment later."""

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:  # type: ignore[override]
        response = super().open(*args, **kwargs)
        wait_for_follow_ups(self.application)
        return response


@pytest.fixture
def make_app(settings_overrides: dict[str, Any], outbox: MemoryTransport) -> Iterator[Callable[..., Flask]]:
    """Build apps with extra settings; their connection pools are closed after the test."""
    apps: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        app = create_app({**settings_overrides, **overrides})
        app.extensions["smsbot.transport"] = outbox
        app.config["TESTING"] = True
        app.test_client_class = SettledClient
        apps.append(app)
        return app

    yield make
    for app in apps:
        if courier := app.extensions.get("smsbot.alert_courier"):
            courier.stop()
        app.extensions["smsbot.db"].close()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def db(app: Flask) -> Database:
    return app.extensions["smsbot.db"]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):  # type: ignore[no-untyped-def]
    return app.test_cli_runner()


def twilio_signature(url: str, form: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, form)


@pytest.fixture
def post_signed(client: FlaskClient) -> Callable[..., Any]:
    """POST form data to ``path`` signed exactly as Twilio signs it."""

    def post(path: str, form: dict[str, str], **kwargs: Any):  # type: ignore[no-untyped-def]
        signature = twilio_signature(PUBLIC_URL + path, form)
        headers = {"X-Twilio-Signature": signature, **kwargs.pop("headers", {})}
        return client.post(path, data=form, headers=headers, **kwargs)

    return post


@pytest.fixture
def text_bot(post_signed: Callable[..., Any]) -> Callable[..., Any]:
    """Send an SMS from a parent the way Twilio would deliver it."""
    counter = iter(range(1, 10**6))

    def text(body: str, *, sender: str = PARENT, sid: str | None = None, **extra: str):  # type: ignore[no-untyped-def]
        form = {
            "MessageSid": sid or f"SM{next(counter):032d}",
            "AccountSid": "AC" + "0" * 32,
            "From": sender,
            "To": "+15005550006",
            "Body": body,
            "NumMedia": "0",
            **extra,
        }
        return post_signed("/twilio/sms", form)

    return text


def pytest_report_header() -> str:
    url = os.environ.get("SMSBOT_TEST_DATABASE_URL")
    return f"smsbot: PostgreSQL tests against {url}" if url else "smsbot: PostgreSQL tests skipped"
