"""The inbound path's safety promises, which the fast path must keep: the text is committed
before any processing, a retry never runs twice, and a failed run can be retried."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import time_machine
from sqlalchemy import event, func, select, text

from smsbot.families import find_or_create_family
from smsbot.models import Alert, CheckIn, Message, utcnow
from tests.conftest import PARENT, PUBLIC_URL, twilio_signature
from tests.web.test_webhook import count, reply_text

SID = "SM" + "7" * 32
EMERGENCY = "his lips are blue and his arms keep jerking"


@contextmanager
def on_checkin_query(db, action) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Run ``action`` when processing first reads the check-ins table (the database seam)."""

    def listener(_conn, _cursor, statement, _params, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT") and "FROM checkins" in statement:
            action()

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        yield
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)


def rows(db, model) -> int:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_inbound_is_committed_before_processing_starts(text_bot, db):
    seen = []

    def look_from_another_connection() -> None:
        with db.engine.connect() as other:
            seen.extend(
                other.execute(text("SELECT status FROM messages WHERE provider_sid = :sid"), {"sid": SID})
            )

    with on_checkin_query(db, look_from_another_connection):
        reply_text(text_bot(EMERGENCY, sid=SID))
    assert [row.status for row in seen[:1]] == ["processing"]


def test_processing_failure_keeps_the_inbound_and_a_retry_processes_it(text_bot, db):
    def fail() -> None:
        raise RuntimeError("database went away mid-processing")

    with on_checkin_query(db, fail):
        first = reply_text(text_bot(EMERGENCY, sid=SID))
    with db.session() as session:
        inbound = session.scalar(select(Message).where(Message.provider_sid == SID))
        assert inbound.status == "failed" and inbound.body == EMERGENCY
    assert rows(db, Alert) == 0 and count(db, Message.direction == "out") == 0

    second = reply_text(text_bot(EMERGENCY, sid=SID))
    assert second != first and "911" in second.split(".")[0]
    with db.session() as session:
        assert session.scalar(select(Message.status).where(Message.provider_sid == SID)) == "processed"
    assert count(db, Message.direction == "in") == 1
    assert count(db, Message.direction == "out") == 1
    assert rows(db, Alert) == 1


def test_retry_after_success_adds_no_row_alert_or_checkin(text_bot, db):
    first = reply_text(text_bot(EMERGENCY, sid=SID))
    alerts, checkins = rows(db, Alert), rows(db, CheckIn)
    second = reply_text(text_bot(EMERGENCY, sid=SID))
    assert second == first
    assert (rows(db, Alert), rows(db, CheckIn)) == (alerts, checkins) and alerts == 1
    assert count(db, Message.direction == "in") == 1
    assert count(db, Message.direction == "out") == 1


def test_a_text_abandoned_by_a_killed_worker_is_triaged_by_the_retry(text_bot, db):
    with db.session() as session:
        # What a worker killed mid-request leaves behind: stored, claimed, never processed.
        family = find_or_create_family(session, "+15550100001", "sms", utcnow())
        session.add(
            Message(
                family_id=family.id,
                direction="in",
                body=EMERGENCY,
                provider_sid=SID,
                status="processing",
                claimed_until=utcnow() + timedelta(seconds=30),
                attempts=1,
            )
        )
    assert reply_text(text_bot(EMERGENCY, sid=SID)) is None  # the first worker might still be on it
    with time_machine.travel(utcnow() + timedelta(minutes=1), tick=False):
        assert reply_text(text_bot(EMERGENCY, sid=SID)).startswith("Call 911")
    assert rows(db, Alert) == 1 and count(db, Message.direction == "in") == 1


def concurrently(count: int, action: Callable[[int], Any]) -> list[Any]:
    """``action(0..count-1)`` from ``count`` threads released at the same moment."""
    barrier = threading.Barrier(count)

    def run(index: int) -> Any:
        barrier.wait()
        return action(index)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def text_from_thread(app, sid: str, body: str):  # type: ignore[no-untyped-def]
    """One signed text through a test client of this thread's own."""
    form = {"MessageSid": sid, "From": PARENT, "Body": body}
    signature = twilio_signature(PUBLIC_URL + "/twilio/sms", form)
    return app.test_client().post("/twilio/sms", data=form, headers={"X-Twilio-Signature": signature})


def inbound_statuses(db) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with db.session() as session:
        query = select(Message.status, func.count()).where(Message.direction == "in").group_by(Message.status)
        return dict(session.execute(query).all())


def test_texts_a_parent_sends_at_once_are_each_triaged_and_answered(app, db):
    responses = concurrently(
        4, lambda i: text_from_thread(app, f"SM{i:032d}", "his legs shake when he cries")
    )

    assert all(r.status_code == 200 and "<Message>" in r.get_data(as_text=True) for r in responses)
    assert inbound_statuses(db) == {"processed": 4}
    with db.session() as session:
        pending = session.scalar(select(func.count()).select_from(CheckIn).where(CheckIn.status == "pending"))
    assert pending == 3  # one routine follow-up run, not one per text


def test_a_burst_from_one_number_is_held_to_the_flood_limit(make_app):
    app = make_app(flood_messages_per_minute=3)
    responses = concurrently(
        8, lambda i: text_from_thread(app, f"SM{i:032d}", "his legs shake when he cries")
    )

    # Each text is processed after the ones before it: the fourth and later see > 3.
    assert sum("<Message>" in r.get_data(as_text=True) for r in responses) <= 3
    assert inbound_statuses(app.extensions["smsbot.db"]) == {"processed": 8}
