"""The dashboard in a real browser: Debian's Chromium driven by Playwright against the real
app served on a loopback port. A parent's emergency text arrives through the signed Twilio
webhook; the nurse takes it from there."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from dashboard_fixtures import NURSE, PASSWORD, World, build_world
from playwright.sync_api import Page, expect
from sqlalchemy import select

from devtools.demo import add_answers, add_enrollment
from devtools.screenshots import sign_in
from smsbot.db import Database
from smsbot.messaging.console import MemoryTransport
from smsbot.models import Clinic, Enrollment, Family, utcnow
from tests.browser_fixtures import *  # noqa: F403
from tests.browser_fixtures import needs_chromium

pytestmark = [pytest.mark.browser, needs_chromium]

PARENT = "+15550100002"
ONCALL = "+15550109999"
EMERGENCY_TEXT = "his lips look blue and he is jerking"


@pytest.fixture
def world(db: Database) -> World:
    return build_world(db, utcnow())


def _enroll_parent_with_answers(db: Database, world: World) -> int:
    """Riverside follows PARENT, who has answered two check-ins (the chart's points)."""
    now = utcnow()
    with db.session() as session:
        clinic = session.get(Clinic, world.riverside_id)
        assert clinic is not None
        enrollment = add_enrollment(session, clinic, PARENT, baby_name="Leo", at=now - timedelta(days=3))
        add_answers(session, enrollment, ["same", "better"], now=now)
        return enrollment.family_id


def test_nurse_handles_an_emergency_text_end_to_end(
    page: Page, base_url: str, db: Database, world: World, text_bot: Callable[..., Any]
) -> None:
    family_id = _enroll_parent_with_answers(db, world)
    assert text_bot(EMERGENCY_TEXT, sender=PARENT).status_code == 200

    sign_in(page, base_url, NURSE, PASSWORD)
    card = page.locator(".alert-card", has_text=EMERGENCY_TEXT)
    expect(card.locator(".badge-emergency")).to_be_visible()
    expect(card.get_by_role("link", name="•••0002 · Leo")).to_be_visible()

    card.get_by_role("link", name="•••0002 · Leo").click()
    expect(page).to_have_url(f"{base_url}/dashboard/families/{family_id}")
    timeline = page.locator(".timeline")
    expect(timeline.locator(".message-in", has_text=EMERGENCY_TEXT)).to_be_visible()
    expect(timeline.locator(".message-out").last).to_be_visible()
    expect(page.locator("svg.answers-chart circle")).to_have_count(2)

    page.get_by_role("link", name="Alerts").click()
    card.get_by_label("What was done").fill("Called dad: going to the ED now")
    card.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_role("status")).to_contain_text("acknowledged")
    expect(page.locator(".alert-card", has_text=EMERGENCY_TEXT)).to_have_count(0)
    page.get_by_role("link", name="History").click()
    expect(page.locator("table")).to_contain_text("Called dad: going to the ED now")

    page.get_by_role("link", name="Families").click()
    page.get_by_role("link", name="Enroll a family").click()
    page.get_by_label("Parent's mobile number").fill("555 010 0077")
    page.get_by_label("Language for texts").select_option("es")
    page.get_by_label("Baby's name").fill("Sofía")
    page.get_by_role("button", name="Enroll").click()
    expect(page.locator("h1")).to_have_text("•••0077 · Sofía")
    expect(page.locator(".facts")).to_contain_text("awaiting YES")
    with db.session() as session:
        family = session.scalar(select(Family).where(Family.phone == "+15550100077"))
        assert family is not None
        enrollment = session.scalar(select(Enrollment).where(Enrollment.family_id == family.id))
        assert enrollment is not None
        assert (enrollment.clinic_id, enrollment.language) == (world.riverside_id, "es")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{base_url}/dashboard/login")
    page.goto("/dashboard/")
    expect(page).to_have_url(f"{base_url}/dashboard/login?next=/dashboard/")


def test_nurse_opens_the_on_call_link_signs_in_and_calls_the_parent_back(
    page: Page,
    base_url: str,
    db: Database,
    world: World,
    text_bot: Callable[..., Any],
    outbox: MemoryTransport,
) -> None:
    _enroll_parent_with_answers(db, world)
    with db.session() as session:
        clinic = session.get(Clinic, world.riverside_id)
        assert clinic is not None
        clinic.oncall_phone = ONCALL
    assert text_bot(EMERGENCY_TEXT, sender=PARENT).status_code == 200
    deadline = time.monotonic() + 10
    while not (texts := [sent.body for sent in outbox.outbox if sent.to == ONCALL]):
        assert time.monotonic() < deadline, "the on-call nurse got no text"
        time.sleep(0.05)
    link = re.search(r"https?://\S+", texts[0])
    assert link is not None
    path = urlsplit(link.group(0)).path  # the same page, on this test server

    page.goto(path)
    expect(page).to_have_url(f"{base_url}/dashboard/login?next={path}")
    page.get_by_label("Email").fill(NURSE)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base_url}{path}")
    expect(page.locator("h1")).to_contain_text("•••0002 · Leo")
    expect(page.locator(".trigger")).to_have_text(EMERGENCY_TEXT)
    expect(page.locator(".reasons li").first).to_be_visible()
    expect(page.get_by_role("link", name="+1 555-010-0002")).to_have_attribute("href", f"tel:{PARENT}")

    page.get_by_label("What was done").fill("Called dad: ambulance on its way")
    page.get_by_role("button", name="Acknowledge").click()
    expect(page).to_have_url(f"{base_url}{path}")
    expect(page.locator("main")).to_contain_text("Called dad: ambulance on its way")


def test_nurse_cannot_open_another_clinics_pages_by_url(page: Page, base_url: str, world: World) -> None:
    sign_in(page, base_url, NURSE, PASSWORD)
    for path in (f"/dashboard/families/{world.bo_id}", f"/dashboard/families/{world.bo_id + 1000}"):
        response = page.goto(path)
        assert response is not None and response.status == 404
        expect(page.locator("h1")).to_contain_text("Not Found")
    expect(page.locator("body")).not_to_contain_text("fever and shaking")


def test_form_without_its_csrf_token_is_refused(page: Page, base_url: str, world: World) -> None:
    sign_in(page, base_url, NURSE, PASSWORD)
    card = page.locator(".alert-card").first
    card.locator("input[name=csrf_token]").evaluate("input => input.remove()")
    card.get_by_label("What was done").fill("called")
    with page.expect_response(f"**/alerts/{world.ana_alert_id}/acknowledge") as refused:
        card.get_by_role("button", name="Acknowledge").click()
    assert refused.value.status == 400
    expect(page.locator("main")).to_contain_text("This form has expired")
    page.goto("/dashboard/")
    expect(page.locator(".alert-card")).to_have_count(1)
