"""The whole escalation-and-inbox flow in a real browser (Debian's Chromium, Playwright): the
on-call nurse is paged, opens the alert from the link in the SMS, texts the parent from the
dashboard, sees the parent's answer in the same thread, and acknowledges the alert."""

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

from devtools.demo import add_enrollment
from smsbot.db import Database
from smsbot.messaging.console import MemoryTransport
from smsbot.models import Alert, Clinic, utcnow
from tests.browser_fixtures import *  # noqa: F403
from tests.browser_fixtures import needs_chromium

pytestmark = [pytest.mark.browser, needs_chromium]

PARENT = "+15550100002"
ONCALL = "+15550109999"
EMERGENCY_TEXT = "his lips look blue and he is jerking"
NURSE_TEXT = "Nurse Kim here: I am calling you now, keep the phone close"
PARENT_ANSWER = "ok my phone is on, he is breathing better now"


@pytest.fixture
def world(db: Database) -> World:
    return build_world(db, utcnow())


def wait_for(outbox: MemoryTransport, to: str) -> str:
    """The first text to ``to`` (the courier sends pages from its own thread)."""
    deadline = time.monotonic() + 10
    while not (texts := [sent.body for sent in outbox.outbox if sent.to == to]):
        assert time.monotonic() < deadline, f"nothing was sent to {to}"
        time.sleep(0.05)
    return texts[0]


def test_paged_nurse_texts_the_parent_reads_the_answer_and_acknowledges(
    page: Page,
    base_url: str,
    db: Database,
    world: World,
    text_bot: Callable[..., Any],
    outbox: MemoryTransport,
) -> None:
    with db.session() as session:
        clinic = session.get(Clinic, world.riverside_id)
        assert clinic is not None
        clinic.oncall_phone = ONCALL
        add_enrollment(session, clinic, PARENT, baby_name="Leo", at=utcnow() - timedelta(days=2))
    assert text_bot(EMERGENCY_TEXT, sender=PARENT).status_code == 200

    # Paged: the SMS links to the alert; the nurse opens it and signs in.
    link = re.search(r"https?://\S+", wait_for(outbox, ONCALL))
    assert link is not None
    path = urlsplit(link.group(0)).path
    page.goto(path)
    page.get_by_label("Email").fill(NURSE)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base_url}{path}")
    timeline = page.locator(".alert-timeline")
    expect(timeline).to_contain_text("Alert raised")
    expect(timeline).to_contain_text("Paged on-call phone")

    # Texts the parent from the family page.
    page.get_by_role("link", name="Conversation, check-ins and texting the parent").click()
    page.get_by_label("Your text").fill(NURSE_TEXT)
    page.get_by_role("button", name="Send text").click()
    expect(page.get_by_role("status")).to_contain_text("Text sent to")
    assert f"Riverside Pediatrics: {NURSE_TEXT}" in [s.body for s in outbox.outbox if s.to == PARENT]
    thread = page.locator(".timeline")
    expect(thread.locator(".message-out", has_text=NURSE_TEXT)).to_contain_text(NURSE)

    # The parent answers: it lands in the same thread, after the nurse's text.
    assert text_bot(PARENT_ANSWER, sender=PARENT).status_code == 200
    page.reload()
    messages = thread.locator(".message")
    expect(messages.filter(has_text=PARENT_ANSWER)).to_have_count(1)
    bodies = messages.locator(".body").all_inner_texts()
    assert bodies.index(PARENT_ANSWER) > next(i for i, b in enumerate(bodies) if NURSE_TEXT in b)

    # Back to the alert: acknowledge it; its timeline tells the story.
    page.goto(path)
    page.get_by_label("What was done").fill("Called mum: breathing normally, seen today")
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.locator("main")).to_contain_text("Called mum: breathing normally, seen today")
    expect(timeline).to_contain_text(f"{NURSE} texted the parent")
    expect(timeline).to_contain_text(f"Acknowledged by {NURSE}")
    with db.session() as session:
        alert_id = int(path.rsplit("/", 1)[1])
        alert = session.get(Alert, alert_id)
        assert alert is not None and alert.acknowledged_by == NURSE and alert.next_page_at is None
