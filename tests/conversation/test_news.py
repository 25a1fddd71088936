"""Sensitive news: a loss or a baby in hospital gets a short, humane reply (never the
greeting), stops or pauses automated messages, and puts a notice (never a page) in the
queue of the family's clinic; the parent's "she's home" or staff resume them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from smsbot import privacy
from smsbot.alerts import deliver_pending_alerts
from smsbot.checkins.dispatch import dispatch_due
from smsbot.models import Alert, AlertDelivery, CheckIn, Event, Family, utcnow
from smsbot.triage import assess
from tests.clinic_fixtures import *  # noqa: F403
from tests.clinic_fixtures import ONCALL
from tests.conftest import PARENT
from tests.web.test_webhook import reply_text

GREETINGS = ("Hi, I'm an automated helper", "Hola, soy una guia automatica")
LOSS = {"en": "We are so deeply sorry for the loss of your baby", "es": "Lamentamos profundamente la perdida"}
HOSPITAL = {"en": "Thank you for letting us know, and we hope", "es": "Gracias por avisarnos"}
HOME = {"en": "Welcome home! Your check-ins will start again", "es": "Bienvenidos a casa!"}

LOSS_TEXTS = [
    ("Ana died last night", "en"),
    ("our son passed away on sunday", "en"),
    ("we lost him this morning", "en"),
    ("she's gone. she passed in her sleep", "en"),
    ("she didn't make it", "en"),
    ("the doctors couldn't save her", "en"),
    ("mi bebé murió", "es"),
    ("falleció anoche mi niña", "es"),
    ("se nos fue ayer", "es"),
    ("perdimos al bebé", "es"),
]
HOSPITAL_TEXTS = [
    ("they admitted her to the NICU", "en"),
    ("he's in the PICU with RSV", "en"),
    ("she was hospitalized yesterday", "en"),
    ("baby is in the hospital, they are running tests", "en"),
    ("está internada desde ayer", "es"),
    ("lo internaron anoche", "es"),
    ("mi niño está hospitalizado", "es"),
    ("la bebé está en terapia intensiva", "es"),
]


@pytest.fixture
def followed(enroll_parent, text_bot, db) -> dict:  # type: ignore[no-untyped-def, type-arg]
    """Ana's parent, enrolled at Riverside (which has an on-call phone) and consented."""
    family = enroll_parent(PARENT)
    assert reply_text(text_bot("YES"))
    assert pending(db) > 0
    return family


def pending(db) -> int:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return session.scalar(select(func.count(CheckIn.id)).where(CheckIn.status == "pending"))


def hold(db) -> str | None:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return session.scalar(select(Family.followup_hold).where(Family.phone == PARENT))


def notices(db) -> list[tuple[str, str, int | None]]:  # type: ignore[no-untyped-def]
    with db.session() as session:
        rows = session.execute(select(Alert.level, Alert.reason, Alert.clinic_id).order_by(Alert.id))
        return [tuple(row) for row in rows]


@pytest.mark.parametrize(("text", "lang"), LOSS_TEXTS)
def test_a_loss_gets_a_humane_reply_ends_check_ins_and_tells_the_clinic(
    text_bot, db, outbox, app, world, followed, text, lang
):
    reply = reply_text(text_bot(text))

    assert reply.startswith(LOSS[lang]) and not reply.startswith(GREETINGS)
    assert "911" not in reply
    assert hold(db) == "loss" and pending(db) == 0
    assert notices(db) == [("sensitive", "loss", world.riverside_id)]
    # A notice is read in the queue: it never pages the on-call phone nor calls the webhook.
    outbox.outbox.clear()
    deliver_pending_alerts(db, outbox, app.extensions["smsbot.settings"])
    with db.session() as session:
        assert session.scalar(select(func.count(AlertDelivery.id))) == 0
    assert all(message.to != ONCALL for message in outbox.outbox)


@pytest.mark.parametrize(("text", "lang"), HOSPITAL_TEXTS)
def test_a_baby_in_hospital_gets_a_humane_reply_and_check_ins_pause(
    text_bot, db, world, followed, text, lang
):
    reply = reply_text(text_bot(text))

    assert reply.startswith(HOSPITAL[lang]) and "911" not in reply
    assert hold(db) == "hospital" and pending(db) == 0
    assert notices(db) == [("sensitive", "hospital", world.riverside_id)]


def test_nothing_is_scheduled_or_sent_while_the_baby_is_in_hospital(text_bot, db, app, outbox, followed):
    reply_text(text_bot("they admitted her to the NICU"))
    # Jitters told later are triaged as usual, but not followed up while the pause lasts.
    assert reply_text(text_bot("her legs shake when she cries")).startswith("Likely normal jitters")
    assert pending(db) == 0
    with db.session() as session:
        family = session.scalar(select(Family).where(Family.phone == PARENT))
        # A check-in that slipped through (scheduled before the news, claimed later) is cancelled.
        session.add(
            CheckIn(
                family_id=family.id,
                programme="after_routine",
                step=1,
                status="pending",
                due_at=utcnow() - timedelta(minutes=1),
                dedupe_key="slipped",
            )
        )
    outbox.outbox.clear()
    report = dispatch_due(db, outbox, app.extensions["smsbot.settings"], utcnow())
    assert report.sent == 0 and outbox.outbox == []
    with db.session() as session:
        assert session.scalar(select(CheckIn.last_error).where(CheckIn.dedupe_key == "slipped")) == (
            "automated messages held: hospital"
        )


@pytest.mark.parametrize(
    ("text", "lang"),
    [("she's home!", "en"), ("we're home from the hospital", "en"), ("ya está en casa", "es")],
)
def test_the_parent_saying_the_baby_is_home_resumes_check_ins(text_bot, db, world, followed, text, lang):
    reply_text(text_bot("está internada" if lang == "es" else "they admitted her to the NICU"))
    assert pending(db) == 0

    assert reply_text(text_bot(text)).startswith(HOME[lang])

    assert hold(db) is None and pending(db) > 0
    assert [reason for _, reason, _ in notices(db)] == ["hospital", "home"]
    # Saying it again changes nothing, and tells the clinic nothing new.
    assert not reply_text(text_bot(text)).startswith(HOME[lang])
    assert [reason for _, reason, _ in notices(db)] == ["hospital", "home"]


def test_home_after_a_loss_resumes_nothing(text_bot, db, followed):
    reply_text(text_bot("she passed away last night"))
    reply_text(text_bot("we're home now"))
    assert hold(db) == "loss" and pending(db) == 0


def test_repeated_news_tells_the_clinic_once(text_bot, db, followed):
    reply_text(text_bot("they admitted her to the NICU"))
    assert reply_text(text_bot("she's still in the NICU")).startswith(HOSPITAL["en"])
    assert [reason for _, reason, _ in notices(db)] == ["hospital"]
    assert reply_text(text_bot("she died this morning")).startswith(LOSS["en"])
    assert [reason for _, reason, _ in notices(db)] == ["hospital", "loss"]
    assert hold(db) == "loss"


def test_a_red_flag_reported_now_with_the_news_is_triaged_at_its_level(text_bot, db, outbox, world, followed):
    outbox.outbox.clear()
    reply = reply_text(text_bot("she's in the NICU and she is having a seizure right now"))

    assert reply.startswith("Call 911 now")  # the emergency number, and only then
    assert hold(db) == "hospital" and pending(db) == 0  # no emergency follow-up either
    assert notices(db) == [
        ("emergency", "emergency", world.riverside_id),
        ("sensitive", "hospital", world.riverside_id),
    ]


def test_a_past_nicu_stay_is_not_news(text_bot, db, followed):
    text = "she spent 6 days in the nicu after birth, now her legs shake when she cries"
    reply = reply_text(text_bot(text))
    # Triaged as the tremor report it is (the level is triage's), never answered as news.
    assert not reply.startswith((HOSPITAL["en"], HOME["en"], LOSS["en"]))
    assert not [flag for flag in assess(text).flags if flag.startswith("news-")]
    assert hold(db) is None and not [n for n in notices(db) if n[0] == "sensitive"]


def test_news_from_an_opted_out_family_gets_no_reply_but_still_holds_and_tells_the_clinic(
    text_bot, db, world, followed
):
    reply_text(text_bot("STOP"))
    assert reply_text(text_bot("mi bebé murió")) is None
    assert hold(db) == "loss"


def test_a_walk_in_texter_gets_the_reply_without_any_clinic(text_bot, db):
    assert reply_text(text_bot("our baby passed away")).startswith(LOSS["en"])
    assert notices(db) == [("sensitive", "loss", None)]


def test_staff_resume_through_the_api_restarts_the_programme(api, text_bot, db, followed):
    reply_text(text_bot("they admitted her to the NICU"))
    family = api("GET", f"/families/{followed['id']}").get_json()
    assert family["followup_hold"] == "hospital" and family["followup_hold_since"].endswith("Z")

    resumed = api("POST", f"/families/{followed['id']}/resume")

    assert resumed.status_code == 200
    assert (resumed.get_json()["followup_hold"], resumed.get_json()["followup_hold_since"]) == (None, None)
    assert hold(db) is None and pending(db) > 0
    assert api("POST", f"/families/{followed['id']}/resume").status_code == 200  # idempotent
    with db.session() as session:
        event = session.scalar(select(Event).where(Event.kind == "followup_resumed"))
        assert event.detail == {"was": "hospital", "by": "api:ehr"}


def test_another_clinic_cannot_resume_a_family_it_does_not_follow(api, text_bot, db, world, followed):
    reply_text(text_bot("they admitted her to the NICU"))
    response = api("POST", f"/families/{followed['id']}/resume", token=world.lakeside_token)
    assert response.status_code == 404 and hold(db) == "hospital"


@pytest.mark.parametrize(
    ("text", "flag"),
    [
        ("he passed away in his sleep", "news-loss"),
        ("we lost him on friday", "news-loss"),
        ("she's gone", "news-loss"),
        ("she didn't make it through the night", "news-loss"),
        ("our little girl passed", "news-loss"),
        ("falleció mi bebé", "news-loss"),
        ("se nos fue", "news-loss"),
        ("ya es un angelito", "news-loss"),
        ("está internada", "news-hospital"),
        ("he is in the PICU", "news-hospital"),
        ("she's in the nicu", "news-hospital"),
        ("she got admitted last night", "news-hospital"),
        ("he was hospitalized for bronchiolitis", "news-hospital"),
        ("they're keeping him overnight", "news-hospital"),
        ("está en la UCIN", "news-hospital"),
        ("they discharged her today", "news-home"),
        ("le dieron de alta", "news-home"),
    ],
)
def test_triage_knows_sensitive_news_however_it_is_worded(text, flag):
    assert flag in assess(text).flags


@pytest.mark.parametrize(
    "text",
    [
        "my grandma passed away and now his legs shake",
        "she passed out",
        "he's gone limp and blue",
        "she's gone back to sleep",
        "I thought we lost him but he's breathing",
        "he's dead tired",
        "she passed her hearing test",
        "we didn't make it to the appointment",
        "is she going to die?",
        "mi abuela murió",
        "casi se muere, se puso morada",
        "was in nicu for low sugar. now hes jittery again",
        "she isn't in the hospital",
        "estuvo internada al nacer",
        "we took her to the ER and they sent us home",
    ],
)
def test_look_alikes_are_not_sensitive_news(text):
    assert not [flag for flag in assess(text).flags if flag.startswith("news-")]


def test_the_familys_privacy_export_holds_the_news(text_bot, db):
    reply_text(text_bot("they admitted her to the NICU"))
    with db.session() as session:
        (family,) = privacy.find_family(session, PARENT)
        exported = privacy.export_family(session, family)["family"]
    assert exported["followup_hold"] == "hospital" and exported["followup_hold_since"]


def test_a_bereaved_parent_asking_how_to_stop_the_texts_gets_the_loss_reply(text_bot, db, followed):
    reply = reply_text(text_bot("she passed away on friday. how do I stop these texts?"))
    assert reply.startswith(LOSS["en"]) and hold(db) == "loss" and pending(db) == 0
