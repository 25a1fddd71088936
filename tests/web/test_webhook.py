"""The Twilio inbound webhook, signed exactly as Twilio signs requests."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import func, select

from smsbot.models import Family, Message
from tests.conftest import PARENT, PUBLIC_URL, twilio_signature


def reply_text(response) -> str | None:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/xml"
    message = ET.fromstring(response.get_data(as_text=True)).find("Message")
    return None if message is None else message.text


def count(db, *criteria) -> int:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return session.scalar(select(func.count(Message.id)).where(*criteria))


def family(db, phone: str = PARENT) -> Family:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return session.scalar(select(Family).where(Family.phone == phone))


def test_emergency_text_gets_emergency_reply_leading_with_the_number(text_bot, db):
    reply = reply_text(text_bot("his lips are blue and his arms keep jerking"))
    assert "911" in reply.split(".")[0]
    with db.session() as session:
        inbound = session.scalar(select(Message).where(Message.direction == "in"))
        assert inbound.level == "emergency"
        assert inbound.status == "processed"
        outbound = session.scalar(select(Message).where(Message.direction == "out"))
        assert outbound.reply_to_id == inbound.id and outbound.body == reply


def test_routine_text_gets_reassurance_with_hold_test(text_bot):
    reply = reply_text(text_bot("her legs shake when she cries but stop when i hold them"))
    assert "hold" in reply.lower()
    assert "not a diagnosis" in reply.lower()


def test_wrong_signature_is_refused_and_nothing_stored(client, db):
    form = {"MessageSid": "SM" + "1" * 32, "From": PARENT, "Body": "baby is blue"}
    response = client.post("/twilio/sms", data=form, headers={"X-Twilio-Signature": "bm90IHJpZ2h0"})
    assert response.status_code == 403
    assert count(db) == 0 and family(db) is None


def test_signature_for_another_url_is_refused(client, db):
    form = {"MessageSid": "SM" + "2" * 32, "From": PARENT, "Body": "hi"}
    signature = twilio_signature("https://evil.example.org/twilio/sms", form)
    response = client.post("/twilio/sms", data=form, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403
    assert count(db) == 0


def test_unsigned_request_from_the_internet_is_refused(client, db):
    form = {"MessageSid": "SM" + "3" * 32, "From": PARENT, "Body": "hi"}
    response = client.post("/twilio/sms", data=form, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert response.status_code == 403
    assert count(db) == 0


def test_unsigned_request_from_loopback_is_accepted_with_console_transport(client):
    form = {"From": PARENT, "Body": "hi"}
    response = client.post("/twilio/sms", data=form, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert reply_text(response)


def test_unsigned_loopback_request_is_refused_with_twilio_transport(make_app):
    app = make_app(transport="twilio", twilio_account_sid="AC" + "0" * 32, sender="+15005550006")
    response = app.test_client().post("/twilio/sms", data={"From": PARENT, "Body": "hi"})
    assert response.status_code == 403


def test_signature_checked_against_public_url_behind_a_proxy(client):
    form = {"MessageSid": "SM" + "4" * 32, "From": PARENT, "Body": "hi"}
    signature = twilio_signature(PUBLIC_URL + "/twilio/sms?x=1", form)
    response = client.post(
        "/twilio/sms?x=1",
        data=form,
        headers={"X-Twilio-Signature": signature},
        base_url="http://10.0.0.5:8000",
    )
    assert reply_text(response)


def test_retry_with_same_message_sid_replies_once(text_bot, db):
    first = reply_text(text_bot("she has a fever of 38.5 and is shaking", sid="SM" + "5" * 32))
    second = reply_text(text_bot("she has a fever of 38.5 and is shaking", sid="SM" + "5" * 32))
    assert first == second
    assert count(db, Message.direction == "in") == 1
    assert count(db, Message.direction == "out") == 1


def test_stop_opts_out_and_nothing_more_is_sent(text_bot, db):
    confirmation = reply_text(text_bot("STOP"))
    assert "START" in confirmation
    assert family(db).opted_out
    assert reply_text(text_bot("his legs are shaking a bit when he cries")) is None
    assert reply_text(text_bot("HELP")) is None
    assert reply_text(text_bot("STOP")) is None  # no second confirmation either


def test_start_opts_back_in(text_bot, db):
    reply_text(text_bot("stop"))
    assert "STOP" in reply_text(text_bot("Start"))
    assert not family(db).opted_out
    assert reply_text(text_bot("his legs shake when he cries")) is not None


def test_spanish_stop_keyword_answers_in_spanish(text_bot, db):
    reply = reply_text(text_bot("Parar"))
    assert "INICIAR" in reply
    assert family(db).opted_out and family(db).language == "es"


def test_keywords_match_only_the_whole_message(text_bot, db):
    reply_text(text_bot("please stop the shaking, her legs tremble when she cries"))
    assert not family(db).opted_out
    reply_text(text_bot("  Stop!! "))
    assert family(db).opted_out


def test_help_explains_the_service_and_how_to_stop(text_bot):
    reply = reply_text(text_bot("help"))
    for expected in ("not a diagnosis", "911", "STOP", "rates may apply"):
        assert expected in reply


def test_advanced_opt_out_setting_leaves_the_keyword_reply_to_twilio(make_app):
    app = make_app(twilio_advanced_opt_out="true")
    form = {"MessageSid": "SM" + "6" * 32, "From": PARENT, "Body": "STOP"}
    response = app.test_client().post(
        "/twilio/sms",
        data=form,
        headers={"X-Twilio-Signature": twilio_signature(PUBLIC_URL + "/twilio/sms", form)},
    )
    assert reply_text(response) is None


def test_media_only_message_asks_for_a_description(text_bot):
    reply = reply_text(text_bot("", NumMedia="1", MediaUrl0="https://api.twilio.com/x.jpg"))
    assert "photos or videos" in reply


def test_empty_body_gets_a_prompt(text_bot):
    assert "empty message" in reply_text(text_bot(""))


def test_longest_twilio_body_is_triaged(text_bot):
    body = ("we had a long day, " * 90)[:1550] + " now her lips are blue"
    assert len(body) <= 1600
    assert "911" in reply_text(text_bot(body))


def test_a_long_whatsapp_text_ending_in_a_red_flag_is_stored_whole_and_triaged(text_bot, db):
    body = ("we had a long day, " * 120)[:1960] + " his lips are blue and he is jerking"
    assert 1600 < len(body) <= 4096
    assert "911" in reply_text(text_bot(body, sender="whatsapp:+15550100001"))
    with db.session() as session:
        stored = session.scalar(select(Message).where(Message.direction == "in"))
    assert (stored.body, stored.level) == (body, "emergency")


@pytest.mark.parametrize(("sender", "limit"), [("+15550100001", 1600), ("whatsapp:+15550100001", 4096)])
def test_a_text_over_its_channels_limit_is_stored_cut_and_triaged_never_refused(text_bot, db, sender, limit):
    body = "we had a long day. " * 400 + "now her lips are blue"
    assert len(body) > limit
    assert "911" in reply_text(text_bot(body, sender=sender))
    with db.session() as session:
        stored = session.scalar(select(Message).where(Message.direction == "in"))
    assert len(stored.body) == limit
    assert "[…]" in stored.body and stored.body.endswith("now her lips are blue")
    assert stored.level == "emergency"


def test_odd_unicode_gets_a_reply(text_bot):
    odd = "\u200b\u202e\ufeffhola 👶🏽\u0301\u0000 ¿qué?"
    assert reply_text(text_bot(odd))


def test_bad_sender_is_a_clear_400(text_bot, db):
    response = text_bot("hi", sender="not-a-number")
    assert response.status_code == 400
    assert response.get_json()["error"]["message"].startswith("From:")
    assert count(db) == 0


def test_bad_num_media_is_a_clear_400(text_bot):
    assert text_bot("hi", NumMedia="lots").status_code == 400


def test_whatsapp_sender_is_its_own_channel(text_bot, db):
    reply_text(text_bot("hi", sender="whatsapp:" + PARENT))
    with db.session() as session:
        assert session.scalar(select(Family.channel)) == "whatsapp"


def test_message_bodies_never_reach_the_logs(text_bot, caplog):
    caplog.set_level(logging.DEBUG)
    reply_text(text_bot("secretword her lips are blue"))
    assert "secretword" not in caplog.text
    assert PARENT not in caplog.text


def test_healthz_reports_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_unknown_route_is_a_json_404(client):
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
