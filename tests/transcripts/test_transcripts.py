"""The golden transcripts (tests/transcripts/*.yaml), each conversation texted over real HTTP
to ``smsbot serve`` through the signed webhook, as Twilio delivers a parent's texts; and the
same files through ``smsbot chat --script``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from itertools import count
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from smsbot import clinics
from smsbot.cli import main
from smsbot.config import load_settings
from smsbot.conversation import transcripts
from smsbot.db import Database, upgrade
from smsbot.messaging.segments import count_segments, is_gsm7
from smsbot.models import CheckIn, Family, Message, OutboxEntry, utcnow
from smsbot.vocabulary import MAX_SEGMENTS
from tests.test_serve_e2e import TOKEN, free_port, post
from tests.test_serve_e2e_family_texts import wait_for

HERE = Path(__file__).parent
FILES = sorted(HERE.glob("*.yaml"))
CONVERSATIONS = [(path, c) for path in FILES for c in transcripts.load_transcripts(path)]


@dataclass
class HttpDriver:
    """Texts over HTTP to the webhook; reads what the server stored to check levels and check-ins,
    and moves a family's stored texts back in time for ``wait_minutes``."""

    base: str
    db: Database
    api_token: str
    sids: Iterator[int]

    def text(self, phone: str, body: str) -> tuple[str | None, str | None]:
        url = self.base + "/twilio/sms"
        form = {"MessageSid": f"SM{next(self.sids):032d}", "From": phone, "Body": body}
        status, answer = post(url, form, RequestValidator(TOKEN).compute_signature(url, form))
        assert status == 200, answer
        message = ET.fromstring(answer).find("Message")
        wait_for(self.follow_ups_done)  # the check-ins a text schedules come right after its reply
        with self.db.session() as session:
            level = session.scalar(
                select(Message.level)
                .join(Family, Family.id == Message.family_id)
                .where(
                    Family.phone == phone,
                    Message.direction == "in",
                    Message.provider_sid == form["MessageSid"],
                )
            )
        return (None if message is None else message.text), level

    def follow_ups_done(self) -> bool:
        with self.db.session() as session:
            return not session.scalar(select(func.count(OutboxEntry.id)))

    def wait(self, phone: str, minutes: float) -> None:
        with self.db.session() as session:
            for message in session.scalars(
                select(Message).join(Family, Family.id == Message.family_id).where(Family.phone == phone)
            ):
                message.created_at -= timedelta(minutes=minutes)
            session.commit()

    def enroll(self, phone: str, lang: str) -> str:
        request = urllib.request.Request(
            self.base + "/api/v1/families",
            method="POST",
            data=json.dumps({"phone": phone, "programme": "clinic_followup", "language": lang}).encode(),
            headers={"Authorization": f"Bearer {self.api_token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status in (200, 201)

        def requested() -> str | None:
            with self.db.session() as session:
                return session.scalars(
                    select(Message.body)
                    .join(Family, Family.id == Message.family_id)
                    .where(Family.phone == phone, Message.kind == "consent")
                    .order_by(Message.id.desc())
                ).first()

        return wait_for(requested)

    def checkin(self, phone: str) -> str:
        """The family's next pending check-in, made due now: the server's scheduler sends it."""
        with self.db.session() as session:
            checkin = session.scalars(
                select(CheckIn)
                .join(Family, Family.id == CheckIn.family_id)
                .where(Family.phone == phone, CheckIn.status == "pending")
                .order_by(CheckIn.due_at, CheckIn.id)
            ).first()
            if checkin is None:
                return "(no check-in pending)"
            checkin.due_at = utcnow() - timedelta(seconds=1)
            checkin_id = checkin.id
            session.commit()

        def sent() -> str | None:
            with self.db.session() as session:
                return session.scalar(select(Message.body).where(Message.checkin_id == checkin_id))

        return wait_for(sent)

    def pending_checkins(self, phone: str) -> int:
        with self.db.session() as session:
            return session.scalar(
                select(func.count(CheckIn.id))
                .join(Family, Family.id == CheckIn.family_id)
                .where(Family.phone == phone, CheckIn.status == "pending")
            )


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpDriver]:
    """One ``smsbot serve`` for every conversation (each texts from its own number), with check-ins
    sent as soon as they are due: no quiet hours."""
    tmp = tmp_path_factory.mktemp("transcripts")
    url = f"sqlite:///{tmp / 'transcripts.db'}"
    upgrade(url)
    with Database(url) as db:
        with db.session() as session:
            settings = load_settings({"database_url": url}, environ={})
            clinic = clinics.create_clinic(
                session, settings, slug="riverside", name="Riverside Pediatrics", timezone="America/New_York"
            )
            api_token = clinics.create_token(session, clinic, "ehr")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "SMSBOT_DATABASE_URL": url,
            "SMSBOT_TRANSPORT": "console",
            "TWILIO_AUTH_TOKEN": TOKEN,
            "SMSBOT_PUBLIC_URL": base,
            "SMSBOT_DISPATCH_INTERVAL_SECONDS": "0.2",
            "SMSBOT_QUIET_HOURS_START": "00:00",
            "SMSBOT_QUIET_HOURS_END": "00:00",
        }
        with (tmp / "server.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "smsbot", "serve", "--port", str(port)],
                env=env,
                cwd=tmp,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            try:
                wait_for(lambda: _healthy(base), process, timeout=120)
                yield HttpDriver(base, db, api_token, count(1))
            finally:
                process.terminate()
                process.wait(timeout=10)


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


NUMBERS = transcripts.phones()
SENT: list[transcripts.Turn] = []  # every text smsbot sent over the run, for the totals below


@pytest.mark.parametrize(
    ("path", "conversation"), CONVERSATIONS, ids=[f"{p.stem}: {c.name}" for p, c in CONVERSATIONS]
)
def test_conversation(driver: HttpDriver, path: Path, conversation: transcripts.Conversation) -> None:
    turns = transcripts.run(conversation, driver, next(NUMBERS))
    SENT.extend(turn for turn in turns if turn.who not in ("parent", "clock") and turn.text is not None)
    assert not transcripts.failures(turns), "\n".join(map(str, turns))


def test_the_transcripts_cover_enough_conversations_in_both_languages() -> None:
    assert len(CONVERSATIONS) >= 60
    spanish = [c for _, c in CONVERSATIONS if "Spanish" in c.name or "SI " in c.name or "PARAR" in c.name]
    assert len(spanish) >= 10


def test_over_all_transcripts_every_text_fits_and_is_gsm7() -> None:
    """Runs after the conversations (file order): every text smsbot sent in them."""
    if not SENT:
        pytest.skip("the conversations did not run in this session")
    segments = [count_segments(turn.text) for turn in SENT]
    assert sum(s <= MAX_SEGMENTS for s in segments) / len(segments) >= 0.95
    assert all(is_gsm7(turn.text) for turn in SENT)


def test_chat_script_prints_a_transcript_with_segment_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'chat.db'}")
    result = CliRunner().invoke(main, ["chat", "--script", str(HERE / "followups.yaml")])
    assert result.exit_code == 0, result.output
    assert "parent> he feels hot" in result.output
    assert "bot [urgent, 2 seg]> Call your baby's doctor today" in result.output
    assert "bot [emergency, 2 seg]> Call 911 now" in result.output
    assert "15 of 15 conversations pass" in result.output


def test_chat_script_fails_on_a_failed_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "wrong.yaml"
    script.write_text(
        "kind: transcripts\nconversations:\n  - name: wrong\n    steps:\n"
        "      - send: her lips are blue\n        level: routine\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("SMSBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'chat.db'}")
    result = CliRunner().invoke(main, ["chat", "--script", str(script)])
    assert result.exit_code == 1
    assert "FAIL: level emergency, expected routine" in result.output
    assert "0 of 1 conversations pass" in result.output
