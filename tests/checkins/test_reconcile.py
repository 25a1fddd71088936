"""A worker that dies mid-send: its claimed check-ins are reconciled with the provider after
the lease, so what reached Twilio is recorded (not sent again) and what did not is sent once.

The crash is simulated at the transport seam: a send raises ``WorkerDied`` (a
``BaseException``, as SIGKILL would end the process before any ``except`` runs), so the
batch's commit never happens and its rows stay ``sending`` with their lease.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from smsbot.checkins.dispatch import DispatchReport, dispatch_due
from smsbot.checkins.schedule import schedule_after_decision
from smsbot.db import Database
from smsbot.messaging import SentRecord, TransportError
from smsbot.messaging.console import MemoryTransport
from smsbot.messaging.twilio import TwilioTransport
from smsbot.models import CheckIn, Event, Message
from tests.checkin_fixtures import PARENT_PHONE, add_family, all_checkins, checkin_database, make_settings
from tests.fake_twilio import FakeTwilio

REPORTED = datetime(2026, 11, 27, 15)  # 10:00 in New York
DAY_1 = datetime(2026, 11, 28, 15)  # the routine programme's first check-in
LEASE = timedelta(seconds=30)
AFTER_LEASE = DAY_1 + LEASE + timedelta(seconds=1)
PARENTS = ["+15550100001", "+15550100002", "+15550100003"]


class WorkerDied(BaseException):
    """The process ended here: nothing after this point runs, no ``except Exception`` catches it."""


class CrashingTransport:
    """Passes sends through to ``inner`` and dies on the ``die_on``-th one, after or before it."""

    def __init__(self, inner: Any, *, die_on: int, after_send: bool) -> None:
        self.inner, self.die_on, self.after_send = inner, die_on, after_send
        self.calls = 0
        self.dead = False
        self._lock = threading.Lock()

    def send(self, to: str, body: str, **opts: Any) -> str:
        with self._lock:  # one send at a time, so "the Nth" is well defined
            self.calls += 1
            if self.dead or (self.calls == self.die_on and not self.after_send):
                self.dead = True  # a dead process sends nothing more
                raise WorkerDied
            sid = self.inner.send(to, body, **opts)
            if self.calls == self.die_on:
                self.dead = True
                raise WorkerDied  # Twilio has the message; our commit never happens
            return sid


db = pytest.fixture(checkin_database, name="db")


@pytest.fixture
def settings():
    return make_settings(claim_lease_seconds=LEASE.total_seconds())


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        fake.clock = lambda: DAY_1.replace(tzinfo=UTC)  # Twilio's clock agrees with dispatch's
        yield fake


@pytest.fixture
def twilio(fake: FakeTwilio) -> Iterator[TwilioTransport]:
    transport = TwilioTransport(fake.account_sid, fake.auth_token, "+15550009999", api_url=fake.url)
    yield transport
    transport.close()


def report_routine(db: Database, settings, phones: list[str] = PARENTS[:1]) -> None:
    """Each parent reports routine tremors: their first check-in is due on DAY_1."""
    with db.session() as session:
        for phone in phones:
            family = add_family(session, phone=phone)
            schedule_after_decision(session, family, "routine", now=REPORTED, settings=settings)


def crash_dispatch(
    db: Database, transport: CrashingTransport, settings, now: datetime = DAY_1, **kwargs: Any
) -> None:
    with pytest.raises(WorkerDied):
        dispatch_due(db, transport, settings, now, send_threads=1, **kwargs)


def sent_rows(db: Database) -> list[tuple[str, str | None]]:
    return [(c.status, c.provider_sid) for c in all_checkins(db) if c.due_at <= AFTER_LEASE]


def message_sids(db: Database) -> list[str]:
    with db.session() as session:
        return list(session.scalars(select(Message.provider_sid).order_by(Message.id)))


def test_a_checkin_twilio_accepted_before_the_worker_died_is_recorded_not_resent(db, settings, fake, twilio):
    report_routine(db, settings)
    crash_dispatch(db, CrashingTransport(twilio, die_on=1, after_send=True), settings)
    [accepted] = fake.requests
    assert sent_rows(db) == [("sending", None)]

    assert not dispatch_due(db, twilio, settings, DAY_1 + LEASE / 2)  # the lease still holds
    report = dispatch_due(db, twilio, settings, AFTER_LEASE)

    assert (report.reconciled, report.recovered, report.sent) == (1, 0, 1)
    assert fake.count() == 1
    assert sent_rows(db) == [("sent", accepted.sid)]
    assert message_sids(db) == [accepted.sid]
    checkin = all_checkins(db)[0]
    assert (checkin.attempts, checkin.sent_at, checkin.claimed_until) == (1, AFTER_LEASE, None)
    with db.session() as session:
        event = session.scalars(select(Event).where(Event.kind == "claim_reconciled")).one()
    assert event.detail == {"checkin_id": checkin.id, "sid": accepted.sid}


def test_a_checkin_the_worker_died_before_sending_is_sent_exactly_once(db, settings, fake, twilio):
    report_routine(db, settings)
    crash_dispatch(db, CrashingTransport(twilio, die_on=1, after_send=False), settings)
    assert fake.count() == 0

    report = dispatch_due(db, twilio, settings, AFTER_LEASE)

    assert (report.reconciled, report.recovered, report.sent) == (0, 1, 1)
    [accepted] = fake.requests
    assert sent_rows(db) == [("sent", accepted.sid)]
    assert message_sids(db) == [accepted.sid]
    assert all_checkins(db)[0].attempts == 2  # the lost claim counts, so a poison row stops


def test_a_batch_cut_in_the_middle_is_finished_with_one_message_per_parent(db, settings, fake, twilio):
    report_routine(db, settings, PARENTS)
    # Sends are in claim order on one thread: the first two reach Twilio, the third never does.
    crash_dispatch(db, CrashingTransport(twilio, die_on=2, after_send=True), settings)
    assert fake.count() == 2

    report = dispatch_due(db, twilio, settings, AFTER_LEASE)

    assert (report.reconciled, report.recovered, report.sent) == (2, 1, 3)
    assert Counter(m.form["To"] for m in fake.requests) == dict.fromkeys(PARENTS, 1)
    assert sorted(sent_rows(db)) == sorted(("sent", m.sid) for m in fake.requests)
    assert sorted(message_sids(db)) == sorted(m.sid for m in fake.requests)


def test_a_message_already_recorded_for_another_checkin_is_not_taken_for_this_one(db, settings, fake, twilio):
    report_routine(db, settings)
    with db.session() as session:  # a second check-in with the same text, due a minute later
        first = session.get(CheckIn, 1)
        session.add(
            CheckIn(
                family_id=first.family_id,
                programme=first.programme,
                step=first.step,
                due_at=first.due_at + timedelta(minutes=1),
                dedupe_key="same-text-twice",
            )
        )
    # One check-in per batch (a family gets one check-in per batch): the first is sent and
    # recorded, the worker dies before sending the second.
    crash_dispatch(
        db,
        CrashingTransport(twilio, die_on=2, after_send=False),
        settings,
        batch_size=1,
        now=DAY_1 + timedelta(minutes=1),
    )
    assert fake.count() == 1

    report = dispatch_due(db, twilio, settings, AFTER_LEASE + timedelta(minutes=1))

    assert (report.reconciled, report.recovered, report.sent) == (0, 1, 1)
    assert fake.count() == 2
    rows = [(c.status, c.provider_sid) for c in all_checkins(db) if c.status != "pending"]
    assert sorted(rows) == sorted(("sent", m.sid) for m in fake.requests)


def test_a_failed_lookup_keeps_the_claim_and_a_later_run_reconciles_it(db, settings):
    class FlakyLookup(MemoryTransport):
        down = True

        def find_sent(self, to: str, since: datetime) -> list[SentRecord]:
            if self.down:
                raise TransportError("Twilio: Twilio unavailable (HTTP 503)", status=503)
            return super().find_sent(to, since)

    transport = FlakyLookup()
    transport.clock = lambda: DAY_1
    report_routine(db, settings)
    crash_dispatch(db, CrashingTransport(transport, die_on=1, after_send=True), settings)

    assert not dispatch_due(db, transport, settings, AFTER_LEASE)
    checkin = all_checkins(db)[0]
    assert checkin.status == "sending"
    assert checkin.last_error.startswith("lease expired; provider lookup failed")

    transport.down = False
    assert not dispatch_due(db, transport, settings, AFTER_LEASE + LEASE / 2)  # its new lease holds
    report = dispatch_due(db, transport, settings, AFTER_LEASE + LEASE * 2)

    assert (report.reconciled, report.sent, len(transport.outbox)) == (1, 1, 1)
    assert sent_rows(db) == [("sent", transport.outbox[0].sid)]


def test_a_lookup_refused_for_good_resends_instead_of_holding_the_claim_forever(db, settings):
    class NoReadAccess(MemoryTransport):
        def find_sent(self, to: str, since: datetime) -> list[SentRecord]:
            raise TransportError("Twilio 20003: authentication failed (HTTP 403)", status=403, permanent=True)

    transport = NoReadAccess()
    transport.clock = lambda: DAY_1
    report_routine(db, settings)
    crash_dispatch(db, CrashingTransport(transport, die_on=1, after_send=False), settings)

    report = dispatch_due(db, transport, settings, AFTER_LEASE)

    assert (report.recovered, report.sent, len(transport.outbox)) == (1, 1, 1)
    assert sent_rows(db) == [("sent", transport.outbox[0].sid)]


def test_a_transport_that_cannot_look_resends_and_says_so(db, settings):
    class SendOnly:
        def __init__(self) -> None:
            self.sent: list[str] = []

        def send(self, to: str, body: str, **opts: Any) -> str:
            self.sent.append(to)
            return f"SM{len(self.sent):032d}"

    transport = SendOnly()
    report_routine(db, settings)
    crash_dispatch(db, CrashingTransport(transport, die_on=1, after_send=True), settings)

    report = dispatch_due(db, transport, settings, AFTER_LEASE)

    assert (report.reconciled, report.recovered, report.sent) == (0, 1, 1)
    assert transport.sent == [PARENT_PHONE, PARENT_PHONE]  # the known trade-off without a lookup
    assert sent_rows(db) == [("sent", "SM" + "2".zfill(32))]


def test_memory_transport_finds_what_it_sent_to_one_number_since_a_time(outbox):
    times = iter([DAY_1, DAY_1 + timedelta(minutes=5), DAY_1 + timedelta(minutes=6)])
    outbox.clock = lambda: next(times)
    old = outbox.send(PARENTS[0], "old")
    new = outbox.send(PARENTS[0], "new")
    outbox.send(PARENTS[1], "someone else")

    assert outbox.find_sent(PARENTS[0], DAY_1 + timedelta(minutes=1)) == [
        SentRecord(new, "new", DAY_1 + timedelta(minutes=5))
    ]
    assert [r.sid for r in outbox.find_sent(PARENTS[0], DAY_1)] == [new, old]  # newest first


def test_twilio_transport_finds_what_twilio_accepted_for_one_number_since_a_time(fake, twilio):
    moments = iter(datetime(2026, 11, 28, 15, minute, tzinfo=UTC) for minute in (0, 10, 11, 12))
    fake.clock = lambda: next(moments)
    old = twilio.send(PARENTS[0], "How is Ana today?")
    new = twilio.send(PARENTS[0], "How is Ana today?")
    twilio.send(PARENTS[1], "How is Ana today?")
    newest = twilio.send(PARENTS[0], "¿Cómo está Ana hoy?")

    found = twilio.find_sent(PARENTS[0], datetime(2026, 11, 28, 15, 5))

    assert found == [
        SentRecord(newest, "¿Cómo está Ana hoy?", datetime(2026, 11, 28, 15, 12)),
        SentRecord(new, "How is Ana today?", datetime(2026, 11, 28, 15, 10)),
    ]
    assert old not in {r.sid for r in twilio.find_sent(PARENTS[0], datetime(2026, 11, 28, 15, 1))}


def test_twilio_transport_lookup_errors_are_transport_errors(fake, twilio):
    fake.auth_token = "rotated"  # every request now answers 401 / 20003

    with pytest.raises(TransportError) as raised:
        twilio.find_sent(PARENT_PHONE, DAY_1)

    assert (raised.value.code, raised.value.status, raised.value.permanent) == (20003, 401, False)


def test_the_fake_ignores_a_create_cut_off_mid_body(fake):
    """A worker killed while writing its request must not get a message sent with half a body."""
    host, port = fake.url.removeprefix("http://").split(":")
    body = f"To=%2B15550100001&From=%2B15550009999&Body={'x' * 200}".encode()
    head = (
        f"POST /2010-04-01/Accounts/{fake.account_sid}/Messages.json HTTP/1.1\r\n"
        f"Host: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(head + body[:40])
        connection.shutdown(socket.SHUT_WR)
        assert connection.recv(100) == b""  # closed without an answer

    assert (fake.count(), fake.attempts) == (0, 0)


def test_concurrent_reconcilers_share_a_dead_workers_claims_without_duplicates(db, settings, fake, twilio):
    """Several workers reconcile at once (PostgreSQL, SKIP LOCKED): each stale row is looked at once."""
    if not db.is_postgres:
        pytest.skip("concurrent dispatchers are a PostgreSQL deployment")
    phones = [f"+1555020{n:04d}" for n in range(60)]
    report_routine(db, settings, phones)
    # The worker claimed everything due in one batch and died after 40 sends.
    crash_dispatch(db, CrashingTransport(twilio, die_on=40, after_send=True), settings, batch_size=100)
    assert fake.count() == 40

    def worker() -> DispatchReport:
        own = Database(db.url)  # an engine per worker, as per process
        try:
            return dispatch_due(own, twilio, settings, AFTER_LEASE, batch_size=7)
        finally:
            own.engine.dispose()

    reports = run_concurrently(3, worker)

    assert sum(r.reconciled for r in reports) == 40
    assert sum(r.recovered for r in reports) == 20
    assert Counter(m.form["To"] for m in fake.requests) == dict.fromkeys(phones, 1)
    assert sorted(sent_rows(db)) == sorted(("sent", m.sid) for m in fake.requests)
    assert sorted(message_sids(db)) == sorted(m.sid for m in fake.requests)


def run_concurrently(count: int, call: Callable[[], DispatchReport]) -> list[DispatchReport]:
    start = threading.Barrier(count)
    reports: list[DispatchReport] = []
    errors: list[BaseException] = []

    def run() -> None:
        start.wait()
        try:
            reports.append(call())
        except BaseException as exc:  # surfaced in the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    return reports


def test_a_send_that_timed_out_after_twilio_accepted_it_is_recorded_not_sent_twice(db, settings, fake):
    report_routine(db, settings)
    slow = TwilioTransport(fake.account_sid, fake.auth_token, "+15550009999", api_url=fake.url, timeout=0.2)
    fake.delay = 0.5  # Twilio takes the message, but answers after our timeout
    try:
        report = dispatch_due(db, slow, settings, DAY_1)
        wait_for(lambda: fake.count() == 1)
        fake.delay = 0
        checkin = all_checkins(db)[0]
        assert (report.retried, checkin.status, checkin.attempts) == (1, "sending", 0)
        assert checkin.last_error == "Twilio: network error (ReadTimeout)"

        assert not dispatch_due(db, slow, settings, DAY_1 + timedelta(seconds=30))  # backing off
        report = dispatch_due(db, slow, settings, DAY_1 + timedelta(minutes=2))
    finally:
        slow.close()

    assert (report.reconciled, report.recovered, report.sent) == (1, 0, 1)
    [accepted] = fake.requests
    assert sent_rows(db) == [("sent", accepted.sid)]
    assert message_sids(db) == [accepted.sid]


def test_a_server_error_after_twilio_took_the_message_is_recorded_not_resent(db, settings, fake, twilio):
    report_routine(db, settings)
    fake.fail_after_accepting(1, status=502)

    report = dispatch_due(db, twilio, settings, DAY_1)
    checkin = all_checkins(db)[0]
    assert (report.retried, checkin.status, checkin.attempts) == (1, "sending", 0)

    assert not dispatch_due(db, twilio, settings, DAY_1 + timedelta(seconds=30))  # backing off
    report = dispatch_due(db, twilio, settings, DAY_1 + timedelta(minutes=2))

    assert (report.reconciled, report.recovered, report.sent) == (1, 0, 1)
    [accepted] = fake.requests
    assert sent_rows(db) == [("sent", accepted.sid)]


def test_a_send_that_never_reached_twilio_is_looked_up_then_sent_once(db, settings, fake, twilio):
    report_routine(db, settings)
    with socket.socket() as closed:  # a port nothing listens on: the connection is refused
        closed.bind(("127.0.0.1", 0))
        unreachable = TwilioTransport(
            fake.account_sid,
            fake.auth_token,
            "+15550009999",
            api_url=f"http://127.0.0.1:{closed.getsockname()[1]}",
        )
        try:
            assert dispatch_due(db, unreachable, settings, DAY_1).retried == 1
        finally:
            unreachable.close()

    report = dispatch_due(db, twilio, settings, DAY_1 + timedelta(minutes=2))

    assert (report.reconciled, report.recovered, report.sent) == (0, 1, 1)
    [accepted] = fake.requests
    assert sent_rows(db) == [("sent", accepted.sid)]
    assert all_checkins(db)[0].attempts == 2


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
