"""Delivery status callbacks for our outbound messages."""

from __future__ import annotations

from sqlalchemy import select

from smsbot.models import Family, Message
from tests.conftest import PARENT


def outbound(db, sid: str = "SM" + "a" * 32) -> int:  # type: ignore[no-untyped-def]
    with db.session() as session:
        family = Family(phone=PARENT)
        session.add(family)
        session.flush()
        message = Message(
            family_id=family.id, direction="out", kind="checkin", body="hi", provider_sid=sid, status="queued"
        )
        session.add(message)
        session.flush()
        return message.id


def status_of(db, message_id: int) -> tuple[str, int | None]:  # type: ignore[no-untyped-def]
    with db.session() as session:
        message = session.get(Message, message_id)
        return message.status, message.error_code


def callback(post_signed, status: str, sid: str = "SM" + "a" * 32, **extra: str):  # type: ignore[no-untyped-def]
    return post_signed("/twilio/status", {"MessageSid": sid, "MessageStatus": status, **extra})


def test_status_callback_records_delivery(post_signed, db):
    message_id = outbound(db)
    assert callback(post_signed, "delivered").status_code == 204
    assert status_of(db, message_id) == ("delivered", None)


def test_late_sent_never_overwrites_delivered(post_signed, db):
    message_id = outbound(db)
    callback(post_signed, "delivered")
    callback(post_signed, "sent")
    assert status_of(db, message_id)[0] == "delivered"


def test_undelivered_records_the_error_code(post_signed, db):
    message_id = outbound(db)
    callback(post_signed, "undelivered", ErrorCode="30003")
    assert status_of(db, message_id) == ("undelivered", 30003)


def test_unsigned_status_callback_is_refused(client, db):
    message_id = outbound(db)
    response = client.post(
        "/twilio/status",
        data={"MessageSid": "SM" + "a" * 32, "MessageStatus": "failed"},
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )
    assert response.status_code == 403
    assert status_of(db, message_id)[0] == "queued"


def test_unknown_status_is_a_400(post_signed, db):
    outbound(db)
    assert callback(post_signed, "exploded").status_code == 400


def test_status_for_an_unknown_sid_is_ignored(post_signed, db):
    assert callback(post_signed, "delivered", sid="SM" + "b" * 32).status_code == 204
    with db.session() as session:
        assert session.scalar(select(Message)) is None


def test_two_undelivered_checkins_alert_the_clinic(post_signed, db):
    from datetime import timedelta

    from smsbot.models import Alert, CheckIn, utcnow

    with db.session() as session:
        family = Family(phone=PARENT)
        session.add(family)
        session.flush()
        for step in (1, 2):
            sent_at = utcnow() - timedelta(days=3 - step)
            checkin = CheckIn(
                family_id=family.id,
                programme="after_routine",
                step=step,
                status="sent",
                due_at=sent_at,
                sent_at=sent_at,
                dedupe_key=f"test:{step}",
            )
            session.add(checkin)
            session.flush()
            session.add(
                Message(
                    family_id=family.id,
                    direction="out",
                    kind="checkin",
                    body="how is your baby?",
                    provider_sid=f"SM{step:032d}",
                    checkin_id=checkin.id,
                    status="sent",
                )
            )
    callback(post_signed, "undelivered", sid=f"SM{1:032d}", ErrorCode="30003")
    with db.session() as session:
        assert session.scalar(select(Alert)) is None
    callback(post_signed, "failed", sid=f"SM{2:032d}", ErrorCode="30005")
    with db.session() as session:
        assert [(a.reason, a.family_id) for a in session.scalars(select(Alert))] == [
            ("undelivered", family.id)
        ]
        assert {c.status for c in session.scalars(select(CheckIn))} == {"undelivered"}
