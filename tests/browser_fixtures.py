"""Fixtures for the dashboard's browser tests: Debian's Chromium (one per module), the real
app served on a loopback port, and a fresh page on it.

Import into a test module with ``from tests.browser_fixtures import *``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page

from devtools.screenshots import CHROMIUM, chromium, serve

__all__ = ["base_url", "browser", "needs_chromium", "page"]

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} missing: apt-get install chromium"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def base_url(app: Flask) -> Iterator[str]:
    with serve(app) as url:
        yield url


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    context = browser.new_context(base_url=base_url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()
