"""Concurrent dispatchers on PostgreSQL: ``FOR UPDATE SKIP LOCKED`` sends each check-in once."""

from __future__ import annotations

import os
import threading
from collections import Counter
from datetime import datetime

import pytest
from sqlalchemy import func, select

from smsbot.db import Database
from smsbot.messaging.console import MemoryTransport
from smsbot.models import CheckIn, Message
from smsbot.reminders import DispatchReport, dispatch_due
from tests.checkin_fixtures import insert_due_checkins, make_settings, scratch_postgres

SERVER_URL = os.environ.get("SMSBOT_TEST_DATABASE_URL", "")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not SERVER_URL, reason="set SMSBOT_TEST_DATABASE_URL to a PostgreSQL server"),
]

CHECKINS = 2_000
DISPATCHERS = 4
NOW = datetime(2026, 11, 28, 15)  # 10:00 in New York: inside the allowed hours


def test_four_concurrent_dispatchers_send_each_of_2000_checkins_exactly_once():
    settings = make_settings()
    outbox = MemoryTransport()
    with scratch_postgres(SERVER_URL) as url:
        setup = Database(url)
        insert_due_checkins(setup, CHECKINS, due_at=NOW)
        start = threading.Barrier(DISPATCHERS)
        reports: list[DispatchReport] = []

        def dispatcher(worker: int) -> None:
            db = Database(url)  # its own engine and pool, like a separate worker process
            try:
                start.wait()
                reports.append(dispatch_due(db, outbox, settings, NOW, batch_size=50, worker_id=f"w{worker}"))
            finally:
                db.engine.dispose()

        threads = [threading.Thread(target=dispatcher, args=(n,)) for n in range(DISPATCHERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with setup.session() as session:
            statuses = dict(
                session.execute(select(CheckIn.status, func.count()).group_by(CheckIn.status)).all()
            )
            messages = session.scalar(select(func.count()).select_from(Message))
        setup.engine.dispose()

    sends_per_phone = Counter(sms.to for sms in outbox.outbox)
    assert len(sends_per_phone) == CHECKINS
    assert set(sends_per_phone.values()) == {1}
    assert statuses == {"sent": CHECKINS}
    assert messages == CHECKINS
    assert sum(report.sent for report in reports) == CHECKINS
    assert len(reports) == DISPATCHERS
    assert sum(1 for report in reports if report.sent) > 1  # the work really was shared
