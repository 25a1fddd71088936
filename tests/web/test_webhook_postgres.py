"""The webhook on PostgreSQL when the server drops connections: the pooled ones between two
texts, or the request's own in the middle of processing a text."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, func, select, text

from smsbot.conversation.sweeper import sweep_unprocessed
from smsbot.db import normalise_url
from smsbot.models import Alert, Message, utcnow
from tests.db_faults import fault
from tests.web.test_webhook import count, reply_text

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        os.environ.get("SMSBOT_TEST_BACKEND") != "postgres", reason="runs with SMSBOT_TEST_BACKEND=postgres"
    ),
]


def test_text_after_the_server_dropped_our_connections_is_stored_and_answered(text_bot, db):
    reply_text(text_bot("his arms are a bit jittery when he cries", sid="SM" + "1" * 32))
    admin = create_engine(normalise_url(os.environ["SMSBOT_TEST_DATABASE_URL"]))
    with admin.begin() as connection:
        dropped = connection.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": db.engine.url.database},
        )
    admin.dispose()
    assert dropped >= 1

    assert reply_text(text_bot("his arms are a bit jittery when he cries", sid="SM" + "2" * 32))
    assert count(db, Message.direction == "in") == 2


EMERGENCY = "his lips are blue and his arms keep jerking"
SID = "SM" + "3" * 32


def inbound_status(db) -> str:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return session.scalar(select(Message.status).where(Message.provider_sid == SID))


def open_alerts(db) -> int:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return session.scalar(select(func.count(Alert.id)))


def test_a_text_whose_connection_dropped_mid_request_is_processed_by_the_providers_retry(text_bot, db):
    with fault(db, "reply", drop_connection=True):
        sorry = reply_text(text_bot(EMERGENCY, sid=SID))
    # Recorded as failed on a fresh connection, so the retry need not wait for the sweeper.
    assert sorry.startswith("Sorry, something went wrong")
    assert inbound_status(db) == "failed" and open_alerts(db) == 0

    assert reply_text(text_bot(EMERGENCY, sid=SID)).startswith("Call 911")
    assert inbound_status(db) == "processed" and open_alerts(db) == 1


def test_a_text_a_dropped_connection_left_processing_is_swept_and_answered_by_rest(app, text_bot, db, outbox):
    with fault(db, "reply", "mark_failed", drop_connection=True):
        # Nothing could be recorded: no reply now, rather than a "sorry" to someone who may
        # have opted out.
        assert reply_text(text_bot(EMERGENCY, sid=SID)) is None
    assert inbound_status(db) == "processing"

    settings = app.extensions["smsbot.settings"]
    report = sweep_unprocessed(db, outbox, settings, now=utcnow() + timedelta(seconds=31))

    assert (report.swept, report.replied) == (1, 1)
    assert [m.body.split(".")[0] for m in outbox.outbox] == [
        "Call 911 now or go to the nearest emergency department"
    ]
    assert inbound_status(db) == "processed" and open_alerts(db) == 1
