"""Parallel wrong passwords against ``smsbot serve --prod`` (gunicorn: several worker
processes) on PostgreSQL, over real HTTP: each try is counted as it arrives, so once five
are taken the right password is refused while the guesses are still being checked."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from devtools.demo import add_clinic
from smsbot.db import Database, upgrade
from smsbot.models import Staff
from smsbot.web.staff_auth import MAX_FAILED_LOGINS
from tests.dashboard_fixtures import PASSWORD, add_nurse
from tests.http_visitor import Page, Visitor, is_refused_sign_in
from tests.postgres import scratch_postgres_database
from tests.test_serve_e2e import free_port, smsbot_process, wait_until_serving

SERVER_URL = os.environ.get("SMSBOT_TEST_DATABASE_URL", "")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not SERVER_URL, reason="set SMSBOT_TEST_DATABASE_URL to a PostgreSQL server"),
]

GUESSES = 11
ROUNDS = 3


@dataclass(frozen=True)
class Site:
    base: str
    db: Database


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with scratch_postgres_database(SERVER_URL) as url:
        upgrade(url)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            "SMSBOT_DATABASE_URL": url,
            "SMSBOT_TRANSPORT": "console",
            "SMSBOT_PUBLIC_URL": base,
            "SMSBOT_SECRET_KEY": "staff-auth-postgres-test",
            # --prod execs gunicorn from PATH: the one installed beside this Python.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        database = Database(url)
        with smsbot_process(["serve", "--prod", "--port", str(port)], env, tmp_path) as process:
            wait_until_serving(base, process)
            try:
                yield Site(base, database)
            finally:
                database.close()


def account(db: Database, email: str) -> Staff:
    with db.session() as session:
        staff = session.scalar(select(Staff).where(Staff.email == email))
        assert staff is not None
        return staff


def wait_until_locked(db: Database, email: str) -> None:
    deadline = time.monotonic() + 60
    while account(db, email).locked_until is None:
        assert time.monotonic() < deadline, "the guesses never locked the account"
        time.sleep(0.01)


def send_guesses(pool: ThreadPoolExecutor, base: str, email: str) -> list[Future[Page]]:
    """``GUESSES`` wrong passwords for ``email``, sent at the same moment from as many visitors."""
    guessers = [Visitor(base) for _ in range(GUESSES)]
    forms = [
        {"email": email, "password": "wrong guess", "csrf_token": guesser.csrf_token("/dashboard/login")}
        for guesser in guessers
    ]
    start = threading.Barrier(GUESSES)

    def guess(guesser: Visitor, form: dict[str, str]) -> Page:
        start.wait()
        return guesser.open("/dashboard/login", form)

    return [pool.submit(guess, guesser, form) for guesser, form in zip(guessers, forms, strict=True)]


def test_parallel_wrong_passwords_under_gunicorn_lock_out_the_right_one(site: Site) -> None:
    with site.db.session() as session:
        clinic = add_clinic(session, "Riverside Pediatrics", "riverside")
        emails = [f"nurse{n}@riverside.example" for n in range(ROUNDS)]
        for email in emails:
            add_nurse(session, clinic, email)

    for email in emails:
        with ThreadPoolExecutor(GUESSES) as pool:
            guesses = send_guesses(pool, site.base, email)
            wait_until_locked(site.db, email)
            right = Visitor(site.base).sign_in(email, PASSWORD)  # while guesses are still checked

        assert is_refused_sign_in(right), email
        assert all(is_refused_sign_in(pending.result()) for pending in guesses)
        # Five tries were counted; the guesses that came after the lock were refused unchecked.
        assert account(site.db, email).failed_logins == MAX_FAILED_LOGINS
