"""Screenshots of the dashboard for the README: ``python -m devtools.screenshots docs/screenshots``.

Starts the real app on a free loopback port with the demo clinic in a temporary SQLite
database and drives Debian's Chromium (``apt-get install chromium``) through Playwright.
Playwright's own browser download is never used: it is unreachable on locked-down machines
and would differ from what CI runs. The browser tests reuse ``serve`` and ``chromium``.
"""

from __future__ import annotations

import secrets
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask
from playwright.sync_api import Browser, Page, sync_playwright
from werkzeug.serving import WSGIRequestHandler, make_server

from devtools.demo import DEMO_EMAIL, DEMO_PASSWORD, seed_demo
from smsbot import create_app
from smsbot.db import upgrade
from smsbot.models import utcnow

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling Google on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class _QuietRequestHandler(WSGIRequestHandler):
    """No access log: the screenshot command and the tests print only what matters."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 and a free port in a thread; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="dashboard-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's headless Chromium driven by Playwright."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: Page, base_url: str, email: str, password: str) -> None:
    page.goto(f"{base_url}/dashboard/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/dashboard/")


def take_screenshots(out_dir: Path) -> list[Path]:
    """Write alerts.png, alert.png, family.png, inbox.png, episode.png, overview.png,
    escalation.png (and a phone-sized queue) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shots = []
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{tmp}/demo.db"
        upgrade(database_url)
        app = create_app(
            {
                "database_url": database_url,
                "secret_key": secrets.token_hex(16),
                "public_url": "",
                "run_scheduler": False,
            }
        )
        database = app.extensions["smsbot.db"]
        seed_demo(database, app.extensions["smsbot.settings"], utcnow())
        try:
            with serve(app) as base_url, chromium() as browser:
                page = browser.new_page(viewport={"width": 1100, "height": 800})
                sign_in(page, base_url, DEMO_EMAIL, DEMO_PASSWORD)
                shots.append(_shot(page, out_dir / "alerts.png"))
                page.get_by_role("link", name="Call and details").first.click()
                shots.append(_shot(page, out_dir / "alert.png"))
                page.goto(f"{base_url}/dashboard/")
                page.locator(".alert-card h2 a").first.click()
                shots.append(_shot(page, out_dir / "family.png"))
                conversation = page.locator("section", has=page.locator("#conversation-heading"))
                conversation.screenshot(path=str(out_dir / "inbox.png"))
                shots.append(out_dir / "inbox.png")
                page.get_by_role("link", name="Summary of the episode").first.click()
                shots.append(_shot(page, out_dir / "episode.png"))
                page.goto(f"{base_url}/dashboard/escalation")
                shots.append(_shot(page, out_dir / "escalation.png"))
                page.goto(f"{base_url}/dashboard/overview")
                shots.append(_shot(page, out_dir / "overview.png"))
                page.set_viewport_size({"width": 390, "height": 844})
                page.goto(f"{base_url}/dashboard/")
                shots.append(_shot(page, out_dir / "alerts-phone.png"))
        finally:
            database.close()
    return shots


def _shot(page: Page, path: Path) -> Path:
    page.screenshot(path=str(path), full_page=True)
    return path


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m devtools.screenshots OUT_DIR", file=sys.stderr)
        return 2
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing: apt-get install chromium", file=sys.stderr)
        return 1
    for path in take_screenshots(Path(argv[0])):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
