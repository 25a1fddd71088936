"""The first hour with smsbot, driven over HTTP against real ``smsbot serve`` and ``smsbot
worker`` processes: restarts, malformed requests, a locked database, long WhatsApp texts."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from smsbot import clinics
from smsbot.db import Database, upgrade
from smsbot.models import Family, utcnow
from tests.checkin_fixtures import add_checkin, make_settings
from tests.test_serve_e2e import free_port, smsbot_process, wait_until_serving


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
        time.sleep(4)
        assert process.poll() is None
        process.terminate()
        process.wait(timeout=10)
        logged = process.stderr.read().decode()
    lines = [json.loads(line) for line in logged.splitlines() if line.strip()]
    failures = [line for line in lines if line.get("exception")]
    assert failures, logged
    assert "IntegrityError" in {line["exception"] for line in failures}, logged
    assert all(line["logger"].startswith(("smsbot", "apscheduler")) for line in lines)
    for forbidden in ("[SQL", "[parameters", "INSERT INTO", "+15550100001", "disk full"):
        assert forbidden not in logged
