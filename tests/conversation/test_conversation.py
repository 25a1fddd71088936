"""The conversation pipeline end to end through the webhook: follow-ups, answers, alerts."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from click.testing import CliRunner
from sqlalchemy import func, select

from smsbot.checkins.dispatch import dispatch_due
from smsbot.cli import main
from smsbot.models import Alert, CheckIn, Message, utcnow
from smsbot.triage import load_rules
from smsbot.triage.classifier import shipped_classifier
from tests.conftest import PARENT
from tests.web.test_webhook import reply_text


def checkins(db, status: str = "pending") -> list[CheckIn]:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return list(session.scalars(select(CheckIn).where(CheckIn.status == status).order_by(CheckIn.due_at)))


def alerts(db) -> list[Alert]:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return list(session.scalars(select(Alert)))


def send_first_checkin(app, db) -> CheckIn:  # type: ignore[no-untyped-def]
    """Let the first scheduled check-in go out, as the scheduler would when it is due."""
    first = checkins(db)[0]
    settings = app.extensions["smsbot.settings"]
    dispatch_due(db, app.extensions["smsbot.transport"], settings, first.due_at + timedelta(minutes=1))
    (sent,) = checkins(db, "sent")
    return sent


def test_routine_report_schedules_follow_up_checkins(text_bot, db):
    reply_text(text_bot("her legs shake when she cries, stops when i hold them"))
    pending = checkins(db)
    assert [c.programme for c in pending] == ["after_routine"] * len(pending)
    assert len(pending) >= 2
    assert all(c.due_at > utcnow() for c in pending)


def test_a_new_report_replaces_pending_follow_ups(text_bot, db):
    reply_text(text_bot("his arms shake when he cries"))
    before = len(checkins(db))
    reply_text(text_bot("his arms still shake a bit when he cries"))
    assert len(checkins(db)) == before


def test_retry_schedules_and_alerts_once(text_bot, db):
    for _ in range(3):
        reply_text(text_bot("she went blue and stiff", sid="SM" + "7" * 32))
    assert len(alerts(db)) == 1
    with db.session() as session:
        assert session.scalar(select(func.count(CheckIn.id))) == len(checkins(db))
        assert session.scalar(select(func.count(Message.id)).where(Message.direction == "in")) == 1


def test_emergency_alert_is_deduplicated_for_a_worried_parent(text_bot, db):
    reply_text(text_bot("his lips are blue"))
    reply_text(text_bot("lips still blue, calling 911"))
    assert [a.level for a in alerts(db)] == ["emergency"]


def test_stop_cancels_pending_checkins(text_bot, db):
    reply_text(text_bot("his legs tremble when he cries"))
    assert checkins(db)
    reply_text(text_bot("STOP"))
    assert checkins(db) == []
    assert checkins(db, "cancelled")


def test_answer_better_is_recorded_and_thanked(app, text_bot, db, outbox):
    reply_text(text_bot("her arms shake when she is hungry"))
    sent = send_first_checkin(app, db)
    assert outbox.outbox[-1].to == PARENT
    with time_machine.travel(sent.sent_at + timedelta(hours=1), tick=False):
        reply = reply_text(text_bot("1"))
    assert "glad" in reply.lower()
    with db.session() as session:
        answered = session.get(CheckIn, sent.id)
        assert (answered.status, answered.outcome) == ("answered", "better")


def test_answer_worse_escalates_and_alerts(app, text_bot, db):
    reply_text(text_bot("his legs shake when he cries"))
    sent = send_first_checkin(app, db)
    with time_machine.travel(sent.sent_at + timedelta(hours=1), tick=False):
        reply = reply_text(text_bot("3"))
    assert "doctor today" in reply.lower()
    with db.session() as session:
        assert session.get(CheckIn, sent.id).outcome == "worse"
        answer = session.scalar(select(Message).where(Message.direction == "in", Message.body == "3"))
        assert answer.level == "urgent" and answer.kind == "answer"
    assert [(a.level, a.reason) for a in alerts(db)] == [("urgent", "worse")]


def test_each_triaged_text_records_the_rules_and_classifier_that_decided_it(text_bot, db):
    reply_text(text_bot("his legs shake when he cries and stop when i hold them"))
    reply_text(text_bot("his lips are blue"))
    with db.session() as session:
        routine, emergency = session.scalars(
            select(Message).where(Message.direction == "in").order_by(Message.id)
        ).all()
    assert (routine.level, emergency.level) == ("routine", "emergency")
    assert routine.rules_version == emergency.rules_version == load_rules().version
    assert routine.model_version == shipped_classifier().version
    assert emergency.model_version is None  # the rules said emergency: nothing left to raise


def test_red_flag_in_a_checkin_answer_is_triaged_in_full(app, text_bot, db):
    reply_text(text_bot("his legs shake when he cries"))
    sent = send_first_checkin(app, db)
    with time_machine.travel(sent.sent_at + timedelta(hours=1), tick=False):
        reply = reply_text(text_bot("same but now his lips look blue"))
    assert reply.startswith("Call 911")
    with db.session() as session:
        assert session.get(CheckIn, sent.id).outcome == "worse"


def test_chat_uses_the_same_pipeline(tmp_path, monkeypatch):
    monkeypatch.setenv("SMSBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'chat.db'}")
    result = CliRunner().invoke(main, ["chat", "--phone", "+15550100009"], input="her lips are blue\nSTOP\n")
    assert result.exit_code == 0, result.output
    first, second = result.output.strip().splitlines()
    assert first.startswith("bot [emergency]> Call 911")
    assert second.startswith("bot [info]>") and "START" in second


def test_a_flooding_number_is_throttled_but_never_loses_an_emergency(make_app, db):
    from tests.conftest import PUBLIC_URL, twilio_signature

    client = make_app(flood_messages_per_minute=5).test_client()

    def text(n: int, body: str):  # type: ignore[no-untyped-def]
        form = {"MessageSid": f"SM{n:032d}", "From": PARENT, "Body": body}
        signature = twilio_signature(PUBLIC_URL + "/twilio/sms", form)
        return reply_text(client.post("/twilio/sms", data=form, headers={"X-Twilio-Signature": signature}))

    replies = [text(n, "his legs shake when he cries") for n in range(10)]
    assert replies[:5] == [replies[0]] * 5 and replies[0] is not None
    assert replies[5:] == [None] * 5
    assert text(99, "now his lips are blue").startswith("Call 911")
    with db.session() as session:
        assert session.scalar(select(func.count(Message.id)).where(Message.direction == "in")) == 11
    assert [a.level for a in alerts(db)] == ["emergency"]
