"""Staff sign-in under parallel guesses, through the dashboard's login form: every try is
counted as it arrives, so no more than five are ever checked before the account locks."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from dashboard_fixtures import NURSE, PASSWORD, World, build_world, csrf_token, sign_in
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from smsbot.db import Database
from smsbot.models import Staff, utcnow
from smsbot.web import staff_auth
from smsbot.web.staff_auth import LOCKOUT, MAX_FAILED_LOGINS, authenticate

GUESS = "wrong guess"


@pytest.fixture
def world(db: Database) -> World:
    return build_world(db, utcnow())


def nurse_row(db: Database) -> Staff:
    with db.session() as session:
        staff = session.scalar(select(Staff).where(Staff.email == NURSE))
        assert staff is not None
        return staff


def is_refused(response: TestResponse) -> bool:
    return response.status_code == 200 and "Wrong email or password" in response.get_data(as_text=True)


def test_eleven_parallel_wrong_passwords_take_five_tries_and_lock_the_account(
    app: Flask, db: Database, world: World
) -> None:
    guessers = [app.test_client() for _ in range(11)]
    tokens = [csrf_token(client, "/dashboard/login") for client in guessers]
    start = threading.Barrier(len(guessers))

    def guess(client: FlaskClient, token: str) -> TestResponse:
        start.wait()
        return client.post("/dashboard/login", data={"email": NURSE, "password": GUESS, "csrf_token": token})

    with ThreadPoolExecutor(len(guessers)) as pool:
        responses = list(pool.map(guess, guessers, tokens))

    assert all(is_refused(response) for response in responses)
    staff = nurse_row(db)
    # Exactly five were counted (and checked); the six that came once it locked were not.
    assert staff.failed_logins == MAX_FAILED_LOGINS and staff.locked_until is not None
    assert is_refused(sign_in(app.test_client()))


def test_right_password_sent_while_five_wrong_ones_are_still_being_checked_is_refused(
    app: Flask, db: Database, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race of a burst of guesses: hashing is slow, so the guesses that came first may
    not have failed yet when a later one arrives. They have already taken their tries."""
    checking, finish = threading.Semaphore(0), threading.Event()
    check_password_hash = staff_auth.check_password_hash

    def guesses_held_in_their_hash_check(pwhash: str, password: str) -> bool:
        if password == GUESS:
            checking.release()
            finish.wait()
        return check_password_hash(pwhash, password)

    monkeypatch.setattr(staff_auth, "check_password_hash", guesses_held_in_their_hash_check)
    with ThreadPoolExecutor(MAX_FAILED_LOGINS) as pool:
        try:
            guesses = [
                pool.submit(sign_in, app.test_client(), password=GUESS) for _ in range(MAX_FAILED_LOGINS)
            ]
            for _ in guesses:
                assert checking.acquire(timeout=60), "a guess never reached its password check"
            right = sign_in(app.test_client())
        finally:
            finish.set()
    assert is_refused(right)
    assert all(is_refused(guess.result()) for guess in guesses)
    assert nurse_row(db).locked_until is not None


def test_a_lapsed_lock_gives_five_new_tries(db: Database, world: World) -> None:
    now = utcnow()
    later = now + LOCKOUT + timedelta(seconds=1)
    with db.session() as session:
        for _ in range(MAX_FAILED_LOGINS):
            authenticate(session, NURSE, GUESS, now=now)
        for _ in range(MAX_FAILED_LOGINS - 1):
            assert authenticate(session, NURSE, GUESS, now=later) is None
        assert authenticate(session, NURSE, PASSWORD, now=later) is not None
        for _ in range(MAX_FAILED_LOGINS):
            assert authenticate(session, NURSE, GUESS, now=later) is None
        assert authenticate(session, NURSE, PASSWORD, now=later) is None
