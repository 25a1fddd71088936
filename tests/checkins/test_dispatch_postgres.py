"""Concurrent dispatchers on PostgreSQL: ``FOR UPDATE SKIP LOCKED`` sends each check-in once,
counted where it matters: at a local fake Twilio API, through the real ``twilio`` client."""

from __future__ import annotations

import os
import threading
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from smsbot.checkins.dispatch import DispatchReport, dispatch_due
from smsbot.db import Database, upgrade
from smsbot.messaging.twilio import TwilioTransport
from smsbot.models import CheckIn, Message
from tests.checkin_fixtures import insert_due_checkins, make_settings
from tests.fake_twilio import FakeTwilio
from tests.postgres import scratch_postgres_database

SERVER_URL = os.environ.get("SMSBOT_TEST_DATABASE_URL", "")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not SERVER_URL, reason="set SMSBOT_TEST_DATABASE_URL to a PostgreSQL server"),
]

CHECKINS = 2_000
DISPATCHERS = 4
NOW = datetime(2026, 11, 28, 15)  # 10:00 in New York: inside the allowed hours
RETRIES_DUE = timedelta(hours=1)
ACCOUNT_SID, AUTH_TOKEN = "AC" + "c" * 32, "checkins-test-token"


def run_dispatchers(url: str, transport: TwilioTransport, now: datetime) -> list[DispatchReport]:
    """``DISPATCHERS`` threads, each with its own engine like a worker process, started together."""
    settings = make_settings()
    start = threading.Barrier(DISPATCHERS)
    reports: list[DispatchReport] = []

    def dispatcher(worker: int) -> None:
        db = Database(url)
        try:
            start.wait()
            reports.append(dispatch_due(db, transport, settings, now, batch_size=50, worker_id=f"w{worker}"))
        finally:
            db.engine.dispose()

    threads = [threading.Thread(target=dispatcher, args=(n,)) for n in range(DISPATCHERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return reports


def test_four_concurrent_dispatchers_send_each_of_2000_checkins_exactly_once():
    with scratch_postgres_database(SERVER_URL) as url, FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as fake:
        upgrade(url)
        db = Database(url)
        insert_due_checkins(db, CHECKINS, due_at=NOW)
        transport = TwilioTransport(ACCOUNT_SID, AUTH_TOKEN, "+15550009999", api_url=fake.url)
        try:
            reports = run_dispatchers(url, transport, NOW)
            # A burst of new connections can overflow the fake's listen backlog: those sends
            # fail as network errors and are retried a minute or two later. Retries must not
            # duplicate anything either, so run the dispatchers again once they are due.
            reports += run_dispatchers(url, transport, NOW + RETRIES_DUE)
        finally:
            transport.close()
        with db.session() as session:
            statuses = dict(
                session.execute(select(CheckIn.status, func.count()).group_by(CheckIn.status)).all()
            )
            recorded_sids = set(session.scalars(select(Message.provider_sid)))
        db.engine.dispose()
        received = fake.requests

    sends_per_phone = Counter(request.form["To"] for request in received)
    assert len(sends_per_phone) == CHECKINS
    assert set(sends_per_phone.values()) == {1}
    assert {request.form["ValidityPeriod"] for request in received} == {"3600"}
    assert recorded_sids == {request.sid for request in received}
    assert statuses == {"sent": CHECKINS}
    assert sum(report.sent for report in reports) == CHECKINS
    assert sum(1 for report in reports if report.sent) > 1  # the work really was shared
