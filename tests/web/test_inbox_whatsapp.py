"""Staff texts and consent requests to a WhatsApp family outside its 24-hour window go as the
approved templates of rules/whatsapp.yaml, through the real Twilio client to the fake API."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from smsbot.models import Enrollment, utcnow
from tests.checkin_fixtures import RULES_DIR
from tests.clinic_fixtures import *  # noqa: F403
from tests.twilio_fixtures import *  # noqa: F403

PHONE = "+15550100001"
WHATSAPP = f"whatsapp:{PHONE}"
CONSENT_SID = "HX" + "a" * 32
STAFF_SID = "HX" + "b" * 32


@pytest.fixture
def settings_overrides(settings_overrides: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    (rules / "whatsapp.yaml").write_text(
        "kind: whatsapp\n"
        "templates:\n"
        f"  consent: {{content_sid: {{en: {CONSENT_SID}, es: {CONSENT_SID}}}, variables: [clinic, baby]}}\n"
        f"  staff_message: {{content_sid: {{en: {STAFF_SID}, es: {STAFF_SID}}}, variables: [text]}}\n",
        encoding="utf-8",
    )
    return {**settings_overrides, "rules_dir": str(rules)}


pytestmark = pytest.mark.usefixtures("app_on_fake_twilio")


def test_whatsapp_family_outside_the_window_gets_templates(api, fake, text_bot, db):  # type: ignore[no-untyped-def]
    family = {"phone": PHONE, "channel": "whatsapp", "programme": "clinic_followup", "baby_name": "Ana"}
    enrolled = api("POST", "/families", json=family)
    assert enrolled.status_code == 201, enrolled.get_json()
    (consent,) = fake.sent_to(WHATSAPP)  # a family that never texted: only a template reaches it
    assert consent.form["ContentSid"] == CONSENT_SID
    assert json.loads(consent.form["ContentVariables"]) == {"1": "Riverside Pediatrics", "2": "Ana"}

    assert text_bot("YES", sender=WHATSAPP).status_code == 200
    sent = api("POST", f"/families/{enrolled.get_json()['id']}/messages", json={"text": "How is Ana?"})
    assert sent.status_code == 201
    assert "ContentSid" not in fake.sent_to(WHATSAPP)[-1].form  # within 24 h of the YES: free text

    with db.session() as session:  # the YES was 25 hours ago
        family = session.get(Enrollment, enrolled.get_json()["id"]).family
        family.last_contact_at = utcnow() - timedelta(hours=25)
    sent = api("POST", f"/families/{enrolled.get_json()['id']}/messages", json={"text": "How is Ana?"})
    assert sent.status_code == 201, sent.get_json()
    last = fake.sent_to(WHATSAPP)[-1].form
    assert last["ContentSid"] == STAFF_SID
    assert json.loads(last["ContentVariables"]) == {"1": "Riverside Pediatrics: How is Ana?"}
