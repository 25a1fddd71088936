"""A database fault in the middle of a request never loses a text: a provider retry or the
sweeper triages it, alerts as usual and answers it once; the "sorry" reply never goes to a
family that opted out. (Runs on SQLite and, with SMSBOT_TEST_BACKEND=postgres, PostgreSQL.)"""

from __future__ import annotations

import logging
from datetime import timedelta

import time_machine
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from smsbot.conversation.sweeper import MAX_ATTEMPTS, sweep_unprocessed
from smsbot.jobs import run_sweep
from smsbot.logs import JsonFormatter
from smsbot.models import Alert, Family, Message, utcnow
from tests.clinic_fixtures import *  # noqa: F403
from tests.clinic_fixtures import ONCALL
from tests.conftest import OTHER_PARENT, PARENT
from tests.conversation.test_inbound_safety import concurrently
from tests.db_faults import fault
from tests.web.test_webhook import reply_text

EMERGENCY = "his lips are blue and his arms keep jerking"
ROUTINE = "his legs shake when he cries but stop when i hold them"
PAST_THE_DEADLINE = timedelta(seconds=31)  # the default sweep deadline is 30 s
SID = "SM" + "1" * 32


def recovery(event: str) -> float:
    return REGISTRY.get_sample_value("smsbot_inbound_recovery_total", {"event": event}) or 0.0


def inbound(db, sid: str) -> Message:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return session.scalar(select(Message).where(Message.provider_sid == sid))


def alerts(db) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return [tuple(row) for row in session.execute(select(Alert.level, Alert.reason).order_by(Alert.id))]


def sweep(app, outbox, *, after: timedelta = PAST_THE_DEADLINE):  # type: ignore[no-untyped-def]
    settings = app.extensions["smsbot.settings"]
    return sweep_unprocessed(app.extensions["smsbot.db"], outbox, settings, now=utcnow() + after)


def test_a_text_whose_processing_failed_is_triaged_alerted_and_answered_by_rest(
    app, db, text_bot, outbox, enroll_parent, caplog
):
    enroll_parent(PARENT)
    assert reply_text(text_bot("YES")).startswith("Riverside Pediatrics: thank you")
    outbox.outbox.clear()  # the consent request
    caplog.set_level(logging.INFO)
    before = {event: recovery(event) for event in ("failed", "error_reply", "swept", "swept_reply_sent")}
    with fault(db, "reply"):
        sorry = reply_text(text_bot(EMERGENCY, sid=SID))
    assert sorry.startswith("Sorry, something went wrong")
    assert inbound(db, SID).status == "failed" and alerts(db) == []

    assert not sweep(app, outbox, after=timedelta(seconds=5))  # still within the request's claim
    with time_machine.travel(utcnow() + PAST_THE_DEADLINE, tick=False):
        report = run_sweep(db, outbox, app.extensions["smsbot.settings"])

    assert (report.swept, report.replied, report.paged) == (1, 1, 1)
    to_parent, to_oncall = outbox.outbox
    assert to_parent.to == PARENT and to_parent.body.startswith("Call 911 now")
    assert to_oncall.to == ONCALL and "emergency" in to_oncall.body.lower()  # paged at once
    assert alerts(db) == [("emergency", "emergency")]
    message = inbound(db, SID)
    assert (message.status, message.level, message.attempts) == ("processed", "emergency", 2)
    with db.session() as session:
        reply = session.scalar(select(Message).where(Message.reply_to_id == message.id))
        assert (reply.status, reply.provider_sid, reply.body) == ("queued", to_parent.sid, to_parent.body)
    # Nothing is done twice: not by another sweep, nor by Twilio retrying the webhook.
    assert not sweep(app, outbox, after=timedelta(minutes=5))
    assert reply_text(text_bot(EMERGENCY, sid=SID)) is None
    assert len(outbox.outbox) == 2 and alerts(db) == [("emergency", "emergency")]

    assert recovery("failed") == before["failed"] + 1
    assert recovery("error_reply") == before["error_reply"] + 1
    assert recovery("swept") == before["swept"] + 1
    assert recovery("swept_reply_sent") == before["swept_reply_sent"] + 1
    logged = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    assert "sweeper triaged inbound message" in logged and "5550100001" not in logged
    assert "lips" not in logged and "Call 911" not in logged


def test_a_provider_retry_processes_a_failed_text_at_once(app, db, text_bot, outbox):
    retried = recovery("retried")
    with fault(db, "reply"):
        reply_text(text_bot(EMERGENCY, sid="SM" + "2" * 32))
    assert reply_text(text_bot(EMERGENCY, sid="SM" + "2" * 32)).startswith("Call 911")
    assert inbound(db, "SM" + "2" * 32).status == "processed" and alerts(db) == [("emergency", "emergency")]
    assert recovery("retried") == retried + 1
    assert not sweep(app, outbox) and outbox.outbox == []  # answered in TwiML, not again by REST


def test_a_failed_text_from_an_opted_out_family_gets_no_reply_from_anyone(app, db, text_bot, outbox):
    assert reply_text(text_bot("STOP")).startswith("Baby Tremor Helper: you are unsubscribed")
    withheld = recovery("error_reply_withheld")
    with fault(db, "processed"):
        assert reply_text(text_bot(EMERGENCY, sid="SM" + "3" * 32)) is None
    assert recovery("error_reply_withheld") == withheld + 1

    report = sweep(app, outbox)
    assert (report.swept, report.replied) == (1, 0) and outbox.outbox == []
    assert alerts(db) == [("emergency", "emergency")]  # still triaged and alerted


def test_a_stop_whose_processing_failed_gets_no_sorry_and_is_honoured_by_the_sweeper(
    app, db, text_bot, outbox
):
    with fault(db, "reply"):
        assert reply_text(text_bot("stop", sid="SM" + "4" * 32)) is None
    assert sweep(app, outbox).swept == 1
    with db.session() as session:
        assert session.scalar(select(Family.opted_out_at).where(Family.phone == PARENT)) is not None
    # The STOP confirmation is the one message an opt-out gets.
    assert [m.body.split(":")[0] for m in outbox.outbox] == ["Baby Tremor Helper"]


def test_a_text_that_fails_every_run_is_given_up_and_its_clinic_alerted(app, db, text_bot, outbox):
    gave_up = recovery("gave_up")
    with fault(db, "reply"):
        reply_text(text_bot(ROUTINE, sid="SM" + "5" * 32))
        for run in range(1, MAX_ATTEMPTS):
            report = sweep(app, outbox, after=PAST_THE_DEADLINE * run)
            assert (report.failed, report.swept) == (1, 0)
        assert inbound(db, "SM" + "5" * 32).attempts == MAX_ATTEMPTS
        report = sweep(app, outbox, after=PAST_THE_DEADLINE * MAX_ATTEMPTS)
    assert (report.gave_up, report.failed) == (1, 0)
    assert alerts(db) == [("urgent", "unprocessed")]
    assert recovery("gave_up") == gave_up + 1
    message = inbound(db, "SM" + "5" * 32)
    assert (message.status, message.claimed_until) == ("failed", None)
    assert not sweep(app, outbox, after=timedelta(hours=1)) and outbox.outbox == []


def test_sweepers_running_at_once_triage_and_answer_each_text_once(app, db, outbox, post_signed):
    phones = [f"+1555020{n:04d}" for n in range(12)] + [OTHER_PARENT]
    with fault(db, "reply"):
        for n, phone in enumerate(phones):
            form = {"MessageSid": f"SM{n:032d}", "From": phone, "Body": EMERGENCY}
            reply_text(post_signed("/twilio/sms", form))

    reports = concurrently(4, lambda _i: sweep(app, outbox))

    assert sum(r.swept for r in reports) == len(phones) and sum(r.replied for r in reports) == len(phones)
    assert sorted(m.to for m in outbox.outbox) == sorted(phones)
    with db.session() as session:
        statuses = session.execute(
            select(Message.direction, Message.status, func.count()).group_by(
                Message.direction, Message.status
            )
        ).all()
        assert sorted(map(tuple, statuses)) == [
            ("in", "processed", len(phones)),
            ("out", "queued", len(phones)),
        ]
        assert session.scalar(select(func.count(Alert.id))) == len(phones)
