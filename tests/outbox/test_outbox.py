"""The inbound outbox: a text is answered from one read and stored with one write, and what
it sets off (language, alerts, follow-up check-ins) happens once, after the reply, even when
the process doing it dies."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from smsbot import conversation, outbox
from smsbot.conversation import Inbound
from smsbot.jobs import run_drain_outbox
from smsbot.models import Alert, CheckIn, Family, Message, OutboxEntry
from tests.clinic_fixtures import *  # noqa: F403
from tests.clinic_fixtures import ONCALL
from tests.conftest import PARENT, PUBLIC_URL, twilio_signature, wait_for_follow_ups
from tests.conversation.test_inbound_safety import concurrently
from tests.db_faults import fault
from tests.web.test_webhook import reply_text

ROUTINE = "her chin quivers when she cries but stops when I hold it"
EMERGENCY = "his lips are blue and his arms keep jerking"
SPANISH = "tiembla la barbilla cuando llora y para cuando la sostengo"


@pytest.fixture
def settings(app: Flask):  # type: ignore[no-untyped-def]
    return app.extensions["smsbot.settings"]


@pytest.fixture
def raw_client(app: Flask) -> FlaskClient:
    """A client that returns as soon as the reply is sent, as Twilio sees it."""
    return FlaskClient(app, app.response_class, use_cookies=True)


@pytest.fixture
def send(raw_client: FlaskClient) -> Callable[..., Any]:
    counter = iter(range(1, 10**6))

    def text(body: str, *, sid: str | None = None, sender: str = PARENT) -> str | None:
        form = {"MessageSid": sid or f"SMOUTBOX{next(counter):026d}", "From": sender, "Body": body}
        headers = {"X-Twilio-Signature": twilio_signature(PUBLIC_URL + "/twilio/sms", form)}
        return reply_text(raw_client.post("/twilio/sms", data=form, headers=headers))

    return text


def known_family(db, settings, phone: str = PARENT) -> None:  # type: ignore[no-untyped-def]
    """A family that has texted before: its next text takes the one-read, one-write path."""
    conversation.receive(db, settings, Inbound(sid=f"SMHELLO{phone}", phone=phone, body="hello"))


def count(db, model, *criteria) -> int:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*criteria))


def receive(db, settings, body: str, sid: str) -> conversation.Outcome:  # type: ignore[no-untyped-def]
    return conversation.receive(db, settings, Inbound(sid=sid, phone=PARENT, body=body))


def test_the_reply_comes_first_and_the_follow_ups_from_the_outbox(db, settings):
    known_family(db, settings)
    outcome = receive(db, settings, SPANISH, "SM1")
    assert outcome.queued and outcome.level == "routine" and outcome.reply
    # Stored with its triage and its reply; nothing it sets off has happened yet.
    with db.session() as session:
        inbound = session.scalar(select(Message).where(Message.provider_sid == "SM1"))
        assert (inbound.status, inbound.level, inbound.lang) == ("processed", "routine", "es")
        assert session.scalar(select(Message.body).where(Message.reply_to_id == inbound.id)) == outcome.reply
        assert session.scalar(select(Family.language).where(Family.phone == PARENT)) == "en"
    assert count(db, OutboxEntry) == 1 and count(db, CheckIn) == 0

    assert outbox.drain(db, settings).done == 1
    with db.session() as session:
        family = session.scalar(select(Family).where(Family.phone == PARENT))
        assert (family.language, family.last_level) == ("es", "routine")
    assert count(db, OutboxEntry) == 0 and count(db, CheckIn) > 0


def test_each_follow_up_happens_exactly_once_across_concurrent_drains(db, settings):
    phones = [f"+1555010{n:04d}" for n in range(12)]
    for phone in phones:
        known_family(db, settings, phone)
    for n, phone in enumerate(phones):
        conversation.receive(db, settings, Inbound(sid=f"SMX{n}", phone=phone, body=ROUTINE))
    assert count(db, OutboxEntry) == len(phones)
    reports = concurrently(4, lambda _i: outbox.drain(db, settings, limit=3))
    reports += [outbox.drain_all(db, settings)]
    assert sum(report.done for report in reports) == len(phones)
    assert count(db, OutboxEntry) == 0
    with db.session() as session:
        scheduled = session.execute(select(CheckIn.family_id, func.count()).group_by(CheckIn.family_id)).all()
    assert len(scheduled) == len(phones) and len({n for _family, n in scheduled}) == 1


def test_a_crash_between_commit_and_follow_up_is_recovered_by_drain_outbox(db, settings, outbox):
    known_family(db, settings)
    receive(db, settings, ROUTINE, "SM1")
    # A worker claims the row and dies before committing: the server rolls its transaction back.
    with db.engine.connect() as dying:
        dying.execute(OutboxEntry.__table__.delete())
        dying.rollback()
    assert count(db, OutboxEntry) == 1 and count(db, CheckIn) == 0

    report = run_drain_outbox(db, outbox, settings)
    assert report.done == 1 and count(db, OutboxEntry) == 0 and count(db, CheckIn) > 0
    assert run_drain_outbox(db, outbox, settings).done == 0


def test_a_failing_follow_up_is_kept_for_later_and_does_not_hold_up_the_others(db, settings):
    known_family(db, settings)
    known_family(db, settings, "+15550100002")
    receive(db, settings, ROUTINE, "SM1")
    conversation.receive(db, settings, Inbound(sid="SM2", phone="+15550100002", body=ROUTINE))
    with fault(db, "parent_update"):  # the database refuses the first family's follow-up
        report = outbox.drain(db, settings)
    assert (report.done, report.failed) == (1, 1)
    with db.session() as session:
        left = session.scalars(select(OutboxEntry)).one()
        assert left.attempts == 1 and left.available_at > left.created_at
    assert outbox.drain(db, settings).done == 0  # not before its retry time


@pytest.mark.usefixtures("world")
def test_an_emergency_pages_the_clinic_from_the_courier_at_once(
    app, db, settings, send, outbox, enroll_consenting_parent
):
    enroll_consenting_parent(baby_name="Ana")
    wait_for_follow_ups(app)
    known_family(db, settings)
    reply = send(EMERGENCY)
    assert reply.startswith("Call 911")
    # No scheduler runs here: the web process's courier raises the alert and pages on-call.
    app.extensions["smsbot.alert_courier"].stop()
    assert count(db, Alert, Alert.level == "emergency") == 1
    assert [sent.to for sent in outbox.outbox].count(ONCALL) == 1
    assert count(db, OutboxEntry) == 0


def test_a_retry_gets_the_same_reply_and_nothing_twice(app, db, settings, send):
    known_family(db, settings)
    first = send(EMERGENCY, sid="SMRETRY")
    second = send(EMERGENCY, sid="SMRETRY")
    assert first == second and first.startswith("Call 911")
    wait_for_follow_ups(app)
    assert count(db, Message, Message.direction == "in", Message.provider_sid == "SMRETRY") == 1
    assert count(db, Message, Message.direction == "out", Message.kind == "reply") == 2  # hello's + this
    assert count(db, Alert, Alert.level == "emergency") == 1


def test_concurrent_deliveries_of_one_text_store_and_follow_up_once(app, db, settings):
    known_family(db, settings)
    outcomes = concurrently(4, lambda _i: receive(db, settings, EMERGENCY, "SMSAME"))
    assert len({outcome.reply for outcome in outcomes}) == 1 and outcomes[0].reply.startswith("Call 911")
    assert count(db, OutboxEntry) == 1
    wait_for_follow_ups(app)
    assert count(db, Message, Message.provider_sid == "SMSAME") == 1
    assert count(db, Alert, Alert.level == "emergency") == 1


def test_stop_is_honoured_at_once_and_pending_follow_ups_schedule_nothing(app, db, settings, send):
    known_family(db, settings)
    receive(db, settings, ROUTINE, "SM1")  # its follow-ups still in the outbox
    send("STOP")
    with db.session() as session:
        assert session.scalar(select(Family.opted_out_at).where(Family.phone == PARENT)) is not None
    wait_for_follow_ups(app)
    assert count(db, CheckIn, CheckIn.status == "pending") == 0


def test_postgres_drains_skip_rows_another_worker_holds(db, settings, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("row locks: PostgreSQL only (SQLite has one writer)")
    known_family(db, settings)
    receive(db, settings, ROUTINE, "SM1")
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.engine.connect() as worker:
            worker.execute(OutboxEntry.__table__.delete())
            holding.set()
            release.wait(10)
            worker.rollback()  # as if killed

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(10)
    try:
        assert outbox.drain(db, settings).done == 0  # skipped, not waited for
    finally:
        release.set()
        holder.join()
    assert outbox.drain(db, settings).done == 1 and count(db, CheckIn) > 0
