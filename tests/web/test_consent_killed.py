"""A real crash: ``smsbot enroll import`` is killed (SIGKILL) after Twilio took the consent text
and before the process heard back, so it never records the send. The enrollment was committed
before the send; once its lease runs out, the consent job finds the text at Twilio and records
it, and the family gets one text."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from smsbot import clinics
from smsbot.messaging.twilio import TwilioTransport
from smsbot.models import Message, utcnow
from tests.clinic_fixtures import *  # noqa: F403
from tests.clinic_fixtures import PROGRAMME
from tests.fake_twilio import FakeTwilio, ReceivedMessage
from tests.twilio_fixtures import SENDER

PARENT = "+15550100001"


class KillingTwilio(FakeTwilio):
    """Takes each message, then kills the process that sent it before answering."""

    def __init__(self) -> None:
        super().__init__()
        self.sender: subprocess.Popen[bytes] | None = None
        self.sender_started = threading.Event()

    def create(self, account_sid: str, form: dict[str, str]) -> ReceivedMessage:
        message = super().create(account_sid, form)
        self.sender_started.wait(timeout=30)
        assert self.sender is not None
        os.kill(self.sender.pid, signal.SIGKILL)
        self.sender.wait()
        return message


@pytest.fixture
def killing_fake() -> Iterator[KillingTwilio]:
    with KillingTwilio() as fake:
        yield fake


def test_an_import_killed_between_the_send_and_its_record_sends_one_consent_text(
    app: Any, api: Any, db: Any, database_url: str, killing_fake: KillingTwilio, tmp_path: Path
) -> None:
    rows = tmp_path / "families.csv"
    rows.write_text(f"phone,programme\n{PARENT},{PROGRAMME}\n", encoding="utf-8")
    env = {
        **os.environ,
        "SMSBOT_DATABASE_URL": database_url,
        "SMSBOT_TRANSPORT": "twilio",
        "TWILIO_ACCOUNT_SID": killing_fake.account_sid,
        "TWILIO_AUTH_TOKEN": killing_fake.auth_token,
        "SMSBOT_FROM": SENDER,
        "SMSBOT_TWILIO_API_URL": killing_fake.url,
        "SMSBOT_PUBLIC_URL": "http://127.0.0.1:5000",
    }
    killing_fake.sender = subprocess.Popen(
        [sys.executable, "-m", "smsbot", "enroll", "import", str(rows), "--clinic", "riverside"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    killing_fake.sender_started.set()
    assert killing_fake.sender.wait(timeout=60) == -signal.SIGKILL
    [taken] = killing_fake.requests

    [family] = api("GET", "/families").get_json()["data"]  # committed before the send
    assert family["consent"] == "sending"

    settings = app.extensions["smsbot.settings"]
    twilio = TwilioTransport(
        killing_fake.account_sid, killing_fake.auth_token, SENDER, api_url=killing_fake.url
    )
    try:
        after_lease = utcnow() + timedelta(seconds=settings.claim_lease_seconds + 1)
        assert clinics.retry_consents(db, twilio, settings, after_lease) == 0  # found at Twilio
        assert clinics.retry_consents(db, twilio, settings, after_lease + timedelta(days=1)) == 0
    finally:
        twilio.close()

    assert killing_fake.attempts == 1
    shown = api("GET", f"/families/{family['id']}").get_json()
    assert (shown["consent"], shown["consent_error"]) == ("requested", None)
    with db.session() as session:
        recorded = session.scalars(select(Message.provider_sid).where(Message.kind == "consent")).all()
    assert (taken.form["To"], recorded) == (PARENT, [taken.sid])
