"""Alerts through the clinic API: list (open/acknowledged), acknowledge once, isolated per clinic."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from sqlalchemy import select, text

from smsbot import alerts
from smsbot.db import Database
from smsbot.models import Alert, Enrollment, utcnow
from tests.clinic_fixtures import *  # noqa: F403


@pytest.fixture
def raise_for(app, db):  # type: ignore[no-untyped-def]
    """Raise an alert for an enrolled family (API id) and return the alert ids."""

    def raise_(family_id: int, level: str = "urgent") -> list[int]:
        with db.session() as session:
            family = session.get(Enrollment, family_id).family
            created = alerts.raise_alert(
                session,
                app.extensions["smsbot.settings"],
                family,
                level=level,
                reason=level,
                message=None,
                now=utcnow(),
            )
            return [alert.id for alert in created]

    return raise_


def test_alerts_are_listed_with_the_clinics_family_id(api, enroll_consenting_parent, raise_for):
    family = enroll_consenting_parent()
    [alert_id] = raise_for(family["id"], "emergency")
    [alert] = api("GET", "/alerts").get_json()["data"]
    assert (alert["id"], alert["family_id"], alert["level"], alert["status"]) == (
        alert_id,
        family["id"],
        "emergency",
        "open",
    )


def test_acknowledging_an_alert_records_who_and_the_note(api, enroll_consenting_parent, raise_for):
    [alert_id] = raise_for(enroll_consenting_parent()["id"])
    response = api("POST", f"/alerts/{alert_id}/acknowledge", json={"note": "called mum, seen today"})
    assert response.status_code == 200
    alert = response.get_json()
    assert (alert["status"], alert["acknowledged_by"], alert["note"]) == (
        "acknowledged",
        "api:ehr",
        "called mum, seen today",
    )
    assert api("GET", "/alerts?status=open").get_json()["data"] == []
    assert [a["id"] for a in api("GET", "/alerts?status=acknowledged").get_json()["data"]] == [alert_id]


def test_acknowledging_without_a_body_is_fine_but_twice_is_a_409(api, enroll_consenting_parent, raise_for):
    [alert_id] = raise_for(enroll_consenting_parent()["id"])
    assert api("POST", f"/alerts/{alert_id}/acknowledge").status_code == 200
    response = api("POST", f"/alerts/{alert_id}/acknowledge")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "already_acknowledged"


@contextmanager
def writes_to_alert_held(db: Database, alert_id: int) -> Iterator[Callable[[int], None]]:
    """Hold the alert's row (PostgreSQL) so that callers read it but wait to write it; yields a
    function that returns once that many writers are waiting. SQLite queues writers on its
    own, so there the callers only start together."""
    if not db.is_postgres:
        yield lambda _writers: None
        return
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    with db.engine.connect() as holder, db.engine.connect() as watcher:
        holder.execute(select(Alert.id).where(Alert.id == alert_id).with_for_update())

        def wait_for(writers: int) -> None:
            deadline = time.monotonic() + 30
            while watcher.scalar(waiting) < writers:
                assert time.monotonic() < deadline, "the acknowledgements never reached the write"
                watcher.rollback()  # a transaction sees one snapshot of pg_stat_activity
                time.sleep(0.01)

        yield wait_for
        holder.rollback()


def test_two_acknowledgements_at_once_give_one_200_and_one_409(
    app, db, api, world, enroll_consenting_parent, raise_for
):
    """Both calls read the open alert before either writes; only one may acknowledge it."""
    [alert_id] = raise_for(enroll_consenting_parent()["id"])
    api("GET", "/alerts")  # the token's use is recorded now, not during the race
    start = threading.Barrier(2)

    def acknowledge(note: str) -> tuple[int, str]:
        client = app.test_client()
        start.wait()
        response = client.post(
            f"/api/v1/alerts/{alert_id}/acknowledge",
            json={"note": note},
            headers={"Authorization": f"Bearer {world.riverside_token}"},
        )
        return response.status_code, note

    # The row is let go before the pool waits for the calls, even if they never get there.
    with ThreadPoolExecutor(2) as pool, writes_to_alert_held(db, alert_id) as wait_for:
        calls = [pool.submit(acknowledge, note) for note in ("called mum", "texted dad")]
        wait_for(2)
    results = sorted(call.result() for call in calls)
    assert [status for status, _ in results] == [200, 409]
    [acknowledged] = api("GET", "/alerts?status=acknowledged").get_json()["data"]
    assert acknowledged["note"] == results[0][1]  # the winner's note, not overwritten


@pytest.mark.parametrize(
    ("kwargs", "status", "field"),
    [
        ({"json": {"note": 42}}, 422, "note"),
        ({"json": {"note": "x" * 2001}}, 422, "note"),
        ({"json": {"notes": "typo"}}, 422, "notes"),
        ({"data": "{oops", "content_type": "application/json"}, 400, None),
    ],
)
def test_invalid_acknowledgement_is_refused(api, enroll_consenting_parent, raise_for, kwargs, status, field):
    [alert_id] = raise_for(enroll_consenting_parent()["id"])
    response = api("POST", f"/alerts/{alert_id}/acknowledge", **kwargs)
    assert response.status_code == status
    assert response.get_json()["error"]["field"] == field
    assert api("GET", "/alerts?status=open").get_json()["data"] != []


def test_bad_alert_status_filter_is_422(api):
    assert api("GET", "/alerts?status=closed").status_code == 422


def test_another_clinics_alerts_are_invisible_and_a_404(api, enroll_consenting_parent, raise_for, world):
    [alert_id] = raise_for(enroll_consenting_parent()["id"])
    assert api("GET", "/alerts", token=world.lakeside_token).get_json()["data"] == []
    response = api("POST", f"/alerts/{alert_id}/acknowledge", token=world.lakeside_token)
    assert response.status_code == 404
    assert api("GET", "/alerts?status=open").get_json()["data"][0]["id"] == alert_id


def test_unknown_alert_is_a_404(api):
    assert api("POST", "/alerts/12345/acknowledge").status_code == 404


BREATHING = "he stopped breathing and is not responding"


def test_an_emergency_texted_after_stop_alerts_the_clinics_that_followed_the_family(
    api, enroll_consenting_parent, enroll_parent, text_bot, world
):
    riverside = enroll_consenting_parent()
    text_bot("STOP")
    # Lakeside enrolls the family afterwards: it never had the family's consent.
    lakeside = api(
        "POST",
        "/families",
        token=world.lakeside_token,
        json={"phone": riverside["phone"], "programme": "clinic_followup"},
    ).get_json()
    response = text_bot(BREATHING)
    assert "<Message>" not in response.get_data(as_text=True)  # opted out: nothing is sent

    [alert] = api("GET", "/alerts?status=open").get_json()["data"]
    assert (alert["family_id"], alert["level"]) == (riverside["id"], "emergency")
    family = api("GET", f"/families/{riverside['id']}").get_json()
    assert (family["status"], family["opted_out"]) == ("ended", True)
    texts = [m["body"] for m in api("GET", f"/families/{riverside['id']}/messages").get_json()["data"]]
    assert texts[0] == BREATHING  # the text that raised the alert, though sent after STOP
    assert api("GET", "/alerts", token=world.lakeside_token).get_json()["data"] == []
    assert (
        api("GET", f"/families/{lakeside['id']}/messages", token=world.lakeside_token).get_json()["data"]
        == []
    )


def test_an_opted_out_walk_in_texter_alerts_the_default_clinic(make_app, world):
    from tests.conftest import OTHER_PARENT, PUBLIC_URL, twilio_signature

    client = make_app(default_clinic="lakeside").test_client()
    for number, body in enumerate(["STOP", BREATHING]):
        form = {"MessageSid": f"SM{number:032d}", "From": OTHER_PARENT, "Body": body}
        signature = twilio_signature(PUBLIC_URL + "/twilio/sms", form)
        assert (
            client.post("/twilio/sms", data=form, headers={"X-Twilio-Signature": signature}).status_code
            == 200
        )
    headers = {"Authorization": f"Bearer {world.lakeside_token}"}
    [alert] = client.get("/api/v1/alerts?status=open", headers=headers).get_json()["data"]
    assert (alert["level"], alert["family_id"]) == ("emergency", None)  # nobody enrolled them
