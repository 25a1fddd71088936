"""The webhook on PostgreSQL when the server drops the pooled connections between two texts."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, text

from smsbot.db import normalise_url
from smsbot.models import Message
from tests.test_webhook import count, reply_text

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
