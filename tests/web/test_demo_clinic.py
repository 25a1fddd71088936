"""The README's demo clinic comes out of the real pipeline: every parent text is stored,
triaged and answered by smsbot, never written in by hand."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from devtools.demo import seed_demo
from smsbot.models import Alert, AlertDelivery, CheckIn, Message, utcnow
from smsbot.triage import assess


def test_every_demo_reply_is_the_one_the_pipeline_gave(app: Flask) -> None:
    database, settings = app.extensions["smsbot.db"], app.extensions["smsbot.settings"]
    seed_demo(database, settings, utcnow())
    with database.session() as session:
        inbound = session.scalars(select(Message).where(Message.direction == "in")).all()
        replies = {m.reply_to_id: m for m in session.scalars(select(Message).where(Message.kind == "reply"))}
        alerts = session.scalars(select(Alert)).all()
        answered = session.scalars(select(CheckIn).where(CheckIn.status == "answered")).all()
        emergency = next(m for m in inbound if m.level == "emergency")
        assert all(message.id in replies for message in inbound)
        assert assess(emergency.body).level == "emergency"
        assert replies[emergency.id].body.startswith("Call 911 now")
        assert {(alert.level, alert.message_id) for alert in alerts} >= {("emergency", emergency.id)}
        assert all(alert.clinic_id is not None for alert in alerts)
        assert answered, "check-ins were sent and answered through the pipeline"
        # The on-call pages went out as the courier sends them, none left waiting.
        deliveries = session.scalars(select(AlertDelivery)).all()
        assert deliveries and {d.status for d in deliveries} == {"sent"}
