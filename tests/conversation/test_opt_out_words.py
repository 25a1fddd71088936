"""Plain-word opt-outs: a clear request to stop is STOP, symptom texts that say "stop" are
triaged, and a text that only talks about stopping the messages is told how to stop."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from smsbot.models import Alert, CheckIn, Event, Family
from tests.clinic_fixtures import *  # noqa: F403
from tests.conftest import PARENT, PUBLIC_URL, twilio_signature
from tests.db_faults import fault
from tests.web.test_webhook import reply_text

STOPPED = {"en": "Baby Tremor Helper: you are unsubscribed", "es": "Ayuda Temblores Bebe: ya no recibira"}
HOW_TO_STOP = {
    "en": "Baby Tremor Helper: to stop all our messages, reply STOP",
    "es": "Ayuda Temblores Bebe: para no",
}
ROUTINE = "his legs shake when he cries but stop when i hold them"


def opted_out(db) -> bool:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return session.scalar(select(Family.opted_out_at).where(Family.phone == PARENT)) is not None


def pending_checkins(db) -> int:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return len(session.scalars(select(CheckIn).where(CheckIn.status == "pending")).all())


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("stop texting me", "en"),
        ("Unsubscribe me", "en"),
        ("no more texts please", "en"),
        ("remove me from this list", "en"),
        ("Please stop sending these, she's fine now. Thank you!", "en"),
        ("I don't want these texts anymore", "en"),
        ("ya no me manden mensajes", "es"),
        ("No quiero más mensajes", "es"),
        ("dejen de escribirme por favor", "es"),
        ("Por favor denme de baja", "es"),
    ],
)
def test_a_clear_request_in_plain_words_is_a_stop(text_bot, db, text, lang):
    reply_text(text_bot(ROUTINE))
    assert pending_checkins(db) > 0

    assert reply_text(text_bot(text)).startswith(STOPPED[lang])

    assert opted_out(db) and pending_checkins(db) == 0
    with db.session() as session:
        event = session.scalar(select(Event).where(Event.kind == "opted_out"))
        assert event.detail["source"] == "plain_words"
    assert reply_text(text_bot(ROUTINE)) is None  # nothing more, until START


@pytest.mark.parametrize(
    "text",
    [
        "please stop the shaking",
        "how do I make it stop",
        "it won't stop",
        "her legs shake and won't stop, what do I do",
        "she stopped shaking when i held her",
        "le tiemblan las piernas y no para",
        "I can't stop worrying, thanks for all the messages",
    ],
)
def test_symptom_texts_that_say_stop_are_triaged_not_opted_out(text_bot, db, text):
    reply = reply_text(text_bot(text))
    assert not reply.startswith((STOPPED["en"], STOPPED["es"], HOW_TO_STOP["en"], HOW_TO_STOP["es"]))
    assert not opted_out(db)


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("how do I stop these texts?", "en"),
        ("will the texts stop after a week?", "en"),
        ("how do i unsubscribe", "en"),
        ("can you stop texting me at night", "en"),
        ("please don't stop texting me, it helps", "en"),
        ("¿cómo le hago para que paren los mensajes?", "es"),
        ("pueden dejar de mandarme mensajes en la noche?", "es"),
    ],
)
def test_talk_about_stopping_the_messages_gets_how_to_stop(text_bot, db, text, lang):
    assert reply_text(text_bot(text)).startswith(HOW_TO_STOP[lang])
    assert not opted_out(db)


def test_a_plain_opt_out_with_a_red_flag_still_alerts_the_clinic_that_followed_the_family(
    text_bot, db, enroll_parent, world
):
    enroll_parent(PARENT)
    reply_text(text_bot("YES"))

    reply = reply_text(text_bot("stop texting me!! his lips are blue and he is jerking"))

    assert reply.startswith(STOPPED["en"]) and "911" in reply
    assert opted_out(db)
    with db.session() as session:
        alert = session.scalar(select(Alert))
        assert (alert.level, alert.clinic_id) == ("emergency", world.riverside_id)


def test_a_plain_opt_out_is_confirmed_even_when_twilio_answers_the_keywords(make_app):
    app = make_app(twilio_advanced_opt_out=True)

    def text(body: str, sid: str) -> str | None:
        form = {"MessageSid": sid, "From": PARENT, "Body": body}
        signature = twilio_signature(PUBLIC_URL + "/twilio/sms", form)
        response = app.test_client().post("/twilio/sms", data=form, headers={"X-Twilio-Signature": signature})
        return reply_text(response)

    assert text("START", "SM" + "1" * 32) is None  # Twilio answered that one itself
    assert text("no more texts", "SM" + "2" * 32).startswith(STOPPED["en"])


def test_a_plain_opt_out_whose_processing_failed_gets_no_sorry(text_bot, db):
    with fault(db, "processed"):
        assert reply_text(text_bot("please stop texting me")) is None
