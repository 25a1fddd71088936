"""The episode summary in a real browser (Debian's Chromium through Playwright): a nurse
opens it from the alert page, and it prints on one page."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from dashboard_fixtures import NURSE, PASSWORD, World, build_world
from flask import Flask
from playwright.sync_api import Page, expect

from devtools.screenshots import CHROMIUM, chromium, serve, sign_in
from smsbot.db import Database
from smsbot.models import Alert, utcnow

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} missing: apt-get install chromium"),
]


@pytest.fixture
def world(db: Database) -> World:
    built = build_world(db, utcnow())
    with db.session() as session:
        session.get_one(Alert, built.ana_alert_id).message.flags = ["colour-change"]
    return built


@pytest.fixture
def page(app: Flask) -> Iterator[tuple[Page, str]]:
    with serve(app) as base_url, chromium() as browser:
        context = browser.new_context(base_url=base_url)
        context.set_default_timeout(10_000)
        yield context.new_page(), base_url
        context.close()


def test_nurse_opens_the_summary_from_the_alert_page_and_it_prints_on_one_page(
    page: tuple[Page, str], world: World
) -> None:
    tab, base_url = page
    sign_in(tab, base_url, NURSE, PASSWORD)
    tab.goto(f"/dashboard/alerts/{world.ana_alert_id}")
    tab.get_by_role("link", name="Episode summary").click()
    expect(tab).to_have_url(re.compile(rf"/dashboard/families/{world.ana_id}/episodes/\d+$"))
    expect(tab.locator("h1")).to_contain_text("Episode summary")
    expect(tab.locator("svg.levels-chart circle")).to_have_count(1)
    expect(tab.locator(".reasons")).to_contain_text("(rule colour-change)")
    expect(tab.locator(".acknowledgements")).to_contain_text("not acknowledged")
    expect(tab.locator(".story li").first).to_contain_text("triage read it as emergency")

    tab.emulate_media(media="print")
    expect(tab.locator(".topbar")).to_be_hidden()
    expect(tab.get_by_role("button", name="Close this episode")).to_be_hidden()
    pdf = tab.pdf(format="A4")
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1
