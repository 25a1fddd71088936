"""The first hour with smsbot, driven over HTTP against real ``smsbot serve`` and ``smsbot
worker`` processes: restarts, malformed requests, a locked database, long WhatsApp texts."""

from __future__ import annotations

import contextlib
import json
import queue
import sqlite3
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from twilio.request_validator import RequestValidator

from smsbot import clinics
from smsbot.db import Database, upgrade
from smsbot.models import Family, utcnow
from tests.checkin_fixtures import add_checkin, make_settings
from tests.test_serve_e2e import TOKEN, free_port, post, smsbot_process, wait_until_serving


def call_api(base: str, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + "/api/v1" + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"null")


def clinic_with_token(url: str) -> str:
    upgrade(url)
    with Database(url) as db, db.session() as session:
        clinic = clinics.create_clinic(
            session,
            make_settings(),
            slug="riverside",
            name="Riverside Pediatrics",
            timezone="America/Chicago",
        )
        return clinics.create_token(session, clinic, "ehr")


def test_restarting_the_console_server_and_enrolling_again_gives_201(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    token = clinic_with_token(url)
    env = {"SMSBOT_DATABASE_URL": url, "SMSBOT_TRANSPORT": "console", "SMSBOT_RUN_SCHEDULER": "false"}
    for phone in ("+15550100001", "+15550100002"):  # one server, then a restarted one
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with smsbot_process(["serve", "--port", str(port)], env, tmp_path) as process:
            wait_until_serving(base, process)
            status, family = call_api(
                base, "POST", "/families", token, {"phone": phone, "programme": "clinic_followup"}
            )
            assert status == 201, family
            assert family["consent"] == "requested"
    with Database(url) as db, db.engine.connect() as connection:
        sids = connection.execute(text("SELECT provider_sid FROM messages WHERE direction = 'out'")).all()
    assert len(sids) == 2 and len(set(sids)) == 2


def test_a_failing_worker_job_is_logged_as_json_without_bodies_or_sql(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    upgrade(url)
    with Database(url) as db:
        with db.session() as session:
            family = Family(phone="+15550100001", channel="sms", created_at=utcnow())
            session.add(family)
            session.flush()
            add_checkin(session, family, due_at=utcnow() - timedelta(minutes=1), dedupe_key="due-now")
        with db.engine.begin() as connection:  # the database refuses to record any outbound text
            connection.execute(
                text(
                    "CREATE TRIGGER refuse_outbound BEFORE INSERT ON messages WHEN NEW.direction = 'out' "
                    "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
                )
            )
    env = {
        "SMSBOT_DATABASE_URL": url,
        "SMSBOT_TRANSPORT": "console",
        "SMSBOT_DISPATCH_INTERVAL_SECONDS": "0.2",
        "SMSBOT_CLAIM_LEASE_SECONDS": "0.2",
        "SMSBOT_QUIET_HOURS_START": "00:00",
        "SMSBOT_QUIET_HOURS_END": "00:00",
    }
    with smsbot_process(["worker"], env, tmp_path) as process:
        lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True).start()
        logged, deadline = "", time.monotonic() + 60
        while '"exception"' not in logged and time.monotonic() < deadline:  # the first failed run
            with contextlib.suppress(queue.Empty):
                logged += lines.get(timeout=1).decode()
        assert process.poll() is None
        process.terminate()
        process.wait(timeout=10)
        time.sleep(0.5)  # the reader drains what was written before the end
        while not lines.empty():
            logged += lines.get().decode()
    lines = [json.loads(line) for line in logged.splitlines() if line.strip()]
    failures = [line for line in lines if line.get("exception")]
    assert failures, logged
    assert "IntegrityError" in {line["exception"] for line in failures}, logged
    assert all(line["logger"].startswith(("smsbot", "apscheduler")) for line in lines)
    for forbidden in ("[SQL", "[parameters", "INSERT INTO", "+15550100001", "disk full"):
        assert forbidden not in logged


def test_malformed_requests_long_texts_and_a_locked_database_over_http(tmp_path: Path):
    path = tmp_path / "e2e.db"
    token = clinic_with_token(f"sqlite:///{path}")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "SMSBOT_DATABASE_URL": f"sqlite:///{path}",
        "SMSBOT_TRANSPORT": "console",
        "TWILIO_AUTH_TOKEN": TOKEN,
        "SMSBOT_PUBLIC_URL": base,
        "SMSBOT_RUN_SCHEDULER": "false",
    }

    def signed(path_: str, form: dict[str, str]) -> tuple[int, str]:
        url = base + path_
        return post(url, form, RequestValidator(TOKEN).compute_signature(url, form))

    with smsbot_process(["serve", "--port", str(port)], env, tmp_path) as process:
        wait_until_serving(base, process)
        # Malformed input: a clear 4xx each.
        hello = {"MessageSid": "SM" + "1" * 32, "From": "+15550100001", "Body": "hi"}
        assert signed("/twilio/sms", {**hello, "NumMedia": "²"})[0] == 400
        for code in ("9" * 5000, "²", str(2**63)):
            status = {"MessageSid": "SM" + "2" * 32, "MessageStatus": "failed", "ErrorCode": code}
            assert signed("/twilio/status", status)[0] == 400
        nested = urllib.request.Request(
            base + "/api/v1/families",
            data=b"[" * 100_000,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(nested, timeout=15)
        assert refused.value.code == 400
        refused.value.close()
        # A 2,000-character WhatsApp text ending in a red flag: stored and answered as an emergency.
        long_text = ("we had a long day with the baby, " * 70)[:1964] + " his lips are blue and he is jerking"
        assert len(long_text) == 2000
        form = {"MessageSid": "SM" + "3" * 32, "From": "whatsapp:+15550100001", "Body": long_text}
        status, twiml = signed("/twilio/sms", form)
        assert status == 200 and "911" in ET.fromstring(twiml).find("Message").text.split(".")[0]
        # A text while another process holds SQLite's write lock: answered within 15 s.
        locked = sqlite3.connect(path, isolation_level=None)
        locked.execute("BEGIN IMMEDIATE")
        form = {"MessageSid": "SM" + "4" * 32, "From": "+15550100002", "Body": "her lips are blue"}
        started = time.monotonic()
        status, _ = signed("/twilio/sms", form)
        assert status == 503 and time.monotonic() - started < 15
        locked.execute("ROLLBACK")
        locked.close()
        status, twiml = signed("/twilio/sms", form)  # Twilio's retry
        assert status == 200 and "911" in twiml
        # The access log masks numbers, even URL-encoded in a query string.
        call_api(base, "GET", "/families?phone=%2B1%20555%20010%200003&x=+15550100004", token)
        process.terminate()
        process.wait(timeout=10)
        logged = process.stderr.read().decode()
    with Database(f"sqlite:///{path}") as db, db.engine.connect() as connection:
        stored = connection.execute(text("SELECT body FROM messages WHERE direction = 'in'")).scalars().all()
    assert long_text in stored and len(stored) == 2  # the emergency, once despite the retry
    assert "/api/v1/families" in logged and "127.0.0.1" in logged  # addresses are not numbers
    for number in ("5550100003", "555 010 0003", "5550100004"):
        assert number not in logged
