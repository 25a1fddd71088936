"""Families through the clinic API: enroll (one consent text), list, get, update, re-enroll,
unenroll, and a family's messages and check-ins; every lookup isolated per clinic."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from smsbot.models import CheckIn, Enrollment, Family, Message, utcnow
from tests.clinic_fixtures import *  # noqa: F403
from tests.clinic_fixtures import PROGRAMME
from tests.web.test_webhook import reply_text

PARENT = "+15550100001"


def error_of(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.get_json()
    return response.get_json()["error"]


def test_enrolling_a_family_sends_one_consent_text(api, outbox, db):
    response = api(
        "POST",
        "/families",
        json={"phone": "(555) 010-0001", "programme": PROGRAMME, "baby_name": "Ana", "external_ref": "MRN-7"},
    )
    assert response.status_code == 201
    family = response.get_json()
    assert family["phone"] == PARENT
    assert (family["status"], family["consent"], family["external_ref"]) == (
        "awaiting_consent",
        "requested",
        "MRN-7",
    )
    [sent] = outbox.outbox
    assert sent.to == PARENT
    assert "Riverside Pediatrics" in sent.body and "YES" in sent.body and "STOP" in sent.body
    assert "Ana" in sent.body
    with db.session() as session:
        message = session.scalar(select(Message).where(Message.kind == "consent"))
        assert (message.direction, message.provider_sid, message.status) == ("out", sent.sid, "queued")
        assert message.clinic_id is not None


def test_consent_text_is_in_the_familys_language(enroll_parent, outbox):
    enroll_parent(language="es")
    assert "responda SI" in outbox.outbox[0].body


def test_enrolling_the_same_phone_again_updates_without_a_second_text(api, enroll_parent, outbox):
    first = enroll_parent(baby_name="Ana")
    response = api(
        "POST", "/families", json={"phone": "555-010-0001", "programme": PROGRAMME, "baby_name": "Ana M"}
    )
    assert response.status_code == 200
    assert response.get_json()["id"] == first["id"]
    assert response.get_json()["baby_name"] == "Ana M"
    assert len(outbox.outbox) == 1


def test_another_clinic_enrolls_the_same_phone_separately(api, enroll_parent, world, outbox):
    riverside = enroll_parent()
    response = api(
        "POST", "/families", token=world.lakeside_token, json={"phone": PARENT, "programme": PROGRAMME}
    )
    assert response.status_code == 201
    assert response.get_json()["id"] != riverside["id"]
    assert "Lakeside Family Clinic" in outbox.outbox[1].body


def test_opted_out_family_is_enrolled_without_a_consent_text(api, db, outbox):
    with db.session() as session:
        session.add(Family(phone=PARENT, channel="sms", opted_out_at=utcnow()))
    response = api("POST", "/families", json={"phone": PARENT, "programme": PROGRAMME})
    assert response.status_code == 201
    assert (response.get_json()["status"], response.get_json()["consent"]) == (
        "awaiting_consent",
        "blocked_opted_out",
    )
    assert outbox.outbox == []


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"phone": "12", "programme": PROGRAMME}, "phone", "invalid_phone"),
        ({"phone": "call me maybe", "programme": PROGRAMME}, "phone", "invalid_phone"),
        ({"programme": PROGRAMME}, "phone", "missing_field"),
        ({"phone": PARENT}, "programme", "missing_field"),
        ({"phone": PARENT, "programme": "no-such-programme"}, "programme", "unknown_programme"),
        (
            {"phone": PARENT, "programme": PROGRAMME, "baby_birth_date": "31/12/2026"},
            "baby_birth_date",
            "invalid_date",
        ),
        (
            {"phone": PARENT, "programme": PROGRAMME, "baby_birth_date": "2999-01-01"},
            "baby_birth_date",
            "invalid_date",
        ),
        ({"phone": PARENT, "programme": PROGRAMME, "language": "fr"}, "language", "unknown_language"),
        (
            {"phone": PARENT, "programme": PROGRAMME, "timezone": "Mars/Olympus"},
            "timezone",
            "invalid_timezone",
        ),
        ({"phone": PARENT, "programme": PROGRAMME, "channel": "fax"}, "channel", "invalid_channel"),
        ({"phone": PARENT, "programme": PROGRAMME, "colour": "blue"}, "colour", "unknown_field"),
        ({"phone": 5550100001, "programme": PROGRAMME}, "phone", "invalid_type"),
    ],
)
def test_invalid_family_is_refused_with_422_naming_the_field(api, outbox, body, field, code):
    error = error_of(api("POST", "/families", json=body), 422)
    assert (error["field"], error["code"]) == (field, code)
    assert outbox.outbox == []


@pytest.mark.parametrize("data", ["{not json", "[1, 2]", ""])
def test_body_that_is_not_a_json_object_is_a_400(api, data):
    response = api("POST", "/families", data=data, content_type="application/json")
    assert error_of(response, 400)["code"] == "invalid_json"


def test_families_are_listed_newest_first_in_pages(api, enroll_parent):
    ids = [enroll_parent(f"+1555010000{n}")["id"] for n in range(1, 4)]
    first = api("GET", "/families?limit=2").get_json()
    assert [f["id"] for f in first["data"]] == ids[::-1][:2]
    second = api("GET", f"/families?limit=2&cursor={first['next_cursor']}").get_json()
    assert [f["id"] for f in second["data"]] == [ids[0]]
    assert second["next_cursor"] is None


def test_family_list_filters_by_status_and_never_shows_another_clinics(api, enroll_parent, world):
    mine = enroll_parent()
    api(
        "POST",
        "/families",
        token=world.lakeside_token,
        json={"phone": "+15550100002", "programme": PROGRAMME},
    )
    api("DELETE", f"/families/{mine['id']}/enrollment")
    assert [f["id"] for f in api("GET", "/families").get_json()["data"]] == [mine["id"]]
    assert api("GET", "/families?status=active").get_json()["data"] == []
    assert len(api("GET", "/families?status=ended").get_json()["data"]) == 1


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("cursor=x", "cursor"),
        ("cursor=%C2%B2", "cursor"),  # "²" is a digit to str.isdigit, not to int()
        ("limit=" + "9" * 5000, "limit"),
        ("status=maybe", "status"),
        ("stauts=x", "stauts"),
    ],
)
def test_bad_list_parameters_are_422(api, query, field):
    assert error_of(api("GET", f"/families?{query}"), 422)["field"] == field


def test_get_family(api, enroll_parent):
    family = enroll_parent(baby_birth_date=(utcnow().date() - timedelta(days=60)).isoformat())
    response = api("GET", f"/families/{family['id']}")
    assert response.status_code == 200
    assert response.get_json() == family


def test_patch_updates_the_familys_details(api, enroll_parent):
    family = enroll_parent()
    response = api(
        "PATCH", f"/families/{family['id']}", json={"language": "es", "baby_name": "Ana", "timezone": None}
    )
    assert response.status_code == 200
    assert (response.get_json()["language"], response.get_json()["baby_name"]) == ("es", "Ana")


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"phone": "+15550100009"}, "phone", "read_only"),
        ({"programme": PROGRAMME}, "programme", "read_only"),
        ({"baby_birth_date": "yesterday"}, "baby_birth_date", "invalid_date"),
        ({"language": None}, "language", "invalid_value"),
    ],
)
def test_patch_with_invalid_fields_is_422(api, enroll_parent, body, field, code):
    family = enroll_parent()
    error = error_of(api("PATCH", f"/families/{family['id']}", json=body), 422)
    assert (error["field"], error["code"]) == (field, code)


def test_patch_with_bad_json_is_400(api, enroll_parent):
    family = enroll_parent()
    response = api("PATCH", f"/families/{family['id']}", data="nope", content_type="application/json")
    assert error_of(response, 400)["code"] == "invalid_json"


def test_unenroll_ends_the_enrollment_and_cancels_pending_checkins(api, enroll_parent, db):
    family = enroll_parent()
    with db.session() as session:
        enrollment = session.get(Enrollment, family["id"])
        session.add(
            CheckIn(
                family_id=enrollment.family_id,
                enrollment_id=enrollment.id,
                programme=PROGRAMME,
                step=1,
                due_at=utcnow() + timedelta(days=1),
                dedupe_key="test-1",
            )
        )
    response = api("DELETE", f"/families/{family['id']}/enrollment")
    assert response.status_code == 200 and response.get_json()["status"] == "ended"
    assert api("DELETE", f"/families/{family['id']}/enrollment").status_code == 200  # idempotent
    with db.session() as session:
        assert session.scalar(select(CheckIn.status)) == "cancelled"


def test_reenrolling_after_unenroll_asks_consent_again(api, enroll_parent, outbox):
    family = enroll_parent()
    api("DELETE", f"/families/{family['id']}/enrollment")
    response = api("POST", f"/families/{family['id']}/enrollment", json={"programme": PROGRAMME})
    assert response.status_code == 200
    assert (response.get_json()["status"], response.get_json()["ended_at"]) == ("awaiting_consent", None)
    assert len(outbox.outbox) == 2


def test_enrolling_an_active_family_in_another_programme_is_a_409(api, enroll_parent, db):
    family = enroll_parent()
    with db.session() as session:
        session.get(Enrollment, family["id"]).status = "active"
    response = api("POST", f"/families/{family['id']}/enrollment", json={"programme": "after_routine"})
    assert error_of(response, 409)["code"] == "enrolled_in_other_programme"


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [({}, "programme", "missing_field"), ({"programme": "nope"}, "programme", "unknown_programme")],
)
def test_enrollment_request_validation(api, enroll_parent, body, field, code):
    family = enroll_parent()
    error = error_of(api("POST", f"/families/{family['id']}/enrollment", json=body), 422)
    assert (error["field"], error["code"]) == (field, code)


def test_messages_show_only_what_was_said_while_the_clinic_followed_the_family(
    api, enroll_parent, db, world, text_bot
):
    with db.session() as session:
        family = Family(phone=PARENT, channel="sms")
        session.add(family)
        session.flush()
        before = utcnow() - timedelta(days=3)
        session.add(Message(family_id=family.id, direction="in", body="old news", created_at=before))
    enrolled = enroll_parent()
    text_bot("YES")
    with db.session() as session:
        family_id = session.get(Enrollment, enrolled["id"]).family_id
        session.add(Message(family_id=family_id, direction="in", body="he is shaking", level="routine"))
        session.add(
            Message(family_id=family_id, clinic_id=world.lakeside_id, direction="out", body="Lakeside only")
        )
    data = api("GET", f"/families/{enrolled['id']}/messages").get_json()["data"]
    assert [m["body"] for m in data if m["direction"] == "in"] == ["he is shaking", "YES"]
    assert [m["kind"] for m in data if m["direction"] == "out"] == ["reply"]  # the answer to YES, not the ask


def test_a_clinic_that_reenrolls_a_family_never_sees_the_time_in_between(api, enroll_parent, world, text_bot):
    """B enrolls, B unenrolls, A enrolls, the parent texts A; B re-enrolls: B never sees that text."""
    lakeside = api(
        "POST", "/families", token=world.lakeside_token, json={"phone": PARENT, "programme": PROGRAMME}
    ).get_json()
    text_bot("YES")
    text_bot("his legs shake when he cries")
    api("DELETE", f"/families/{lakeside['id']}/enrollment", token=world.lakeside_token)
    riverside = enroll_parent()
    text_bot("YES")
    text_bot("she has a fever of 101 and her arms keep shaking")  # meant for Riverside
    api(
        "POST",
        f"/families/{lakeside['id']}/enrollment",
        token=world.lakeside_token,
        json={"programme": PROGRAMME},
    )

    def lakeside_sees(resource: str) -> list[dict]:
        return api("GET", f"/families/{lakeside['id']}/{resource}", token=world.lakeside_token).get_json()

    def bodies() -> list[str]:
        return [m["body"] for m in lakeside_sees("messages")["data"] if m["direction"] == "in"]

    assert bodies() == ["his legs shake when he cries", "YES"]
    text_bot("SI")  # consents to Lakeside again: a new window from now
    text_bot("he is calmer today")
    assert bodies() == ["he is calmer today", "SI", "his legs shake when he cries", "YES"]
    export = lakeside_sees("export")
    assert "fever of 101" not in str(export) and export["alerts"] == []
    assert all(c["programme"] != "after_urgent" for c in lakeside_sees("checkins")["data"])
    riverside_bodies = [
        m["body"] for m in api("GET", f"/families/{riverside['id']}/messages").get_json()["data"]
    ]
    assert "she has a fever of 101 and her arms keep shaking" in riverside_bodies
    assert "his legs shake when he cries" not in riverside_bodies


def test_checkins_are_listed(api, enroll_parent, db):
    family = enroll_parent()
    with db.session() as session:
        enrollment = session.get(Enrollment, family["id"])
        for step in (1, 2):
            session.add(
                CheckIn(
                    family_id=enrollment.family_id,
                    enrollment_id=enrollment.id,
                    programme=PROGRAMME,
                    step=step,
                    due_at=utcnow() + timedelta(days=step),
                    dedupe_key=f"test-{step}",
                )
            )
    page = api("GET", f"/families/{family['id']}/checkins").get_json()
    assert [c["step"] for c in page["data"]] == [2, 1]
    assert page["data"][0]["status"] == "pending"


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PATCH", "", {"baby_name": "Not yours"}),
        ("POST", "/enrollment", {"programme": PROGRAMME}),
        ("DELETE", "/enrollment", None),
        ("GET", "/messages", None),
        ("GET", "/checkins", None),
        ("GET", "/export", None),
        ("DELETE", "", None),
    ],
)
def test_another_clinics_family_is_a_404_for_every_family_resource(
    api, enroll_parent, world, db, method, suffix, body
):
    family = enroll_parent()
    response = api(method, f"/families/{family['id']}{suffix}", token=world.lakeside_token, json=body)
    assert error_of(response, 404)["code"] == "not_found"
    with db.session() as session:
        enrollment = session.get(Enrollment, family["id"])
        assert (enrollment.status, enrollment.family.baby_name) == ("awaiting_consent", None)


def test_unknown_family_id_is_a_404(api):
    assert error_of(api("GET", "/families/999"), 404)["code"] == "not_found"
    assert error_of(api("GET", f"/families/{2**40}"), 404)["code"] == "not_found"


def test_export_holds_the_family_its_messages_checkins_and_alerts(api, enroll_parent, text_bot):
    family = enroll_parent()
    text_bot("YES")
    text_bot("her lips look blue")
    document = api("GET", f"/families/{family['id']}/export").get_json()
    assert document["family"]["id"] == family["id"]
    assert [m["body"] for m in document["messages"] if m["direction"] == "in"] == [
        "YES",
        "her lips look blue",
    ]
    assert [a["level"] for a in document["alerts"]] == ["emergency"]
    assert document["checkins"]


def test_erase_removes_the_family_for_good(api, enroll_parent, text_bot, db):
    family = enroll_parent()
    text_bot("her legs shake when she cries")
    response = api("DELETE", f"/families/{family['id']}")
    assert response.status_code == 200
    assert response.get_json()["erased"]["messages"] >= 2
    with db.session() as session:
        assert session.scalar(select(Family)) is None
        assert session.scalar(select(Message)) is None
    assert api("GET", f"/families/{family['id']}").status_code == 404


def test_erase_is_refused_while_another_clinic_follows_the_family(api, enroll_parent, world, db):
    family = enroll_parent()
    api("POST", "/families", token=world.lakeside_token, json={"phone": PARENT, "programme": PROGRAMME})
    assert error_of(api("DELETE", f"/families/{family['id']}"), 409)["code"] == "followed_elsewhere"
    with db.session() as session:
        assert session.scalar(select(Family)) is not None


# Each clinic's own details and consent -----------------------------------------------------

EMERGENCY = "his lips are blue and he is jerking"


def test_a_second_clinic_neither_sees_nor_changes_the_first_clinics_details(
    api, enroll_consenting_parent, world, text_bot
):
    born = (utcnow().date() - timedelta(days=50)).isoformat()
    details = {"baby_name": "Ana", "baby_birth_date": born, "language": "es", "timezone": "America/Denver"}
    riverside = enroll_consenting_parent(external_ref="MRN-7", **details)
    response = api(
        "POST", "/families", token=world.lakeside_token, json={"phone": PARENT, "programme": PROGRAMME}
    )
    assert response.status_code == 201
    lakeside = response.get_json()
    seen = {field: lakeside[field] for field in (*details, "external_ref")}
    assert seen == {
        "baby_name": None,
        "baby_birth_date": None,
        "language": "en",
        "timezone": None,
        "external_ref": None,
    }
    changed = {"baby_name": "Bea", "baby_birth_date": utcnow().date().isoformat(), "language": "en"}
    patched = api("PATCH", f"/families/{lakeside['id']}", token=world.lakeside_token, json=changed)
    assert patched.status_code == 200 and patched.get_json()["baby_name"] == "Bea"
    text_bot("YES")  # consents to Lakeside too: Riverside, consented first, stays the primary clinic

    kept = api("GET", f"/families/{riverside['id']}").get_json()
    assert {field: kept[field] for field in (*details, "external_ref")} == {
        **details,
        "external_ref": "MRN-7",
    }
    reply = reply_text(text_bot(EMERGENCY))
    assert "Ana" in reply and "Bea" not in reply


def test_a_yes_consents_only_to_the_clinic_whose_request_it_answers(
    api, enroll_parent, world, text_bot, outbox
):
    riverside = enroll_parent()
    lakeside = api(
        "POST", "/families", token=world.lakeside_token, json={"phone": PARENT, "programme": PROGRAMME}
    ).get_json()
    assert [sent.body.split(":")[0] for sent in outbox.outbox] == [
        "Riverside Pediatrics",
        "Lakeside Family Clinic",
    ]

    first = reply_text(text_bot("YES"))  # answers the latest request: Lakeside's
    assert first.startswith("Lakeside Family Clinic: thank you")
    assert (
        api("GET", f"/families/{lakeside['id']}", token=world.lakeside_token).get_json()["consent"] == "given"
    )
    assert api("GET", f"/families/{riverside['id']}").get_json()["consent"] == "requested"
    assert api("GET", f"/families/{riverside['id']}/checkins").get_json()["data"] == []

    second = reply_text(text_bot("si"))
    assert second.startswith("Riverside Pediatrics: gracias")
    assert api("GET", f"/families/{riverside['id']}").get_json()["consent"] == "given"
    assert api("GET", f"/families/{riverside['id']}/checkins").get_json()["data"]


def test_a_clinic_waiting_for_consent_gets_nothing_about_the_family(
    api, enroll_consenting_parent, world, text_bot
):
    riverside = enroll_consenting_parent(baby_name="Ana")
    lakeside = api(
        "POST", "/families", token=world.lakeside_token, json={"phone": PARENT, "programme": PROGRAMME}
    ).get_json()
    text_bot(EMERGENCY)

    def lakeside_get(path: str) -> dict:
        response = api("GET", path, token=world.lakeside_token)
        assert response.status_code == 200
        return response.get_json()

    assert lakeside_get(f"/families/{lakeside['id']}/messages")["data"] == []
    assert lakeside_get(f"/families/{lakeside['id']}/checkins")["data"] == []
    assert lakeside_get("/alerts")["data"] == []
    export = lakeside_get(f"/families/{lakeside['id']}/export")
    assert (export["messages"], export["checkins"], export["alerts"]) == ([], [], [])
    assert export["family"]["baby_name"] is None
    assert [a["family_id"] for a in api("GET", "/alerts").get_json()["data"]] == [riverside["id"]]


def test_a_walk_in_parent_gets_no_clinics_details_until_they_consent(api, enroll_parent, text_bot):
    assert "Ana" not in reply_text(text_bot(EMERGENCY))  # nobody enrolled them: "your baby"
    family = enroll_parent(baby_name="Ana")
    assert "Ana" not in reply_text(text_bot(EMERGENCY))  # enrolled, but not consented yet
    assert api("GET", f"/families/{family['id']}/messages").get_json()["data"] == []
    text_bot("YES")
    assert "Ana" in reply_text(text_bot(EMERGENCY))
    inbound = [m["body"] for m in api("GET", f"/families/{family['id']}/messages").get_json()["data"]]
    assert inbound.count(EMERGENCY) == 1  # only the one sent after YES


def test_after_stop_and_start_enrolling_again_sends_the_consent_request(api, enroll_parent, text_bot, outbox):
    text_bot("STOP")
    family = enroll_parent()
    assert (family["consent"], outbox.outbox) == ("blocked_opted_out", [])
    text_bot("START")  # back in, but START is not a YES to a request never sent
    assert api("GET", f"/families/{family['id']}").get_json()["consent"] == "not_requested"
    assert outbox.outbox == []
    assert enroll_parent()["consent"] == "requested"
    [request] = outbox.outbox
    assert "Riverside Pediatrics" in request.body
    assert reply_text(text_bot("YES")).startswith("Riverside Pediatrics: thank you")
