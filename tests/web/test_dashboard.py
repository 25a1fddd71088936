"""The clinic dashboard through Flask's test client: sign-in, CSRF, clinic isolation, the
alerts queue, families, the family page and the overview."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from dashboard_fixtures import (
    ANA_PHONE,
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
from markupsafe import escape
from sqlalchemy import select

from devtools.demo import add_alert, add_answers, add_checkin, add_enrollment, add_message
from smsbot import alerts, families
from smsbot.clinics import queries
from smsbot.db import Database
from smsbot.messaging.console import MemoryTransport
from smsbot.models import Alert, AlertDelivery, CheckIn, Clinic, Enrollment, Family, Staff, utcnow
from smsbot.triage import load_rules
from smsbot.web import charts
from smsbot.web.staff_auth import LOCKOUT, MAX_FAILED_LOGINS, authenticate


@pytest.fixture
def world(db: Database) -> World:
    return build_world(db, utcnow())


@pytest.fixture
def nurse(client: FlaskClient, world: World) -> FlaskClient:
    """A test client signed in as Riverside's nurse."""
    assert sign_in(client).status_code == 302
    return client


def _text(response) -> str:  # type: ignore[no-untyped-def]
    return response.get_data(as_text=True)


# Sign-in ----------------------------------------------------------------------------------


def test_signed_out_visitor_is_sent_to_the_login_page(client: FlaskClient, world: World) -> None:
    response = client.get(f"/dashboard/families/{world.ana_id}")
    assert response.status_code == 302
    assert response.location == f"/dashboard/login?next=/dashboard/families/{world.ana_id}"


def test_login_page_is_accessible_html(client: FlaskClient) -> None:
    html = _text(client.get("/dashboard/login"))
    assert '<html lang="en">' in html
    assert 'name="viewport"' in html
    for field in ("email", "password"):
        assert f'<label for="{field}">' in html and f'id="{field}"' in html


def test_nurse_signs_in_lands_on_the_queue_and_signs_out(client: FlaskClient, world: World) -> None:
    response = sign_in(client)
    assert response.status_code == 302 and response.location == "/dashboard/"
    assert "her lips look blue" in _text(client.get("/dashboard/"))

    response = post_form(client, "/dashboard/", "/dashboard/logout", {})
    assert response.status_code == 302 and response.location == "/dashboard/login"
    assert client.get("/dashboard/").status_code == 302


def test_session_cookie_is_httponly_lax_and_secure_behind_https(client: FlaskClient, world: World) -> None:
    cookie = sign_in(client).headers["Set-Cookie"]  # the tests' public URL is https://
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


def test_login_follows_next_only_within_the_dashboard(client: FlaskClient, world: World) -> None:
    token = csrf_token(client, "/dashboard/login")
    form = {"email": NURSE, "password": PASSWORD, "csrf_token": token}
    response = client.post("/dashboard/login?next=//evil.example/x", data=form)
    assert response.location == "/dashboard/"
    client.post("/dashboard/logout", data={"csrf_token": csrf_token(client, "/dashboard/")})
    form["csrf_token"] = csrf_token(client, "/dashboard/login")
    response = client.post("/dashboard/login?next=/dashboard/overview", data=form)
    assert response.location == "/dashboard/overview"


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(
    client: FlaskClient, world: World
) -> None:
    wrong = _text(sign_in(client, password="nope"))
    unknown = _text(sign_in(client, email="nobody@riverside.example"))
    assert "Wrong email or password" in wrong
    assert re.sub(r'value="[^"]*"', "", wrong) == re.sub(r'value="[^"]*"', "", unknown)
    assert client.get("/dashboard/").status_code == 302


def test_five_wrong_passwords_lock_the_account_for_fifteen_minutes(db: Database, world: World) -> None:
    now = utcnow()
    with db.session() as session:
        for _ in range(MAX_FAILED_LOGINS):
            assert authenticate(session, NURSE, "guess", now=now) is None
        assert authenticate(session, NURSE, PASSWORD, now=now + LOCKOUT - timedelta(seconds=1)) is None
        staff = authenticate(session, NURSE.upper(), PASSWORD, now=now + LOCKOUT + timedelta(seconds=1))
        assert staff is not None and staff.failed_logins == 0 and staff.locked_until is None


def test_a_success_resets_the_failure_count(db: Database, world: World) -> None:
    now = utcnow()
    with db.session() as session:
        for _ in range(MAX_FAILED_LOGINS - 1):
            authenticate(session, NURSE, "guess", now=now)
        assert authenticate(session, NURSE, PASSWORD, now=now) is not None
        authenticate(session, NURSE, "guess", now=now)
        staff = session.scalar(select(Staff).where(Staff.email == NURSE))
        assert staff is not None and staff.failed_logins == 1 and staff.locked_until is None


# CSRF -------------------------------------------------------------------------------------


def test_form_posted_without_its_csrf_token_is_refused(
    nurse: FlaskClient, world: World, db: Database
) -> None:
    response = nurse.post(f"/dashboard/alerts/{world.ana_alert_id}/acknowledge", data={"note": "called"})
    assert response.status_code == 400
    assert "text/html" in response.content_type and "form has expired" in _text(response)
    with db.session() as session:
        assert session.get(Alert, world.ana_alert_id).acknowledged_at is None  # type: ignore[union-attr]


def test_login_without_csrf_token_is_refused(client: FlaskClient, world: World) -> None:
    response = client.post("/dashboard/login", data={"email": NURSE, "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/dashboard/").status_code == 302


def test_twilio_webhooks_are_not_csrf_protected(post_signed) -> None:  # type: ignore[no-untyped-def]
    form = {"MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered"}
    assert post_signed("/twilio/status", form).status_code == 204


# Isolation --------------------------------------------------------------------------------


def test_nurse_cannot_reach_another_clinics_family_or_alert(
    nurse: FlaskClient, world: World, db: Database
) -> None:
    token = csrf_token(nurse, "/dashboard/")
    assert nurse.get(f"/dashboard/families/{world.bo_id}").status_code == 404
    assert nurse.get(f"/dashboard/families/{2**40}").status_code == 404  # not a database error
    ack = nurse.post(
        f"/dashboard/alerts/{world.bo_alert_id}/acknowledge", data={"note": "x", "csrf_token": token}
    )
    unenroll = nurse.post(f"/dashboard/families/{world.bo_id}/unenroll", data={"csrf_token": token})
    assert ack.status_code == 404 and unenroll.status_code == 404
    assert "text/html" in ack.content_type
    html = _text(nurse.get("/dashboard/")) + _text(nurse.get("/dashboard/families?q=0009"))
    assert "fever and shaking" not in html and "•••0009" not in html  # (a CSRF token may contain "Bo")
    with db.session() as session:
        assert session.get(Alert, world.bo_alert_id).acknowledged_at is None  # type: ignore[union-attr]
        enrollment = session.scalar(select(Enrollment).where(Enrollment.family_id == world.bo_id))
        assert enrollment is not None and enrollment.status == "active"


# Alerts -----------------------------------------------------------------------------------


def test_queue_shows_most_severe_then_oldest_first(db: Database, world: World) -> None:
    now = utcnow()
    with db.session() as session:
        clinic = session.get(Clinic, world.riverside_id)
        family = session.get(Family, world.ana_id)
        assert clinic is not None and family is not None
        for hours, level in [(5, "urgent"), (9, "urgent"), (2, "emergency")]:
            at = now - timedelta(hours=hours)
            add_alert(session, clinic, add_message(session, family, "in", level, at=at, level=level), at=at)
        queue = [row.alert for row in queries.open_alerts(session, world.riverside_id)]
        order = [(alert.level, round((now - alert.created_at).total_seconds() / 3600)) for alert in queue]
    assert order == [("emergency", 2), ("emergency", 1), ("urgent", 9), ("urgent", 5)]


def test_undelivered_checkin_alert_asks_the_nurse_to_call(
    app: Flask, nurse: FlaskClient, world: World, db: Database
) -> None:
    with db.session() as session:
        family = session.get(Family, world.ana_id)
        assert family is not None
        alerts.raise_alert(
            session,
            app.extensions["smsbot.settings"],
            family,
            level=alerts.UNDELIVERED_LEVEL,
            reason="undelivered",
            message=None,
            now=utcnow(),
        )
    html = _text(nurse.get("/dashboard/"))
    assert "check-in not delivered" in html
    assert html.index("her lips look blue") < html.index("Texts to this number are not getting through")


def test_a_family_that_texted_stop_is_shown_as_one_to_phone_not_text(
    nurse: FlaskClient, world: World, db: Database
) -> None:
    with db.session() as session:
        family = session.get(Family, world.ana_id)
        assert family is not None
        families.opt_out(session, family, now=utcnow(), source="keyword")
    card = _text(nurse.get("/dashboard/")).split(f'id="alert-{world.ana_alert_id}"')[1]
    assert "Texted STOP" in card.split("</li>")[0]
    page = _text(nurse.get(f"/dashboard/families/{world.ana_id}"))
    assert "Texted STOP" in page and "status-opted-out" in page


def test_the_alert_link_opens_straight_after_signing_in(
    client: FlaskClient, world: World, db: Database
) -> None:
    with db.session() as session:
        alert = session.get(Alert, world.ana_alert_id)
        assert alert is not None and alert.message is not None
        alert.message.flags = ["colour-change", "jitters-reported"]  # as triage stored them
    link = f"/dashboard/alerts/{world.ana_alert_id}"
    response = client.get(link)
    assert response.status_code == 302 and response.location == f"/dashboard/login?next={link}"
    token = csrf_token(client, response.location)
    response = client.post(
        response.location, data={"email": NURSE, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302 and response.location == link

    page = client.get(link)
    assert page.status_code == 200
    html = _text(page)
    assert "•••0001 · Ana" in html and "her lips look blue" in html
    assert f'href="tel:{ANA_PHONE}"' in html and "+1 555-010-0001" in html
    reason = {rule.id: rule for rule in load_rules().rules}["colour-change"].reason["en"]
    assert str(escape(reason)) in html and "rule colour-change" in html
    assert "jitters-reported" not in html  # a routine finding did not raise the alert
    assert f'action="/dashboard/alerts/{world.ana_alert_id}/acknowledge"' in html


def test_acknowledging_on_the_alert_page_comes_back_to_it(nurse: FlaskClient, world: World) -> None:
    link = f"/dashboard/alerts/{world.ana_alert_id}"
    response = post_form(
        nurse, link, f"{link}/acknowledge", {"note": "Called dad: going to the ED", "from": "alert"}
    )
    assert response.status_code == 302 and response.location == link
    html = _text(nurse.get(link))
    assert "Acknowledged" in html and "Called dad: going to the ED" in html and 'name="note"' not in html


def test_the_alert_page_shows_how_the_clinic_was_told(nurse: FlaskClient, world: World, db: Database) -> None:
    with db.session() as session:
        session.add(
            AlertDelivery(
                alert_id=world.ana_alert_id,
                channel="webhook",
                status="failed",
                attempts=6,
                last_error="HTTP 503",
            )
        )
    html = _text(nurse.get(f"/dashboard/alerts/{world.ana_alert_id}"))
    assert "Webhook · failed after 6 tries" in html and "HTTP 503" in html


def test_a_walk_in_texters_alert_opens_without_a_family_page(
    nurse: FlaskClient, world: World, db: Database
) -> None:
    """The default clinic's alert for a parent nobody enrolled: the number to call, no enrollment."""
    with db.session() as session:
        clinic = session.get(Clinic, world.riverside_id)
        walk_in = Family(phone="+15550100077")
        session.add(walk_in)
        session.flush()
        text = add_message(session, walk_in, "in", "she is blue", at=utcnow(), level="emergency")
        alert_id = add_alert(session, clinic, text, at=utcnow()).id  # type: ignore[arg-type]
    assert '•••0077 <span class="muted">(not enrolled)</span>' in _text(nurse.get("/dashboard/"))
    html = _text(nurse.get(f"/dashboard/alerts/{alert_id}"))
    assert 'href="tel:+15550100077"' in html and "Not enrolled at your clinic" in html


def test_only_the_alerts_own_clinic_can_open_it(client: FlaskClient, world: World) -> None:
    sign_in(client, OTHER_NURSE)
    for alert_id in (world.ana_alert_id, world.bo_alert_id + 1000, 2**40):
        response = client.get(f"/dashboard/alerts/{alert_id}")
        assert response.status_code == 404
        assert ANA_PHONE not in _text(response) and "her lips look blue" not in _text(response)
    assert client.get(f"/dashboard/alerts/{world.bo_alert_id}").status_code == 200


def test_acknowledged_alert_leaves_the_queue_and_enters_the_history(
    nurse: FlaskClient, world: World, db: Database
) -> None:
    response = post_form(
        nurse,
        "/dashboard/",
        f"/dashboard/alerts/{world.ana_alert_id}/acknowledge",
        {"note": "Called mum, going to the ED"},
    )
    assert response.status_code == 302
    queue = _text(nurse.get("/dashboard/"))
    assert "acknowledged" in queue and "her lips look blue" not in queue
    history = _text(nurse.get("/dashboard/alerts/history"))
    assert "her lips look blue" in history and "Called mum, going to the ED" in history and NURSE in history
    with db.session() as session:
        alert = session.get(Alert, world.ana_alert_id)
        assert alert is not None and alert.acknowledged_by == NURSE and alert.acknowledged_at is not None


def test_acknowledging_needs_a_note(nurse: FlaskClient, world: World, db: Database) -> None:
    post_form(nurse, "/dashboard/", f"/dashboard/alerts/{world.ana_alert_id}/acknowledge", {"note": "  "})
    assert "Write what was done" in _text(nurse.get("/dashboard/"))
    with db.session() as session:
        assert session.get(Alert, world.ana_alert_id).acknowledged_at is None  # type: ignore[union-attr]


def test_second_acknowledgement_keeps_the_first(nurse: FlaskClient, world: World, db: Database) -> None:
    action = f"/dashboard/alerts/{world.ana_alert_id}/acknowledge"
    post_form(nurse, "/dashboard/", action, {"note": "first"})
    post_form(nurse, "/dashboard/", action, {"note": "second"})
    assert "already acknowledged" in _text(nurse.get("/dashboard/"))
    with db.session() as session:
        assert session.get(Alert, world.ana_alert_id).ack_note == "first"  # type: ignore[union-attr]


# Families ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "found"),
    [("0001", True), ("ana", True), ("", True), ("9999", False), ("Zoe", False), ("%", False)],
)
def test_families_are_searchable_by_last_digits_or_baby_name(
    nurse: FlaskClient, world: World, query: str, found: bool
) -> None:
    html = _text(nurse.get("/dashboard/families", query_string={"q": query}))
    assert ("•••0001 · Ana" in html) is found
    assert ANA_PHONE not in html  # never the full number


def test_families_are_paginated(db: Database, world: World) -> None:
    with db.session() as session:
        clinic = session.get(Clinic, world.riverside_id)
        assert clinic is not None
        for n in range(30):
            add_enrollment(session, clinic, f"+1555020{n:04d}", baby_name=f"Baby {n}", at=utcnow())
        session.flush()
        first = queries.search_families(session, world.riverside_id, page=1)
        last = queries.search_families(session, world.riverside_id, page=99)
    assert (first.total, first.pages, len(first.rows)) == (31, 2, 25)
    assert (last.number, len(last.rows)) == (2, 6)


def test_another_clinic_enrolling_the_same_phone_sees_none_of_this_clinics_family(
    client: FlaskClient, world: World, db: Database
) -> None:
    with db.session() as session:
        lakeside = session.get(Clinic, world.lakeside_id)
        assert lakeside is not None
        add_enrollment(session, lakeside, ANA_PHONE, baby_name=None, at=utcnow(), status="awaiting_consent")
    sign_in(client, OTHER_NURSE)
    listing = _text(client.get("/dashboard/families?q=0001"))
    page = _text(client.get(f"/dashboard/families/{world.ana_id}"))
    for html in (listing, page):
        assert "•••0001" in html and "Ana" not in html
        assert "badge-emergency" not in html  # Ana's last level, from her texts to Riverside
    assert "her lips look blue" not in page and "No messages yet" in page


@pytest.mark.parametrize(
    ("enrollment_status", "opted_out", "undeliverable", "shown"),
    [
        ("awaiting_consent", False, False, "awaiting YES"),
        ("active", False, False, "active"),
        ("active", True, False, "opted out"),
        ("active", False, True, "undeliverable"),
        ("ended", True, False, "opted out"),
        ("ended", False, False, "ended"),
    ],
)
def test_family_status_says_what_a_nurse_needs(
    enrollment_status: str, opted_out: bool, undeliverable: bool, shown: str
) -> None:
    now = utcnow()
    family = Family(
        phone=ANA_PHONE,
        opted_out_at=now if opted_out else None,
        undeliverable_at=now if undeliverable else None,
    )
    assert queries.FamilyRow(family, Enrollment(status=enrollment_status)).status == shown


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("phone", "12"),
        ("phone", ""),
        ("language", "fr"),
        ("baby_name", "x" * 101),
        ("baby_birth_date", "31/12/2025"),
        ("baby_birth_date", "2001-01-01"),
        ("programme", "tremor-forever"),
    ],
)
def test_enroll_form_shows_the_error_next_to_the_field_at_fault(
    nurse: FlaskClient, db: Database, outbox: MemoryTransport, field: str, value: str
) -> None:
    form = {"phone": "(555) 010-0042", "language": "en", "programme": "clinic_followup", field: value}
    response = post_form(nurse, "/dashboard/families/new", "/dashboard/families/new", form)
    html = _text(response)
    assert response.status_code == 400
    assert f'id="{field}" name="{field}" aria-invalid="true" aria-describedby="{field}-error"' in html
    assert f'<p class="field-error" id="{field}-error">' in html and f'<a href="#{field}">' in html
    with db.session() as session:
        assert session.scalar(select(Family).where(Family.phone == "+15550100042")) is None
    assert outbox.outbox == []


def test_enroll_form_enrolls_a_family_and_asks_for_consent(
    nurse: FlaskClient, world: World, db: Database, outbox: MemoryTransport
) -> None:
    form = {"phone": "(555) 010-0042", "language": "es", "baby_name": "Zoe", "programme": "clinic_by_age"}
    response = post_form(nurse, "/dashboard/families/new", "/dashboard/families/new", form)
    assert response.status_code == 302
    with db.session() as session:
        family = session.scalar(select(Family).where(Family.phone == "+15550100042"))
        assert family is not None
        enrollment = session.scalar(select(Enrollment).where(Enrollment.family_id == family.id))
        assert enrollment is not None
        assert (enrollment.clinic_id, enrollment.status, enrollment.programme) == (
            world.riverside_id,
            "awaiting_consent",
            "clinic_by_age",
        )
        assert (enrollment.language, enrollment.baby_name) == ("es", "Zoe")  # the clinic's own details
    assert response.location == f"/dashboard/families/{family.id}"
    assert "awaiting YES" in _text(nurse.get(response.location))
    assert [message.to for message in outbox.outbox] == ["+15550100042"]

    again = post_form(nurse, "/dashboard/families/new", "/dashboard/families/new", form)
    assert again.status_code == 302 and "already enrolled here" in _text(nurse.get(again.location))
    assert len(outbox.outbox) == 1  # one consent text, however often the form is sent


def test_unenroll_ends_follow_up_and_cancels_pending_checkins(
    nurse: FlaskClient, world: World, db: Database
) -> None:
    with db.session() as session:
        enrollment = session.scalar(select(Enrollment).where(Enrollment.family_id == world.ana_id))
        assert enrollment is not None
        add_checkin(session, enrollment, 1, due=utcnow() + timedelta(days=1))
    page = f"/dashboard/families/{world.ana_id}"
    assert post_form(nurse, page, f"{page}/unenroll", {}).status_code == 302
    with db.session() as session:
        enrollment = session.scalar(select(Enrollment).where(Enrollment.family_id == world.ana_id))
        checkin = session.scalar(select(CheckIn))
        assert enrollment is not None and enrollment.status == "ended" and enrollment.ended_at is not None
        assert checkin is not None and checkin.status == "cancelled"
    assert "ended" in _text(nurse.get(page))


# Family page and overview -----------------------------------------------------------------


def test_family_page_shows_the_timeline_checkins_and_answers_chart(
    nurse: FlaskClient, world: World, db: Database
) -> None:
    now = utcnow()
    with db.session() as session:
        enrollment = session.scalar(select(Enrollment).where(Enrollment.family_id == world.ana_id))
        assert enrollment is not None
        add_message(
            session,
            enrollment.family,
            "out",
            "Call 911 now.",
            at=now,
            level="emergency",
            status="undelivered",
        )
        add_answers(session, enrollment, ["better", "worse"], now=now)
        add_checkin(session, enrollment, 3, due=now + timedelta(days=1))
    html = _text(nurse.get(f"/dashboard/families/{world.ana_id}"))
    assert html.index("her lips look blue") < html.index("Call 911 now.")
    assert "undelivered" in html and 'class="badge badge-emergency"' in html
    assert "Step 3 · due" in html and "answer: <strong>worse</strong>" in html
    svg = re.search(r"<svg class=\"chart answers-chart\".*?</svg>", html, re.S)
    assert svg is not None
    assert svg.group(0).count("<circle") == 2 and 'role="img"' in svg.group(0)
    assert "1 better, 0 same, 1 worse" in html


def test_overview_counts_the_clinics_week(nurse: FlaskClient, world: World, db: Database) -> None:
    now = utcnow()
    with db.session() as session:
        enrollment = session.scalar(select(Enrollment).where(Enrollment.family_id == world.ana_id))
        assert enrollment is not None
        add_message(session, enrollment.family, "in", "old news", at=now - timedelta(days=8), level="urgent")
        add_checkin(session, enrollment, 1, due=now - timedelta(days=1), status="answered", outcome="same")
        add_checkin(session, enrollment, 2, due=now - timedelta(hours=1), status="undelivered")
        counts = queries.overview(session, world.riverside_id, now=now)
    assert counts.messages_by_level == {"emergency": 1, "urgent": 0, "routine": 0, "info": 0}
    assert counts.checkins == {"sent": 2, "answered": 1, "undelivered": 1}
    assert counts.open_alerts == 1
    html = _text(nurse.get("/dashboard/overview"))
    assert html.count('<svg class="chart bar-chart"') == 2 and "<title>Emergency: 1</title>" in html


def test_chart_text_is_escaped() -> None:
    svg = charts.bar_chart([charts.Bar("<script>", 3, '"x')], label="a & b")
    assert "<script>" not in svg and 'aria-label="a &amp; b"' in svg


def test_pages_send_no_store_and_no_framing_headers(nurse: FlaskClient, world: World) -> None:
    response = nurse.get("/dashboard/overview")
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_other_clinics_nurse_sees_only_her_own_queue(client: FlaskClient, world: World) -> None:
    sign_in(client, email=OTHER_NURSE)
    html = _text(client.get("/dashboard/"))
    assert "fever and shaking" in html and "her lips look blue" not in html
