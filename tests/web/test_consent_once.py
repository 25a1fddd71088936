"""A consent text goes out exactly once, even when the send's outcome is unknown: a timeout or
a server error after Twilio may have taken it, or a process that died between the send and the
write that records it. The real Twilio client talks to the local fake Twilio API.

The crash is simulated at the transport seam, as the check-in reconciliation tests do: a send
raises ``ProcessDied`` (a ``BaseException``, as SIGKILL ends a process before any ``except``
runs), so the request's last commit never happens.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from smsbot import clinics, privacy
from smsbot.db import Database
from smsbot.messaging.console import MemoryTransport
from smsbot.messaging.twilio import TwilioTransport
from smsbot.models import Message, utcnow
from tests.clinic_fixtures import *  # noqa: F403
from tests.clinic_fixtures import PROGRAMME
from tests.fake_twilio import FakeTwilio
from tests.twilio_fixtures import *  # noqa: F403
from tests.twilio_fixtures import SENDER

PARENT = "+15550100001"


class ProcessDied(BaseException):
    """The process ended here: nothing after this point runs, no ``except Exception`` catches it."""


class DyingTransport:
    """Passes the send through to ``inner`` (or not, with ``before_send``), then the process dies."""

    def __init__(self, inner: TwilioTransport, *, before_send: bool = False) -> None:
        self.inner, self.before_send = inner, before_send

    def send(self, to: str, body: str, **opts: Any) -> str:
        if not self.before_send:
            self.inner.send(to, body, **opts)
        raise ProcessDied


@pytest.fixture
def slow_twilio(fake: FakeTwilio) -> Iterator[TwilioTransport]:
    """A client that gives up after 0.2 s: the fake, told to take 0.5 s, answers too late."""
    transport = TwilioTransport(fake.account_sid, fake.auth_token, SENDER, api_url=fake.url, timeout=0.2)
    yield transport
    transport.close()


def enroll(api: Callable[..., Any]) -> dict[str, Any]:
    response = api("POST", "/families", json={"phone": PARENT, "programme": PROGRAMME})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def enroll_and_die(
    app: Flask, api: Callable[..., Any], twilio: TwilioTransport, **how: bool
) -> dict[str, Any]:
    """Enroll through the API in a process that dies at the consent send; the family as recorded."""
    app.extensions["smsbot.transport"] = DyingTransport(twilio, **how)
    with pytest.raises(ProcessDied):
        api("POST", "/families", json={"phone": PARENT, "programme": PROGRAMME})
    app.extensions["smsbot.transport"] = twilio
    [family] = api("GET", "/families").get_json()["data"]  # recorded before the send
    return family


def shown(api: Callable[..., Any], family_id: int) -> tuple[str, str | None]:
    family = api("GET", f"/families/{family_id}").get_json()
    return family["consent"], family["consent_error"]


def settle(app: Flask, db: Database, transport: Any, at: datetime) -> int:
    """One run of the consent job, as the scheduler makes it, at ``at``."""
    return clinics.retry_consents(db, transport, app.extensions["smsbot.settings"], at)


def after_lease(app: Flask) -> datetime:
    return utcnow() + timedelta(seconds=app.extensions["smsbot.settings"].claim_lease_seconds + 1)


def consent_rows(db: Database) -> list[tuple[str, str | None]]:
    with db.session() as session:
        rows = session.query(Message).filter_by(kind="consent").order_by(Message.id)
        return [(m.status, m.provider_sid) for m in rows]


def assert_sent_once_and_recorded(
    api: Callable[..., Any], db: Database, fake: FakeTwilio, family_id: int
) -> None:
    """Twilio was asked once, and the one text it took is the family's recorded consent request."""
    [accepted] = fake.sent_to(PARENT)
    assert fake.attempts == 1
    assert shown(api, family_id) == ("requested", None)
    assert consent_rows(db) == [("queued", accepted.sid)]


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def test_a_consent_text_that_timed_out_after_twilio_took_it_is_not_sent_again(
    app, api, db, fake, slow_twilio
):
    app.extensions["smsbot.transport"] = slow_twilio
    fake.delay = 0.5  # Twilio takes the message, but answers after our timeout
    family = enroll(api)
    wait_for(lambda: fake.count() == 1)
    fake.delay = 0

    assert shown(api, family["id"]) == ("sending", "Twilio: network error (ReadTimeout)")
    assert settle(app, db, slow_twilio, utcnow() + timedelta(seconds=30)) == 0  # still backing off
    assert settle(app, db, slow_twilio, utcnow() + timedelta(hours=1)) == 0  # found at Twilio
    assert settle(app, db, slow_twilio, utcnow() + timedelta(days=1)) == 0

    assert_sent_once_and_recorded(api, db, fake, family["id"])


def test_enrolling_again_while_the_outcome_is_unknown_sends_nothing_more(app, api, db, fake, slow_twilio):
    app.extensions["smsbot.transport"] = slow_twilio
    fake.delay = 0.5
    family = enroll(api)
    wait_for(lambda: fake.count() == 1)
    fake.delay = 0

    again = api("POST", "/families", json={"phone": PARENT, "programme": PROGRAMME})
    assert (again.status_code, again.get_json()["consent"]) == (200, "sending")
    settle(app, db, slow_twilio, utcnow() + timedelta(hours=1))

    assert fake.attempts == 1
    assert shown(api, family["id"]) == ("requested", None)


def test_a_server_error_is_looked_up_then_retried_once_and_sent_once(app, api, db, fake, twilio):
    app.extensions["smsbot.transport"] = twilio
    fake.fail_next(1, status=500)  # Twilio did not take it, but the sender cannot know that
    family = enroll(api)
    consent, error = shown(api, family["id"])
    assert consent == "sending" and "HTTP 500" in error

    assert settle(app, db, twilio, utcnow() + timedelta(hours=1)) == 1  # not at Twilio: sent again
    assert settle(app, db, twilio, utcnow() + timedelta(days=1)) == 0

    [sent] = fake.sent_to(PARENT)
    assert fake.attempts == 2
    assert shown(api, family["id"]) == ("requested", None)
    assert consent_rows(db) == [("failed", None), ("queued", sent.sid)]


def test_a_server_error_after_twilio_took_the_message_is_recorded_not_resent(app, api, db, fake, twilio):
    app.extensions["smsbot.transport"] = twilio
    fake.fail_after_accepting(1, status=502)
    family = enroll(api)
    assert shown(api, family["id"])[0] == "sending"

    assert settle(app, db, twilio, utcnow() + timedelta(hours=1)) == 0

    assert_sent_once_and_recorded(api, db, fake, family["id"])


def test_a_process_that_died_after_sending_is_recovered_without_a_second_text(app, api, db, fake, twilio):
    family = enroll_and_die(app, api, twilio)
    assert shown(api, family["id"]) == ("sending", None)

    assert settle(app, db, twilio, utcnow() + timedelta(seconds=30)) == 0  # the lease still holds
    assert consent_rows(db) == [("sending", None)]
    assert settle(app, db, twilio, after_lease(app)) == 0  # found at Twilio: recorded

    assert_sent_once_and_recorded(api, db, fake, family["id"])
    # Enrolling again, as a clinic would after an error page, sends nothing new.
    assert api("POST", "/families", json={"phone": PARENT, "programme": PROGRAMME}).status_code == 200
    assert fake.attempts == 1


def test_a_process_that_died_before_sending_is_recovered_with_one_text(app, api, db, fake, twilio):
    family = enroll_and_die(app, api, twilio, before_send=True)

    assert settle(app, db, twilio, after_lease(app)) == 1  # not at Twilio: sent now

    [sent] = fake.sent_to(PARENT)
    assert shown(api, family["id"]) == ("requested", None)
    assert consent_rows(db) == [("failed", None), ("queued", sent.sid)]


def test_a_permanent_error_on_the_recovered_send_shows_as_failed_with_the_reason(app, api, db, fake, twilio):
    family = enroll_and_die(app, api, twilio, before_send=True)
    fake.fail_number(PARENT, code=21211)

    assert settle(app, db, twilio, after_lease(app)) == 1
    assert settle(app, db, twilio, utcnow() + timedelta(days=1)) == 0  # permanent: not retried

    assert fake.attempts == 1 and fake.count() == 0
    assert shown(api, family["id"]) == ("failed", "Twilio 21211: invalid 'To' number (HTTP 400)")


def test_concurrent_consent_jobs_settle_and_resend_each_text_once(app, api, db, fake, twilio):
    """Several workers run the consent job at once (PostgreSQL, SKIP LOCKED): one text per family."""
    if not db.is_postgres:
        pytest.skip("concurrent workers are a PostgreSQL deployment")
    app.extensions["smsbot.transport"] = twilio
    taken = [f"+1555020{n:04d}" for n in range(10)]
    refused = [f"+1555030{n:04d}" for n in range(10)]
    fake.fail_after_accepting(len(taken), status=502)
    for phone in taken:
        assert api("POST", "/families", json={"phone": phone, "programme": PROGRAMME}).status_code == 201
    fake.fail_next(len(refused), status=503)
    for phone in refused:
        assert api("POST", "/families", json={"phone": phone, "programme": PROGRAMME}).status_code == 201
    at = utcnow() + timedelta(hours=1)
    settings = app.extensions["smsbot.settings"]

    def worker() -> int:
        own = Database(db.url)  # an engine per worker, as per process
        try:
            return clinics.retry_consents(own, twilio, settings, at)
        finally:
            own.engine.dispose()

    start = threading.Barrier(3)
    sent: list[int] = []

    def run() -> None:
        start.wait()
        sent.append(worker())

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(sent) == len(refused)
    assert Counter(m.form["To"] for m in fake.requests) == dict.fromkeys(taken + refused, 1)
    families = api("GET", "/families?limit=100").get_json()["data"]
    assert {f["consent"] for f in families} == {"requested"}


class ErasingTransport(MemoryTransport):
    """Sends, and meanwhile the family is erased (the clinic's DELETE lands during the send)."""

    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db

    def send(self, to: str, body: str, **opts: Any) -> str:
        sid = super().send(to, body, **opts)
        with self.db.session() as session:
            [family] = privacy.find_family(session, PARENT)
            privacy.erase_family(session, family, now=utcnow(), by="test")
        return sid


def test_a_family_erased_while_its_consent_text_was_out_leaves_nothing_to_record(app, api, db):
    app.extensions["smsbot.transport"] = ErasingTransport(db)
    response = api("POST", "/families", json={"phone": PARENT, "programme": PROGRAMME})
    assert response.status_code == 201
    assert api("GET", "/families").get_json()["data"] == []
    assert consent_rows(db) == []
