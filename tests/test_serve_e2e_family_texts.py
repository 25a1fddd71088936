"""Over real HTTP against ``smsbot serve`` (a subprocess), as a parent and a clinic would:
sensitive news, plain-word opt-outs, and a text a database fault left unprocessed."""

from __future__ import annotations

import json
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from twilio.request_validator import RequestValidator

from smsbot import clinics
from smsbot.config import load_settings
from smsbot.db import Database, upgrade
from tests.test_serve_e2e import TOKEN, free_port, post, smsbot_process

GREETINGS = ("Hi, I'm an automated helper", "Hola, soy una guia automatica")


@dataclass
class Server:
    base: str
    database_url: str
    api_token: str
    sids: Iterator[int]

    def text(self, phone: str, body: str) -> str | None:
        """Text the bot as Twilio would deliver it; the reply, or None for an empty answer."""
        url = self.base + "/twilio/sms"
        form = {"MessageSid": f"SM{next(self.sids):032d}", "From": phone, "Body": body}
        status, answer = post(url, form, RequestValidator(TOKEN).compute_signature(url, form))
        assert status == 200, answer
        message = ET.fromstring(answer).find("Message")
        return None if message is None else message.text

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            self.base + "/api/v1" + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.api_token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def enroll(self, phone: str, language: str = "en") -> int:
        """Riverside enrolls the parent, who answers YES: check-ins are pending."""
        family = self.api(
            "POST", "/families", {"phone": phone, "programme": "clinic_followup", "language": language}
        )
        assert self.text(phone, "SI" if language == "es" else "YES")
        assert self.pending_checkins(family["id"]) > 0
        return family["id"]

    def pending_checkins(self, family_id: int) -> int:
        checkins = self.api("GET", f"/families/{family_id}/checkins")["data"]
        return sum(checkin["status"] == "pending" for checkin in checkins)

    def open_alerts(self) -> list[tuple[str, str, int]]:
        alerts = self.api("GET", "/alerts?status=open")["data"]
        return sorted((alert["level"], alert["reason"], alert["family_id"]) for alert in alerts)

    def metrics(self) -> str:
        with urllib.request.urlopen(self.base + "/metrics", timeout=5) as response:
            return response.read().decode()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    url = f"sqlite:///{tmp_path / 'e2e.db'}"
    upgrade(url)
    with Database(url) as db, db.session() as session:
        settings = load_settings({"database_url": url}, environ={})
        clinic = clinics.create_clinic(
            session, settings, slug="riverside", name="Riverside Pediatrics", timezone="America/New_York"
        )
        api_token = clinics.create_token(session, clinic, "ehr")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "SMSBOT_DATABASE_URL": url,
        "SMSBOT_TRANSPORT": "console",
        "TWILIO_AUTH_TOKEN": TOKEN,
        "SMSBOT_PUBLIC_URL": base,
        "SMSBOT_SWEEP_AFTER_SECONDS": "2",
        "SMSBOT_SWEEP_INTERVAL_SECONDS": "0.5",
    }
    with smsbot_process(["serve", "--port", str(port)], env, tmp_path) as process:
        wait_for(lambda: _healthy(base), process)
        yield Server(base, url, api_token, iter(range(1, 10**6)))


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def wait_for(condition: Callable[[], Any], process: Any = None, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if process is not None and process.poll() is not None:
            raise RuntimeError(process.stderr.read().decode())
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
    return result


def test_loss_and_hospital_texts_in_english_and_spanish(server: Server):
    loss_en, loss_es = server.enroll("+15550100001"), server.enroll("+15550100002", "es")
    hospital_en, hospital_es = server.enroll("+15550100003"), server.enroll("+15550100004", "es")

    replies = {
        loss_en: server.text("+15550100001", "Ana died last night"),
        loss_es: server.text("+15550100002", "mi bebé murió"),
        hospital_en: server.text("+15550100003", "they admitted her to the NICU"),
        hospital_es: server.text("+15550100004", "está internada desde ayer"),
    }

    assert replies[loss_en].startswith("We are so deeply sorry for the loss of your baby")
    assert replies[loss_es].startswith("Lamentamos profundamente la perdida de su bebe")
    assert replies[hospital_en].startswith("Thank you for letting us know")
    assert replies[hospital_es].startswith("Gracias por avisarnos")
    assert not any(reply.startswith(GREETINGS) for reply in replies.values())
    assert [server.pending_checkins(family) for family in replies] == [0, 0, 0, 0]
    notices = [("loss", loss_en), ("loss", loss_es), ("hospital", hospital_en), ("hospital", hospital_es)]
    assert server.open_alerts() == sorted(("sensitive", reason, family) for reason, family in notices)
    assert server.api("GET", f"/families/{hospital_en}")["followup_hold"] == "hospital"

    # Home again: the parent says so, or the clinic resumes; the programme starts again.
    assert server.text("+15550100003", "she's home!").startswith("Welcome home")
    assert server.pending_checkins(hospital_en) > 0
    assert server.api("POST", f"/families/{hospital_es}/resume")["followup_hold"] is None
    assert server.pending_checkins(hospital_es) > 0
    assert server.pending_checkins(loss_en) == 0


def test_plain_word_opt_outs_are_honoured_or_answered_with_how_to_stop(server: Server):
    assert server.text("+15550100001", "stop texting me").startswith(
        "Baby Tremor Helper: you are unsubscribed"
    )
    assert server.text("+15550100001", "her legs shake when she cries") is None  # nothing after STOP
    assert server.text("+15550100002", "ya no me manden mensajes").startswith(
        "Ayuda Temblores Bebe: ya no recibira"
    )
    assert server.text("+15550100003", "how do I stop these texts?").startswith(
        "Baby Tremor Helper: to stop all our messages, reply STOP"
    )
    assert server.text("+15550100003", "please stop the shaking").startswith("Likely normal jitters")
    assert server.text("+15550100003", "her legs shake when she cries") is not None  # still subscribed


def test_a_text_a_database_fault_left_unprocessed_is_swept_once(server: Server):
    family = server.enroll("+15550100001")
    server.text("+15550100002", "STOP")
    engine = create_engine(server.database_url)
    with engine.begin() as connection:  # the database refuses every reply row for now
        connection.execute(
            text(
                "CREATE TRIGGER fail_replies BEFORE INSERT ON messages WHEN NEW.direction = 'out' "
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        )
        for event in ("UPDATE", "INSERT"):  # a text marked processed, or stored processed at once
            connection.execute(
                text(
                    f"CREATE TRIGGER fail_processing_{event} BEFORE {event} ON messages "
                    "WHEN NEW.status = 'processed' BEGIN SELECT RAISE(ABORT, 'disk full'); END"
                )
            )
    sorry = server.text("+15550100001", "his lips are blue and his arms keep jerking")
    assert sorry.startswith("Sorry, something went wrong")
    assert server.text("+15550100002", "his lips are blue and his arms keep jerking") is None  # opted out
    with engine.begin() as connection:
        connection.execute(text("DROP TRIGGER fail_replies"))
        connection.execute(text("DROP TRIGGER fail_processing_UPDATE"))
        connection.execute(text("DROP TRIGGER fail_processing_INSERT"))
    engine.dispose()

    def swept() -> list[dict[str, Any]]:
        """Replies sent by REST, not in the webhook's answer."""
        messages = server.api("GET", f"/families/{family}/messages")["data"]
        return [m for m in messages if m["kind"] == "reply" and m["status"] != "twiml"]

    (reply,) = wait_for(swept)
    assert reply["body"].startswith("Call 911 now") and reply["status"] == "queued"
    assert server.open_alerts() == [("emergency", "emergency", family)]
    metrics = wait_for(
        lambda: 'smsbot_inbound_recovery_total{event="swept"} 2.0' in (page := server.metrics()) and page
    )
    assert 'smsbot_inbound_recovery_total{event="swept_reply_sent"} 1.0' in metrics
    assert 'smsbot_inbound_recovery_total{event="error_reply_withheld"} 1.0' in metrics
    time.sleep(2.5)  # past another deadline: nothing is swept or sent twice
    assert len(swept()) == 1
    assert 'smsbot_inbound_recovery_total{event="swept"} 2.0' in server.metrics()
