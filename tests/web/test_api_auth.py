"""Every API endpoint needs a live clinic token (401 otherwise) and is rate limited (429)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.clinic_fixtures import *  # noqa: F403
from tests.clinic_fixtures import PROGRAMME

ENDPOINTS = [
    ("GET", "/families"),
    ("POST", "/families"),
    ("GET", "/families/1"),
    ("PATCH", "/families/1"),
    ("POST", "/families/1/enrollment"),
    ("DELETE", "/families/1/enrollment"),
    ("GET", "/families/1/messages"),
    ("GET", "/families/1/checkins"),
    ("GET", "/alerts"),
    ("POST", "/alerts/1/acknowledge"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("credential", ["none", "revoked", "made-up", "wrong-scheme"])
def test_every_endpoint_refuses_a_missing_or_revoked_token(client, world, method, path, credential):
    headers = {
        "none": {},
        "revoked": {"Authorization": f"Bearer {world.revoked_token}"},
        "made-up": {"Authorization": "Bearer smsb_not-a-real-token"},
        "wrong-scheme": {"Authorization": f"Basic {world.riverside_token}"},
    }[credential]
    response = client.open("/api/v1" + path, method=method, headers=headers, json={"programme": PROGRAMME})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_openapi_document_needs_no_token(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.get_json()["openapi"].startswith("3.")


@pytest.fixture
def settings_overrides(settings_overrides: dict[str, Any]) -> dict[str, Any]:
    return {**settings_overrides, "api_rate_limit": "3 per minute"}


def test_requests_past_the_limit_get_429_in_the_json_error_shape(api, world):
    for path in ("/alerts", "/families", "/alerts"):
        assert api("GET", path).status_code == 200
    response = api("GET", "/families")  # one budget across endpoints
    assert response.status_code == 429
    assert response.get_json()["error"]["code"] == "too_many_requests"
    assert int(response.headers["Retry-After"]) > 0
    # The budget is per token: another clinic is not throttled by this one.
    assert api("GET", "/alerts", token=world.lakeside_token).status_code == 200
