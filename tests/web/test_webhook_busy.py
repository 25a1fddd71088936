"""A text that arrives while another process holds SQLite's write lock: answered in time,
with a 503 Twilio retries when the lock outlasts the busy timeout, and processed once."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select

from smsbot.db import SQLITE_BUSY_SECONDS
from smsbot.models import Message
from tests.web.test_webhook import reply_text

pytestmark = pytest.mark.skipif(
    __import__("os").environ.get("SMSBOT_TEST_BACKEND") == "postgres", reason="SQLite's database lock"
)
SID = "SM" + "b" * 32
EMERGENCY = "his lips are blue and he is jerking"


@contextmanager
def write_lock(db, seconds: float) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Another process's transaction holds the write lock for ``seconds`` (or until the block ends)."""
    connection = sqlite3.connect(db.engine.url.database, isolation_level=None, check_same_thread=False)
    connection.execute("BEGIN IMMEDIATE")
    released = threading.Event()

    def release() -> None:
        released.wait(seconds)
        connection.execute("ROLLBACK")
        connection.close()

    thread = threading.Thread(target=release)
    thread.start()
    try:
        yield
    finally:
        released.set()
        thread.join()


def test_the_busy_timeout_is_well_inside_twilios_budget():
    assert SQLITE_BUSY_SECONDS <= 7.5


def test_a_text_waits_out_a_short_lock_and_is_answered(text_bot, db):
    with write_lock(db, 1.0):
        started = time.monotonic()
        response = text_bot(EMERGENCY, sid=SID)
    assert time.monotonic() - started < 15
    assert "911" in reply_text(response)


def test_a_lock_outlasting_the_busy_timeout_is_a_503_and_the_retry_is_processed_once(text_bot, db):
    with write_lock(db, 60):
        started = time.monotonic()
        response = text_bot(EMERGENCY, sid=SID)
        waited = time.monotonic() - started
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.headers["Retry-After"] == "1"
    assert waited < 15
    retry = text_bot(EMERGENCY, sid=SID)  # Twilio's retry, with the same MessageSid
    assert "911" in reply_text(retry)
    assert "911" in reply_text(text_bot(EMERGENCY, sid=SID))  # and a second one is a duplicate
    with db.session() as session:
        assert session.scalar(select(func.count()).where(Message.direction == "in")) == 1
        assert session.scalar(select(func.count()).where(Message.direction == "out")) == 1
