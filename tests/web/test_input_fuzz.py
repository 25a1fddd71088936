"""Arbitrary input at every edge but ``/twilio/sms`` (``test_webhook_fuzz.py``): delivery
statuses, every API endpoint's body and query, the dashboard's forms and search.

Never a 500, and never corrupt state: the other clinic's data is untouched, and every text
that went out is recorded, with nothing left half-written.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from smsbot.messaging.status import STATUS_RANK
from smsbot.models import Enrollment, Message
from smsbot.web import openapi, shapes
from tests.clinic_fixtures import *  # noqa: F403
from tests.clinic_fixtures import PROGRAMME
from tests.dashboard_fixtures import World as DashboardWorld
from tests.dashboard_fixtures import build_world, csrf_token, sign_in

EXAMPLES = 120
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Text a client can send (a lone surrogate cannot even be encoded), and the strings that
# broke the service before: digits int() refuses, numbers past a column, NUL.
EDGE_STRINGS = ["\x00", "²", "٣", "9" * 5000, str(2**63), str(2**31), "-1", " 1", "1e3", "", "null"]
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=60) | st.sampled_from(EDGE_STRINGS)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)


@pytest.fixture
def app(make_app):  # type: ignore[no-untyped-def]
    """The rate limit is not what is tested here: hundreds of calls in a few seconds."""
    return make_app(api_rate_limit="100000 per minute")


def api_rules(app) -> list[tuple[str, str, openapi.Operation]]:  # type: ignore[no-untyped-def]
    """(method, path pattern, contract) of every API endpoint: those that take no body or
    query get arbitrary ones too."""
    found = []
    for rule in app.url_map.iter_rules():
        spec = openapi.operation_of(app.view_functions[rule.endpoint])
        # Erasing the one family would leave the rest of a run nothing to act on (and its
        # sent texts unrecorded, by design); erasure has its own tests.
        if rule.endpoint == "api.erase_family":
            continue
        if rule.rule.startswith("/api/v1") and spec is not None:
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                found.append((method, rule.rule, spec))
    return found


def assert_state_is_whole(db, outbox, other_clinic_id: int, other_clinic_rows: int) -> None:  # type: ignore[no-untyped-def]
    with db.session() as session:
        assert (
            session.scalar(select(func.count()).where(Enrollment.clinic_id == other_clinic_id))
            == other_clinic_rows
        )
        outbound = session.scalars(select(Message).where(Message.direction == "out")).all()
    assert all(m.status != "sending" and m.provider_sid for m in outbound if m.kind == "consent")
    assert {m.sid for m in outbox.outbox} <= {m.provider_sid for m in outbound}


def test_every_api_endpoint_is_fuzzed(app):
    covered = {(method, path) for method, path, _ in api_rules(app)}
    assert covered >= {
        ("POST", "/api/v1/families"),
        ("PATCH", "/api/v1/families/<int:family_id>"),
        ("POST", "/api/v1/families/<int:family_id>/enrollment"),
        ("POST", "/api/v1/alerts/<int:alert_id>/acknowledge"),
        ("GET", "/api/v1/families"),
        ("GET", "/api/v1/alerts"),
        ("GET", "/api/v1/families/<int:family_id>/messages"),
        ("POST", "/api/v1/families/<int:family_id>/resume"),
        ("DELETE", "/api/v1/families/<int:family_id>/enrollment"),
    }


@pytest.fixture
def followed(api) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = api("POST", "/families", json={"phone": "+15550100001", "programme": PROGRAMME})
    assert response.status_code == 201
    return response.get_json()


def api_calls(app, family_id: int):  # type: ignore[no-untyped-def]
    """(method, path, query, raw body) for any API endpoint."""

    def for_rule(rule: tuple[str, str, openapi.Operation]):  # type: ignore[no-untyped-def]
        method, pattern, spec = rule
        ids = st.sampled_from([family_id, 0, 2**31, 10**30]) | st.integers(min_value=0)
        body_fields = [*shapes.fields_of(spec.body), "phone", "x"] if spec.body else ["x"]
        query_fields = [*shapes.fields_of(spec.query), "x"] if spec.query else ["x"]
        bodies = (
            st.dictionaries(st.sampled_from(body_fields), json_values, max_size=5).map(json.dumps)
            | json_values.map(json.dumps)
            | st.sampled_from(["", "{", "[" * 100_000, '{"note": "\\ud800"}', "\x00"])
        )
        queries = st.dictionaries(st.sampled_from(query_fields), texts, max_size=3)
        return st.tuples(
            st.just(method),
            ids.map(lambda i: re.sub(r"<int:\w+>", str(i), pattern)),
            queries if method in ("GET", "DELETE") else st.just({}),
            bodies if method not in ("GET", "DELETE") else st.just(None),
        )

    return st.sampled_from(api_rules(app)).flatmap(for_rule)


def test_api_bodies_and_queries_never_break_the_service(app, client, world, followed, db, outbox):
    calls = api_calls(app, followed["id"])
    token = world.riverside_token

    @FUZZ
    @given(call=calls)
    def fuzz(call: tuple[str, str, dict[str, str], str | None]) -> None:
        method, path, query, body = call
        response = client.open(
            path,
            method=method,
            query_string=query,
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        assert response.status_code in (200, 201, 400, 404, 409, 422), (call, response.get_data())
        if response.status_code >= 400:
            assert response.get_json()["error"]["message"]
        assert_state_is_whole(db, outbox, world.lakeside_id, 0)

    fuzz()


def test_delivery_statuses_never_break_the_service(post_signed, db, followed, outbox):
    sent = outbox.outbox[0].sid
    forms = st.fixed_dictionaries(
        {},
        optional={
            "MessageSid": st.sampled_from([sent, "SM" + "0" * 32]) | texts,
            "MessageStatus": st.sampled_from(sorted(STATUS_RANK)) | texts,
            "ErrorCode": st.sampled_from(["30003", "21610", "0"]) | texts,
            "AccountSid": texts,
        },
    )

    @FUZZ
    @given(form=forms)
    def fuzz(form: dict[str, str]) -> None:
        response = post_signed("/twilio/status", form)
        assert response.status_code in (204, 400), (form, response.get_data())
        with db.session() as session:
            message = session.scalar(select(Message).where(Message.provider_sid == sent))
        assert message.status in STATUS_RANK
        assert message.error_code is None or 0 <= message.error_code < 2**31

    fuzz()


@pytest.fixture
def dashboard_world(db) -> DashboardWorld:  # type: ignore[no-untyped-def]
    from smsbot.models import utcnow

    return build_world(db, utcnow())


def test_dashboard_forms_and_search_never_break_the_service(client, db, outbox, dashboard_world):
    assert sign_in(client).status_code == 302
    token = csrf_token(client, "/dashboard/families/new")
    alert = f"/dashboard/alerts/{dashboard_world.ana_alert_id}"
    family = f"/dashboard/families/{dashboard_world.ana_id}"
    form_fields = ["phone", "language", "baby_name", "baby_birth_date", "programme", "note", "from", "x"]
    requests = st.one_of(
        st.tuples(
            st.just("GET"),
            st.sampled_from(["/dashboard/families", "/dashboard/alerts/history", "/dashboard/"]),
            st.dictionaries(st.sampled_from(["q", "page", "x"]), texts, max_size=3),
        ),
        st.tuples(
            st.just("POST"),
            st.sampled_from(
                ["/dashboard/families/new", f"{alert}/acknowledge", f"{family}/unenroll", f"{family}/resume"]
            ),
            st.dictionaries(st.sampled_from(form_fields), texts, max_size=6).map(
                lambda form: {**form, "csrf_token": token}
            ),
        ),
    )
    with db.session() as session:
        lakeside_rows = session.scalar(
            select(func.count()).where(Enrollment.clinic_id == dashboard_world.lakeside_id)
        )

    @FUZZ
    @given(request=requests)
    def fuzz(request: tuple[str, str, dict[str, str]]) -> None:
        method, path, values = request
        if method == "GET":
            response = client.get(path, query_string=values)
        else:
            response = client.post(path, data=values)
        assert response.status_code in (200, 302, 400, 404), (request, response.status_code)
        assert_state_is_whole(db, outbox, dashboard_world.lakeside_id, lakeside_rows)
        assert client.get("/dashboard/families").status_code == 200  # still signed in as NURSE

    fuzz()


@pytest.mark.parametrize("count", ["²", "9" * 5000, "11", "-1"])
def test_a_malformed_media_count_is_a_400(text_bot, count):
    response = text_bot("her lips are blue", NumMedia=count)
    assert response.status_code == 400
    assert "NumMedia" in response.get_json()["error"]["message"]


@pytest.mark.parametrize("code", ["9" * 5000, "²", str(2**63), str(2**31)])
def test_a_malformed_error_code_is_a_400(post_signed, followed, outbox, code):
    form = {"MessageSid": outbox.outbox[0].sid, "MessageStatus": "failed", "ErrorCode": code}
    response = post_signed("/twilio/status", form)
    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == "ErrorCode must be a number"


def test_a_nul_in_the_dashboard_search_is_a_400(client, dashboard_world):
    assert sign_in(client).status_code == 302
    assert client.get("/dashboard/families", query_string={"q": "\x00"}).status_code == 400
    assert client.get("/dashboard/families", query_string={"q": "ana"}).status_code == 200


def test_a_deeply_nested_api_body_is_a_400(api, followed):
    response = api("POST", "/families", data="[" * 100_000, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_json"


def test_the_sign_in_form_never_breaks_the_service(client, dashboard_world):
    token = csrf_token(client, "/dashboard/login")
    forms = st.dictionaries(st.sampled_from(["email", "password", "next", "x"]), texts, max_size=4)

    @FUZZ
    @given(form=forms, next_page=texts)
    def fuzz(form: dict[str, str], next_page: str) -> None:
        response = client.post(
            "/dashboard/login", data={**form, "csrf_token": token}, query_string={"next": next_page}
        )
        assert response.status_code in (200, 302, 400, 429), (form, response.status_code)
        if response.status_code == 302:  # only ever to the dashboard itself
            assert response.location.startswith("/dashboard")

    fuzz()
