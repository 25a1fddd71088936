"""The episode summary on the dashboard: the right levels, flags and acknowledgements, one
link from the alert page, closing by staff, and nothing for another clinic."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from dashboard_fixtures import OTHER_NURSE, World, build_world, post_form, sign_in
from flask.testing import FlaskClient
from sqlalchemy import select

from devtools.demo import add_message
from smsbot.db import Database
from smsbot.models import Alert, Episode, Family, utcnow


@pytest.fixture
def world(db: Database) -> World:
    built = build_world(db, utcnow())
    with db.session() as session:  # Ana's emergency text carried a red flag, acknowledged after
        ana = session.get_one(Family, built.ana_id)
        alert = session.get_one(Alert, built.ana_alert_id)
        alert.message.flags = ["colour-change"]
        earlier = add_message(
            session, ana, "in", "her arm shakes", at=alert.created_at - timedelta(hours=2), level="routine"
        )
        earlier.flags = []
        add_message(session, ana, "out", "Gently hold the arm.", at=earlier.created_at)
        alert.acknowledged_at = alert.created_at + timedelta(minutes=5)
        alert.acknowledged_by, alert.ack_note = "nurse@riverside.example", "called, going to ED"
        session.commit()
    return built


@pytest.fixture
def nurse(client: FlaskClient, world: World) -> FlaskClient:
    assert sign_in(client).status_code == 302
    return client


def _summary_link(html: str) -> str:
    match = re.search(r'href="(/dashboard/families/\d+/episodes/\d+)"', html)
    assert match, "no link to the episode summary"
    return match.group(1)


def test_the_alert_page_links_to_a_summary_with_levels_flags_and_acknowledgements(nurse, world, app):
    alert_page = nurse.get(f"/dashboard/alerts/{world.ana_alert_id}").get_data(as_text=True)
    response = nurse.get(_summary_link(alert_page))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'class="chart levels-chart"' in html and html.count('class="dot tone-') == 2
    assert "tone-routine" in html and "tone-emergency" in html
    assert "(rule colour-change)" in html
    assert (
        "acknowledged by <strong>nurse@riverside.example</strong>" in html and "called, going to ED" in html
    )
    assert "The family texted; triage read it as routine." in html
    assert "smsbot replied" in html


def test_staff_close_the_episode_from_its_summary(nurse, world, db: Database):
    summary = _summary_link(nurse.get(f"/dashboard/families/{world.ana_id}").get_data(as_text=True))
    response = post_form(nurse, summary, summary + "/close", {})
    assert response.status_code == 302
    with db.session() as session:
        [episode] = session.scalars(select(Episode).where(Episode.family_id == world.ana_id)).all()
        assert (episode.close_reason, episode.closed_by) == ("staff", "staff:nurse@riverside.example")
    assert "by staff:nurse@riverside.example" in nurse.get(summary).get_data(as_text=True)


def test_another_clinic_gets_404_for_the_summary(client: FlaskClient, world, db: Database):
    sign_in(client)
    summary = _summary_link(client.get(f"/dashboard/alerts/{world.ana_alert_id}").get_data(as_text=True))
    post_form(client, "/dashboard/", "/dashboard/logout", {})
    assert sign_in(client, OTHER_NURSE).status_code == 302
    assert client.get(summary).status_code == 404
    bo_episode = summary.replace(f"/families/{world.ana_id}/", f"/families/{world.bo_id}/")
    assert client.get(bo_episode).status_code == 404
