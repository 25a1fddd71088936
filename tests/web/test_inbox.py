"""The two-way inbox through the API: staff text a family through the real Twilio client (to
the local fake Twilio API), signed with the clinic's name and recorded with the sender; the
parent's answer lands in the same thread; opt-out and consent are respected; replying can
acknowledge the family's open alert."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from smsbot.alerts import timeline
from smsbot.models import Alert, Message
from smsbot.web import shapes
from tests.clinic_fixtures import *  # noqa: F403
from tests.conftest import PARENT
from tests.twilio_fixtures import *  # noqa: F403
from tests.twilio_fixtures import SENDER

pytestmark = pytest.mark.usefixtures("app_on_fake_twilio")


@pytest.fixture
def family(enroll_consenting_parent) -> dict:  # type: ignore[no-untyped-def, type-arg]
    return enroll_consenting_parent(baby_name="Ana")


def send(api, family_id: int, token: str | None = None, **body):  # type: ignore[no-untyped-def]
    kwargs = {"token": token} if token else {}
    return api("POST", f"/families/{family_id}/messages", json=body, **kwargs)


def test_staff_text_reaches_the_parent_signed_and_the_answer_lands_in_the_same_thread(
    api, family, fake, text_bot
):
    sent = send(api, family["id"], text="Hi, this is nurse Kim. How is Ana doing?")
    assert sent.status_code == 201, sent.get_json()
    answer = sent.get_json()
    shapes.StaffMessageSent.model_validate(answer)  # the shape the OpenAPI document gives (no extras)
    assert answer["acknowledged_alerts"] == [] and answer["error"] is None
    assert (answer["message"]["kind"], answer["message"]["status"]) == ("staff", "queued")
    assert answer["message"]["sent_by"] == "api:ehr"
    to_parent = fake.sent_to(PARENT)[-1]
    assert to_parent.form["Body"] == "Riverside Pediatrics: Hi, this is nurse Kim. How is Ana doing?"
    assert to_parent.form["From"] == SENDER

    assert text_bot("she is better now, thank you").status_code == 200
    thread = api("GET", f"/families/{family['id']}/messages").get_json()["data"]
    # Newest first: the parent's answer right after the nurse's text, in the one thread.
    inbound = next(m for m in thread if m["direction"] == "in")
    assert inbound["body"] == "she is better now, thank you"
    staff = next(m for m in thread if m["kind"] == "staff")
    assert thread.index(inbound) < thread.index(staff)
    assert staff["sent_by"] == "api:ehr"


def test_quick_reply_goes_in_the_family_language(api, enroll_consenting_parent, fake, text_bot):
    family = enroll_consenting_parent(baby_name="Luz", language="es")
    assert text_bot("hola, le tiemblan las piernitas").status_code == 200  # a Spanish text
    sent = send(api, family["id"], template="please_call")
    assert sent.status_code == 201, sent.get_json()
    body = fake.sent_to(PARENT)[-1].form["Body"]
    assert body.startswith("Riverside Pediatrics: Por favor llame a la clinica sobre Luz")
    assert "911" in body


def test_a_family_that_texted_stop_gets_no_staff_text(api, family, fake, text_bot):
    assert text_bot("STOP").status_code == 200
    before = len(fake.sent_to(PARENT))
    refused = send(api, family["id"], text="Are you there?")
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "opted_out"
    assert len(fake.sent_to(PARENT)) == before


def test_no_staff_text_before_the_family_agreed(api, enroll_parent, fake, db):
    family = enroll_parent(baby_name="Ana")  # consent asked, no YES yet
    refused = send(api, family["id"], text="Hello")
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (409, "no_consent")
    with db.session() as session:
        assert session.scalar(select(Message).where(Message.kind == "staff")) is None


def test_replying_can_acknowledge_the_open_alert_in_the_same_step(api, family, text_bot, db):
    assert text_bot("his lips are blue and his arms keep jerking").status_code == 200
    (open_alert,) = api("GET", "/alerts?status=open").get_json()["data"]
    sent = send(api, family["id"], template="calling_now", acknowledge=True)
    assert sent.status_code == 201, sent.get_json()
    assert sent.get_json()["acknowledged_alerts"] == [open_alert["id"]]
    assert api("GET", "/alerts?status=open").get_json()["data"] == []
    with db.session() as session:
        alert = session.get(Alert, open_alert["id"])
        assert (alert.acknowledged_by, alert.ack_note) == ("api:ehr", "Texted the parent.")
        kinds = [entry.kind for entry in timeline.entries(session, alert.id)]
    assert kinds[-2:] == ["staff_text", "acknowledged"]


def test_a_text_the_provider_refuses_is_stored_failed_and_acknowledges_nothing(api, family, fake, text_bot):
    assert text_bot("his lips are blue and his arms keep jerking").status_code == 200
    fake.fail_number(PARENT, code=30006)
    sent = send(api, family["id"], text="Calling you now", acknowledge=True)
    assert sent.status_code == 201
    answer = sent.get_json()
    assert answer["message"]["status"] == "failed"
    assert answer["error"].startswith("Twilio 30006")
    assert answer["acknowledged_alerts"] == []
    assert len(api("GET", "/alerts?status=open").get_json()["data"]) == 1


def test_another_clinic_cannot_text_the_family(api, family, world, fake):
    before = fake.count()
    refused = send(api, family["id"], token=world.lakeside_token, text="Hello")
    assert refused.status_code == 404
    assert fake.count() == before


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "invalid_text"),
        ({"text": "   "}, "invalid_text"),
        ({"text": "x" * 481}, "invalid_text"),
        ({"text": "hi", "template": "please_call"}, "text_and_template"),
        ({"template": "no_such_reply"}, "unknown_template"),
        ({"template": 3}, "unknown_template"),
        ({"text": "hi", "acknowledge": "yes"}, "invalid_acknowledge"),
        ({"text": "hi", "sender": "someone"}, "unknown_field"),
    ],
)
def test_bad_staff_texts_are_refused_with_the_field_named(api, family, fake, body, code):
    before = fake.count()
    refused = send(api, family["id"], **body)
    assert refused.status_code == 422, refused.get_json()
    assert refused.get_json()["error"]["code"] == code
    assert fake.count() == before
