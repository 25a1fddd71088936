"""WhatsApp's 24-hour window, through the real Twilio client against the local fake Twilio API:
outside it a check-in goes as the approved template named in rules/whatsapp.yaml; 63016 is
classified; with the clinic's SMS fallback on, the check-in goes by SMS instead."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from smsbot.checkins.dispatch import dispatch_due
from smsbot.messaging import TransportError, whatsapp
from smsbot.models import CheckIn, Family
from tests.checkin_fixtures import (
    PARENT_PHONE,
    RULES_DIR,
    add_checkin,
    add_enrollment,
    all_checkins,
    checkin_database,
    make_settings,
)
from tests.twilio_fixtures import *  # noqa: F403
from tests.twilio_fixtures import SENDER

NOW = datetime(2026, 12, 1, 16, 0)  # 11:00 in New York: outside quiet hours
WHATSAPP = f"whatsapp:{PARENT_PHONE}"
CHECKIN_EN = "HX" + "1" * 32
CHECKIN_ES = "HX" + "2" * 32

db = pytest.fixture(checkin_database, name="db")


@pytest.fixture
def rules_with_templates(tmp_path: Path) -> Path:
    """The shipped rules, plus an approved check-in template per language."""
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    (rules / "whatsapp.yaml").write_text(
        "kind: whatsapp\n"
        "templates:\n"
        "  checkin:\n"
        f"    content_sid: {{en: {CHECKIN_EN}, es: {CHECKIN_ES}}}\n"
        "    variables: [clinic, baby]\n",
        encoding="utf-8",
    )
    return rules


def whatsapp_family(db, *, last_text_ago: timedelta, fallback: bool = False) -> None:  # type: ignore[no-untyped-def]
    """Ana's parent on WhatsApp, enrolled at Riverside, with one check-in due now."""
    with db.session() as session:
        family = Family(
            phone=PARENT_PHONE,
            channel="whatsapp",
            language="en",
            timezone="America/New_York",
            baby_name="Ana",
            last_contact_at=NOW - last_text_ago,
        )
        session.add(family)
        session.flush()
        enrollment = add_enrollment(session, family, whatsapp_sms_fallback=fallback)
        checkin = add_checkin(session, family, due_at=NOW, dedupe_key="ana-1")
        checkin.enrollment_id = enrollment.id


def only_checkin(db) -> CheckIn:  # type: ignore[no-untyped-def]
    (checkin,) = all_checkins(db)
    return checkin


def test_a_family_whose_last_text_is_25_hours_old_gets_its_checkin_as_a_template(
    db, fake, twilio, rules_with_templates
):
    whatsapp_family(db, last_text_ago=timedelta(hours=25))
    report = dispatch_due(db, twilio, make_settings(rules_dir=str(rules_with_templates)), NOW)
    assert report.sent == 1
    (sent,) = fake.sent_to(WHATSAPP)
    assert sent.form["ContentSid"] == CHECKIN_EN
    assert json.loads(sent.form["ContentVariables"]) == {"1": "Riverside Pediatrics", "2": "Ana"}
    assert "Body" not in sent.form
    assert only_checkin(db).status == "sent"


def test_within_the_window_the_checkin_goes_as_free_text(db, fake, twilio, rules_with_templates):
    whatsapp_family(db, last_text_ago=timedelta(hours=23))
    dispatch_due(db, twilio, make_settings(rules_dir=str(rules_with_templates)), NOW)
    (sent,) = fake.sent_to(WHATSAPP)
    assert "ContentSid" not in sent.form and "Ana" in sent.form["Body"]


def test_error_63016_is_classified_as_the_whatsapp_window(fake, twilio):
    fake.close_whatsapp_session(WHATSAPP)
    with pytest.raises(TransportError) as refused:
        twilio.send(WHATSAPP, "How is Ana today?")
    error = refused.value
    assert (error.code, error.permanent, error.window, error.opted_out) == (63016, True, True, False)
    assert str(error) == (
        "Twilio 63016: outside WhatsApp's 24-hour window: an approved template is needed (HTTP 400)"
    )
    # The template still goes.
    twilio.send(WHATSAPP, "", content_sid=CHECKIN_EN, content_variables={"1": "Riverside", "2": "Ana"})


def test_with_the_sms_fallback_on_a_refused_checkin_goes_by_sms(db, fake, twilio):
    # We believe the window is open (a text 2 hours ago), but WhatsApp refuses it: 63016.
    whatsapp_family(db, last_text_ago=timedelta(hours=2), fallback=True)
    fake.close_whatsapp_session(WHATSAPP)
    report = dispatch_due(db, twilio, make_settings(), NOW)
    assert report.sent == 1
    assert fake.sent_to(WHATSAPP) == []
    (sms,) = fake.sent_to(PARENT_PHONE)
    assert "Ana" in sms.form["Body"] and sms.form["From"] == SENDER
    assert only_checkin(db).status == "sent"


def test_outside_the_window_with_no_template_the_fallback_goes_by_sms(db, fake, twilio):
    whatsapp_family(db, last_text_ago=timedelta(days=3), fallback=True)
    dispatch_due(db, twilio, make_settings(), NOW)
    assert len(fake.sent_to(PARENT_PHONE)) == 1 and fake.sent_to(WHATSAPP) == []


def test_outside_the_window_with_no_template_nor_fallback_nothing_is_sent_and_it_says_why(db, fake, twilio):
    whatsapp_family(db, last_text_ago=timedelta(days=3))
    report = dispatch_due(db, twilio, make_settings(), NOW)
    assert (report.sent, report.failed) == (0, 1)
    assert fake.count() == 0
    checkin = only_checkin(db)
    assert checkin.status == "failed"
    assert "24-hour window" in checkin.last_error


def test_a_whatsapp_rules_file_with_a_bad_content_sid_names_the_line(tmp_path: Path):
    path = tmp_path / "whatsapp.yaml"
    path.write_text("kind: whatsapp\ntemplates:\n  checkin:\n    content_sid: {en: HX12, es: HX34}\n")
    problems = whatsapp.check_file(
        path, {"kind": "whatsapp", "templates": {"checkin": {"content_sid": {"en": "HX12", "es": "HX34"}}}}
    )
    assert problems and all(p.line == 4 for p in problems)


def test_the_window_is_measured_from_the_last_inbound_text():
    family = Family(phone=PARENT_PHONE, channel="whatsapp", last_contact_at=NOW - timedelta(hours=24))
    assert not whatsapp.in_window(family, NOW)
    assert whatsapp.in_window(family, NOW - timedelta(seconds=1))
    assert whatsapp.in_window(Family(phone=PARENT_PHONE, channel="sms"), NOW)
    assert not whatsapp.in_window(Family(phone=PARENT_PHONE, channel="whatsapp"), NOW)
