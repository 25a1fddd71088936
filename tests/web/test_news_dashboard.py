"""Sensitive news on the dashboard: the notice in the queue, the paused family, and the
nurse's "resume" button."""

from __future__ import annotations

import pytest
from dashboard_fixtures import ANA_PHONE, OTHER_NURSE, World, build_world, post_form, sign_in
from flask.testing import FlaskClient
from sqlalchemy import func, select

from smsbot.db import Database
from smsbot.models import CheckIn, Family, utcnow
from tests.web.test_webhook import reply_text


@pytest.fixture
def world(db: Database) -> World:
    return build_world(db, utcnow())


def hold(db: Database) -> str | None:
    with db.session() as session:
        return session.scalar(select(Family.followup_hold).where(Family.phone == ANA_PHONE))


def pending(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count(CheckIn.id)).where(CheckIn.status == "pending"))


def test_a_nurse_sees_the_notice_and_resumes_the_paused_family(
    client: FlaskClient, world: World, db: Database, text_bot
) -> None:
    reply_text(text_bot("they admitted her to the NICU last night", sender=ANA_PHONE))
    assert hold(db) == "hospital" and pending(db) == 0
    assert sign_in(client).status_code == 302

    queue = client.get("/dashboard/").get_data(as_text=True)
    assert "sensitive news: the baby is in hospital" in queue
    page = f"/dashboard/families/{world.ana_id}"
    html = client.get(page).get_data(as_text=True)
    assert "Paused: the baby is in hospital" in html and "Resume automated messages" in html

    response = post_form(client, page, f"{page}/resume", {})

    assert response.status_code == 302 and response.location == page
    assert hold(db) is None and pending(db) > 0
    html = client.get(page).get_data(as_text=True)
    assert "Automated messages resumed" in html and "Resume automated messages" not in html


def test_a_nurse_of_another_clinic_cannot_resume_the_family(
    client: FlaskClient, world: World, db: Database, text_bot
) -> None:
    reply_text(text_bot("they admitted her to the NICU last night", sender=ANA_PHONE))
    assert sign_in(client, OTHER_NURSE).status_code == 302
    response = post_form(client, "/dashboard/", f"/dashboard/families/{world.ana_id}/resume", {})
    assert response.status_code == 404 and hold(db) == "hospital"
