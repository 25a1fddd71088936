"""The workflow pages of the dashboard: texting a parent from the family page, the alert's
timeline, the needs-attention view, and the admin pages for escalation and staff."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dashboard_fixtures import ANA_PHONE, NURSE, OTHER_NURSE, PASSWORD, World, build_world, post_form, sign_in
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from devtools.demo import add_alert, add_checkin, add_enrollment, add_message
from smsbot import alerts, families
from smsbot.alerts import chain_settings
from smsbot.db import Database
from smsbot.messaging.console import MemoryTransport
from smsbot.models import Alert, Clinic, Family, Staff, utcnow


@pytest.fixture
def world(db: Database) -> World:
    return build_world(db, utcnow())


@pytest.fixture
def nurse(client: FlaskClient, world: World) -> FlaskClient:
    assert sign_in(client).status_code == 302
    return client


@pytest.fixture
def admin(db: Database, world: World, nurse: FlaskClient) -> FlaskClient:
    """Riverside's nurse, made a clinic admin."""
    with db.session() as session:
        session.scalar(select(Staff).where(Staff.email == NURSE)).role = "admin"
    return nurse


def text(response) -> str:  # type: ignore[no-untyped-def]
    return response.get_data(as_text=True)


def test_a_nurse_texts_the_parent_from_the_family_page_and_acknowledges_the_alert(
    nurse: FlaskClient, world: World, outbox: MemoryTransport, db: Database
) -> None:
    page = f"/dashboard/families/{world.ana_id}"
    assert "Also acknowledge the open alert" in text(nurse.get(page))
    sent = post_form(
        nurse, page, f"{page}/messages", {"text": "Nurse Kim here: calling you now", "acknowledge": "yes"}
    )
    assert sent.status_code == 302
    (delivered,) = outbox.outbox
    assert (delivered.to, delivered.body) == (
        ANA_PHONE,
        "Riverside Pediatrics: Nurse Kim here: calling you now",
    )
    thread = text(nurse.get(page))
    assert "Text sent to" in thread and "acknowledged 1 alert(s)" in thread
    assert f"<strong>{NURSE}</strong>" in thread  # the sender, not "smsbot"
    alert_page = text(nurse.get(f"/dashboard/alerts/{world.ana_alert_id}"))
    assert f"{NURSE} texted the parent" in alert_page and f"Acknowledged by {NURSE}" in alert_page
    with db.session() as session:
        assert session.get(Alert, world.ana_alert_id).acknowledged_by == NURSE


def test_a_quick_reply_is_sent_in_the_family_language(nurse, world, outbox) -> None:  # type: ignore[no-untyped-def]
    page = f"/dashboard/families/{world.ana_id}"
    assert post_form(nurse, page, f"{page}/messages", {"text": "", "template": "how_now"}).status_code == 302
    assert outbox.outbox[-1].body.startswith("Riverside Pediatrics: How is Ana now?")


def test_an_empty_text_is_refused_with_a_reason(nurse, world, outbox) -> None:  # type: ignore[no-untyped-def]
    page = f"/dashboard/families/{world.ana_id}"
    post_form(nurse, page, f"{page}/messages", {"text": "  "})
    assert "Not sent: write a text of 1 to 480 characters." in text(nurse.get(page))
    assert outbox.outbox == []


def test_a_nurse_cannot_text_another_clinics_family(nurse, world, outbox) -> None:  # type: ignore[no-untyped-def]
    page = f"/dashboard/families/{world.ana_id}"
    refused = post_form(nurse, page, f"/dashboard/families/{world.bo_id}/messages", {"text": "hello"})
    assert refused.status_code == 404
    assert outbox.outbox == []


def test_a_family_that_texted_stop_cannot_be_texted(nurse, world, db, outbox) -> None:  # type: ignore[no-untyped-def]
    with db.session() as session:
        families.opt_out(session, _family(session, world), now=utcnow(), source="keyword")
    page = f"/dashboard/families/{world.ana_id}"
    assert "This family texted STOP: phone them instead." in text(nurse.get(page))
    post_form(nurse, page, f"{page}/messages", {"text": "hello"})
    assert outbox.outbox == []


def _family(session, world) -> Family:  # type: ignore[no-untyped-def]
    return session.get(Family, world.ana_id)


def test_the_alert_page_shows_each_page_and_the_next_one(nurse, world, db, app: Flask, outbox) -> None:  # type: ignore[no-untyped-def]
    settings = app.extensions["smsbot.settings"]
    with db.session() as session:
        session.get(Clinic, world.riverside_id).oncall_phone = "+15550109999"
        alert = alerts.raise_alert(
            session,
            settings,
            _family(session, world),
            level="urgent",
            reason="urgent",
            message=None,
            now=utcnow(),
        )[0]
        alert_id = alert.id
    alerts.deliver_pending_alerts(db, outbox, settings)
    page = text(nurse.get(f"/dashboard/alerts/{alert_id}"))
    assert "Alert raised" in page and "Paged on-call phone" in page and "SMS delivered (page 1)" in page
    assert "Next page" in page


def test_needs_attention_lists_each_reason_with_the_last_contact(nurse, world, db) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    with db.session() as session:
        riverside = session.get(Clinic, world.riverside_id)
        quiet = add_enrollment(session, riverside, "+15550100011", baby_name="Cy", at=now - timedelta(days=5))
        for step in (1, 2):
            add_checkin(session, quiet, step, due=now - timedelta(days=3 - step), status="unanswered")
        unreachable = add_enrollment(
            session, riverside, "+15550100012", baby_name="Di", at=now - timedelta(days=5)
        )
        add_message(
            session,
            unreachable.family,
            "out",
            "How is Di?",
            at=now - timedelta(hours=3),
            status="undelivered",
        )
        stopped = add_enrollment(
            session, riverside, "+15550100013", baby_name="Ed", at=now - timedelta(days=5)
        )
        red_flag = add_message(
            session, stopped.family, "in", "he is blue", at=now - timedelta(hours=2), level="emergency"
        )
        add_alert(session, riverside, red_flag, at=red_flag.created_at)
        families.opt_out(session, stopped.family, now=now - timedelta(hours=1), source="keyword")
    page = text(nurse.get("/dashboard/attention"))
    assert "2 check-ins unanswered in a row" in page and "Cy" in page
    assert "texts could not be delivered" in page and "Di" in page
    assert "texted STOP while an alert was open: phone them" in page and "Ed" in page
    assert "Ana" not in page and "Bo" not in page  # nothing wrong there; Bo is not ours


def test_escalation_and_staff_pages_are_for_admins_only(nurse, world) -> None:  # type: ignore[no-untyped-def]
    assert nurse.get("/dashboard/escalation").status_code == 403
    assert nurse.get("/dashboard/staff").status_code == 403
    assert "Escalation" not in text(nurse.get("/dashboard/"))


def test_an_admin_sets_the_chain_from_the_dashboard(admin, world, db) -> None:  # type: ignore[no-untyped-def]
    page = "/dashboard/escalation"
    form = {"oncall_phone": "555 010 9999", "emergency_minutes": "5", "urgent_minutes": "30"}
    saved = post_form(admin, page, page, {**form, "clinic_hours": "07:00-19:00"})
    assert saved.status_code == 302
    post_form(
        admin, page, f"{page}/contacts", {"name": "Dr Rivera", "phone": "5550108888", "delay_minutes": ""}
    )
    post_form(
        admin,
        page,
        page,
        {"oncall_phone": "", "emergency_minutes": "0", "urgent_minutes": "30", "clinic_hours": "x"},
    )
    shown = text(admin.get(page))
    assert "Not saved:" in shown
    assert "Dr Rivera" in shown and "after the level's delay" in shown
    with db.session() as session:
        riverside = session.get(Clinic, world.riverside_id)
        assert (riverside.oncall_phone, riverside.emergency_delay_minutes, riverside.clinic_hours_start) == (
            "+15550109999", 5, "07:00"
        )  # fmt: skip
        (contact,) = chain_settings.contacts(session, riverside)
    post_form(admin, page, f"{page}/contacts/{contact.id}/remove", {})
    with db.session() as session:
        assert chain_settings.contacts(session, session.get(Clinic, world.riverside_id)) == []


def test_an_admin_adds_and_disables_a_colleague_whose_sessions_end(admin, world, app, db) -> None:  # type: ignore[no-untyped-def]
    page = "/dashboard/staff"
    post_form(admin, page, page, {"email": "kim@riverside.example", "name": "Kim", "role": "nurse"})
    shown = text(admin.get(page))
    password = shown.split("Their first password, shown once: ")[1].split("<")[0].strip()
    colleague = app.test_client()
    assert sign_in(colleague, "kim@riverside.example", password).status_code == 302
    assert colleague.get("/dashboard/").status_code == 200
    with db.session() as session:
        kim = session.scalar(select(Staff).where(Staff.email == "kim@riverside.example"))
    post_form(admin, page, f"{page}/{kim.id}/disable", {})
    assert colleague.get("/dashboard/").status_code == 302  # signed out everywhere
    assert sign_in(colleague, "kim@riverside.example", password).status_code != 302


def test_a_new_password_ends_the_colleagues_sessions(admin, world, app, db) -> None:  # type: ignore[no-untyped-def]
    colleague = app.test_client()
    assert sign_in(colleague, NURSE, PASSWORD).status_code == 302
    with db.session() as session:
        me = session.scalar(select(Staff).where(Staff.email == NURSE))
    post_form(admin, "/dashboard/staff", f"/dashboard/staff/{me.id}/password", {})
    assert colleague.get("/dashboard/").status_code == 302


def test_an_admin_cannot_touch_another_clinics_staff(admin, world, db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as session:
        other = session.scalar(select(Staff).where(Staff.email == OTHER_NURSE))
    refused = post_form(admin, "/dashboard/staff", f"/dashboard/staff/{other.id}/disable", {})
    assert refused.status_code == 404
    with db.session() as session:
        assert session.get(Staff, other.id).disabled_at is None
