"""The access audit from the dashboard: each sign-in, page view and phone reveal writes
exactly one line; clinic admins see who saw a family, never another clinic's lines."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from dashboard_fixtures import ANA_PHONE, NURSE, OTHER_NURSE, World, build_world, post_form, sign_in
from flask.testing import FlaskClient
from sqlalchemy import select, update

from smsbot.db import Database
from smsbot.models import AuditEntry, Staff, utcnow


@pytest.fixture
def world(db: Database) -> World:
    return build_world(db, utcnow())


@pytest.fixture
def nurse(client: FlaskClient, world: World) -> FlaskClient:
    assert sign_in(client).status_code == 302
    return client


@contextmanager
def new_lines(db: Database) -> Iterator[list[AuditEntry]]:
    """The audit lines written inside the block."""
    with db.session() as session:
        last = session.scalar(select(AuditEntry.id).order_by(AuditEntry.id.desc()).limit(1)) or 0
    found: list[AuditEntry] = []
    yield found
    with db.session() as session:
        found.extend(session.scalars(select(AuditEntry).where(AuditEntry.id > last).order_by(AuditEntry.id)))


def test_a_sign_in_and_a_failed_one_each_write_one_line(client: FlaskClient, world: World, db: Database):
    with new_lines(db) as lines:
        sign_in(client, password="wrong")
    assert [(e.action, e.actor, e.clinic_id) for e in lines] == [("login_failed", NURSE, None)]
    with new_lines(db) as lines:
        sign_in(client)
    assert [(e.action, e.actor, e.clinic_id) for e in lines] == [
        ("login", f"staff:{NURSE}", world.riverside_id)
    ]


@pytest.mark.parametrize("page", ["family", "alert"])
def test_a_family_page_view_writes_one_line(nurse: FlaskClient, world: World, db: Database, page: str):
    path = (
        f"/dashboard/families/{world.ana_id}"
        if page == "family"
        else f"/dashboard/alerts/{world.ana_alert_id}"
    )
    with new_lines(db) as lines:
        assert nurse.get(path).status_code == 200
    assert [(e.action, e.family_id, e.detail["page"]) for e in lines] == [("family_view", world.ana_id, page)]


def test_revealing_the_phone_writes_one_line_and_shows_the_number(
    nurse: FlaskClient, world: World, db: Database
):
    page = f"/dashboard/families/{world.ana_id}"
    assert "(555) 010-0001" not in nurse.get(page).get_data(as_text=True)
    with new_lines(db) as lines:
        response = post_form(nurse, page, page + "/phone", {})
    assert response.status_code == 200 and f'href="tel:{ANA_PHONE}"' in response.get_data(as_text=True)
    assert [(e.action, e.actor, e.family_id) for e in lines][-1:] == [
        ("phone_reveal", f"staff:{NURSE}", world.ana_id)
    ]
    assert [e.action for e in lines].count("phone_reveal") == 1 and len(
        lines
    ) == 2  # and the page it came from


def test_who_saw_this_lists_the_clinics_own_lines_only(client: FlaskClient, world: World, db: Database):
    sign_in(client, OTHER_NURSE)
    client.get(f"/dashboard/families/{world.bo_id}")
    post_form(client, "/dashboard/", "/dashboard/logout", {})
    sign_in(client)
    client.get(f"/dashboard/families/{world.ana_id}")
    assert client.get(f"/dashboard/families/{world.ana_id}/access").status_code == 403  # a nurse
    with db.session() as session:
        session.execute(update(Staff).where(Staff.email == NURSE).values(role="admin"))
    html = client.get(f"/dashboard/families/{world.ana_id}/access").get_data(as_text=True)
    assert f"staff:{NURSE}" in html and "viewed" in html and OTHER_NURSE not in html
    assert client.get(f"/dashboard/families/{world.bo_id}/access").status_code == 404


def test_an_episode_summary_view_writes_one_line(nurse: FlaskClient, world: World, db: Database):
    html = nurse.get(f"/dashboard/alerts/{world.ana_alert_id}").get_data(as_text=True)
    summary = re.search(r'href="(/dashboard/families/\d+/episodes/(\d+))"', html)
    assert summary is not None
    with new_lines(db) as lines:
        assert nurse.get(summary.group(1)).status_code == 200
    [line] = lines
    assert (line.action, line.family_id, line.detail) == (
        "family_view",
        world.ana_id,
        {"page": "episode", "episode_id": int(summary.group(2))},
    )
