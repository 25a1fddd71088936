"""Staff sign-in through the dashboard's login form: under parallel guesses every try is
counted as it arrives, so no more than five are ever checked before the account locks; and
signing out, a new password or disabling the account ends its sessions on the server."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from dashboard_fixtures import (
    NURSE,
    OTHER_NURSE,
    PASSWORD,
    World,
    build_world,
    csrf_token,
    post_form,
    sign_in,
)
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from smsbot import clinics
from smsbot.db import Database
from smsbot.models import Staff, utcnow
from smsbot.web import staff_auth
from smsbot.web.staff_auth import LOCKOUT, MAX_FAILED_LOGINS, authenticate

GUESS = "wrong guess"
NEW_PASSWORD = "a new password for the nurse"


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


def test_right_password_still_being_checked_when_later_guesses_lock_the_account_is_refused(
    app: Flask, db: Database, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    checking, finish = threading.Event(), threading.Event()
    check_password_hash = staff_auth.check_password_hash

    def right_password_held_in_its_hash_check(pwhash: str, password: str) -> bool:
        if password == PASSWORD:
            checking.set()
            finish.wait()
        return check_password_hash(pwhash, password)

    monkeypatch.setattr(staff_auth, "check_password_hash", right_password_held_in_its_hash_check)
    with ThreadPoolExecutor(1) as pool:
        try:
            right = pool.submit(sign_in, app.test_client())
            assert checking.wait(timeout=60), "the right password never reached its check"
            for _ in range(MAX_FAILED_LOGINS):
                assert is_refused(sign_in(app.test_client(), password=GUESS))
        finally:
            finish.set()
    assert is_refused(right.result())
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


# Sessions ---------------------------------------------------------------------------------


def signed_in(app: Flask, email: str = NURSE) -> FlaskClient:
    client = app.test_client()
    assert sign_in(client, email=email).status_code == 302
    assert client.get("/dashboard/").status_code == 200
    return client


def replayed(app: Flask, client: FlaskClient) -> FlaskClient:
    """Another browser holding a copy of ``client``'s session cookie, as it is now."""
    cookie = client.get_cookie("session")
    assert cookie is not None
    copy = app.test_client()
    copy.set_cookie("session", cookie.value)
    return copy


def is_sent_to_login(client: FlaskClient) -> bool:
    response = client.get("/dashboard/")
    return response.status_code == 302 and response.location.startswith("/dashboard/login")


def test_a_signed_out_cookie_replayed_is_sent_to_the_login_page(app: Flask, world: World) -> None:
    nurse = signed_in(app)
    copy = replayed(app, nurse)
    response = post_form(nurse, "/dashboard/", "/dashboard/logout", {})
    assert response.status_code == 302 and response.location == "/dashboard/login"
    assert is_sent_to_login(copy)


def test_signing_out_ends_the_accounts_sessions_in_other_browsers_only(app: Flask, world: World) -> None:
    nurse, nurse_elsewhere, coordinator = signed_in(app), signed_in(app), signed_in(app, OTHER_NURSE)
    post_form(nurse, "/dashboard/", "/dashboard/logout", {})
    assert is_sent_to_login(nurse_elsewhere)
    assert coordinator.get("/dashboard/").status_code == 200
    assert signed_in(app).get("/dashboard/").status_code == 200  # signing in again works


def test_a_new_password_ends_the_accounts_sessions(app: Flask, db: Database, world: World) -> None:
    nurse = signed_in(app)
    with db.session() as session:
        clinics.set_password(session, clinics.get_staff(session, NURSE), NEW_PASSWORD)
    assert is_sent_to_login(nurse)
    assert is_refused(sign_in(app.test_client()))
    assert sign_in(app.test_client(), password=NEW_PASSWORD).status_code == 302


def test_disabling_an_account_ends_its_sessions_and_refuses_its_password(
    app: Flask, db: Database, world: World
) -> None:
    nurse = signed_in(app)
    with db.session() as session:
        clinics.disable_staff(session, clinics.get_staff(session, NURSE), now=utcnow())
    assert is_sent_to_login(nurse)
    assert is_refused(sign_in(app.test_client()))
    with db.session() as session:
        clinics.enable_staff(clinics.get_staff(session, NURSE))
    assert is_sent_to_login(nurse)  # enabling again brings no old session back
    assert sign_in(app.test_client()).status_code == 302


@pytest.mark.parametrize("change", ["new password", "disabled"])
def test_an_account_changed_while_its_password_was_checked_is_not_signed_in(
    app: Flask, db: Database, world: World, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    check_password_hash = staff_auth.check_password_hash

    def change_the_account_during_the_check(pwhash: str, password: str) -> bool:
        with db.session() as session:
            staff = clinics.get_staff(session, NURSE)
            if change == "disabled":
                clinics.disable_staff(session, staff, now=utcnow())
            else:
                clinics.set_password(session, staff, NEW_PASSWORD)
        return check_password_hash(pwhash, password)

    monkeypatch.setattr(staff_auth, "check_password_hash", change_the_account_during_the_check)
    assert is_refused(sign_in(app.test_client()))
