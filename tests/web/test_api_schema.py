"""The OpenAPI document is checked against the running app by schemathesis (property-based):
no 500s, and every response matches the document."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from smsbot import alerts
from smsbot.models import Family, utcnow
from smsbot.web.openapi import OPENAPI
from tests.clinic_fixtures import *  # noqa: F403
from tests.clinic_fixtures import ClinicWorld


class ForwardingApp:
    """A WSGI app passing requests to the current test's fresh app.

    schemathesis binds one app when the schema loads (its ``from_fixture`` loader does not
    work with pytest 9), while every test here builds its own app and database.
    """

    target: Flask | None = None
    token: str = ""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.target is not None, "use the `seeded` fixture"
        return self.target(environ, start_response)


forwarding_app = ForwardingApp()
schema = schemathesis.openapi.from_dict(OPENAPI)
schema.app = forwarding_app  # what from_wsgi does, without needing an app at import time
schema.config.update(base_url="http://localhost/api/v1")


@schema.auth(refresh_interval=None, retry_on=[])
class ClinicToken:
    """Riverside's token on every case, except the ones schemathesis sends without auth on purpose."""

    def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
        return forwarding_app.token

    def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.fixture
def seeded(app, db, world: ClinicWorld, enroll_parent) -> Iterator[ClinicWorld]:  # type: ignore[no-untyped-def]
    # Some data, so list and get responses are checked with real items, not just 404s.
    enroll_parent("+15550100001", baby_name="Ana", baby_birth_date=utcnow().date().isoformat())
    enroll_parent("+15550100002", language="es")
    with db.session() as session:
        family = session.get(Family, 1)
        alerts.raise_alert(
            session,
            app.extensions["smsbot.settings"],
            family,
            level="urgent",
            reason="urgent",
            message=None,
            now=utcnow(),
        )
    forwarding_app.target, forwarding_app.token = app, world.riverside_token
    yield world
    forwarding_app.target = None


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_api_matches_its_openapi_document(case, seeded: ClinicWorld) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(
        # A string the schema allows may still be an invalid phone number, an unknown
        # programme or a future birth date: those 422s are correct, not a schema mismatch.
        excluded_checks=[positive_data_acceptance],
    )


def test_served_document_is_the_one_tested(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/api/v1/openapi.json").get_json() == OPENAPI
