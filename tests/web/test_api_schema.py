"""The OpenAPI document is generated from the API's shapes and checked against the running
app by schemathesis (property-based): no 500s, and every response matches the document. It
is as strict as the API: what the API refuses with a 422, the document refuses too."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from smsbot import alerts, clinics
from smsbot.models import Family, utcnow
from smsbot.web import openapi, shapes
from smsbot.web.api import READ_ONLY_FIELDS
from smsbot.web.api import bp as api_blueprint
from tests.clinic_fixtures import *  # noqa: F403
from tests.clinic_fixtures import PROGRAMME, ClinicWorld


def api_document() -> dict[str, Any]:
    """The document of the API's routes, generated as the app serves it."""
    app = Flask(__name__)
    app.register_blueprint(api_blueprint)
    return openapi.document(app)


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
schema = schemathesis.openapi.from_dict(api_document())
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
        # A string the schema allows may still be an invalid phone number, a time zone that
        # does not exist or an unknown programme: those 422s are correct, not a mismatch.
        excluded_checks=[positive_data_acceptance],
    )


def test_served_document_is_the_one_tested(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/api/v1/openapi.json").get_json() == api_document()


def a_young_babys_birth_date(days_old: int) -> str:
    return (utcnow().date() - timedelta(days=days_old)).isoformat()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("phone", ""),
        ("phone", "   "),
        ("timezone", ""),
        ("timezone", " "),
        ("baby_birth_date", "2025-02-30"),
        ("baby_birth_date", (utcnow().date() + timedelta(days=1)).isoformat()),
        ("baby_birth_date", a_young_babys_birth_date(3 * 365)),
        ("baby_birth_date", "31/12/2025"),
        ("channel", "fax"),
        ("colour", "blue"),
    ],
)
def test_what_the_api_refuses_the_document_refuses(api, field: str, value: Any) -> None:  # type: ignore[no-untyped-def]
    body = {"phone": "+15550100001", "programme": PROGRAMME, field: value}
    family_create = {**api_document(), "$ref": "#/components/schemas/FamilyCreate"}
    assert not jsonschema_rs.Draft202012Validator(family_create, validate_formats=True).is_valid(body)
    assert api("POST", "/families", json=body).status_code == 422


@pytest.mark.parametrize(
    ("field", "value"),
    [("language", None), ("timezone", ""), ("baby_birth_date", "2999-01-01"), ("phone", "+15550100009")],
)
def test_what_the_api_refuses_in_an_update_the_document_refuses(
    api, enroll_parent, field: str, value: Any
) -> None:  # type: ignore[no-untyped-def]
    family_details = {**api_document(), "$ref": "#/components/schemas/FamilyDetails"}
    assert not jsonschema_rs.Draft202012Validator(family_details, validate_formats=True).is_valid(
        {field: value}
    )
    assert api("PATCH", f"/families/{enroll_parent()['id']}", json={field: value}).status_code == 422


@pytest.mark.parametrize("days_old", [0, 60, 700])
def test_a_young_babys_birth_date_is_valid_in_both(api, days_old: int) -> None:  # type: ignore[no-untyped-def]
    body = {
        "phone": "+15550100001",
        "programme": PROGRAMME,
        "baby_birth_date": a_young_babys_birth_date(days_old),
    }
    family_create = {**api_document(), "$ref": "#/components/schemas/FamilyCreate"}
    assert jsonschema_rs.Draft202012Validator(family_create, validate_formats=True).is_valid(body)
    assert api("POST", "/families", json=body).status_code == 201


def test_the_api_takes_every_family_field_a_clinic_can_give() -> None:
    assert set(shapes.fields_of(shapes.FamilyCreate)) == set(clinics.FAMILY_FIELDS)
    assert sorted(READ_ONLY_FIELDS) == ["channel", "phone", "programme"]
