"""Dashboard sessions against a real ``smsbot serve`` over HTTP, with the accounts managed by
the ``smsbot staff`` commands an operator runs: a copy of a session cookie stops working
once its account signs out, gets a new password or is disabled."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.http_visitor import Visitor, is_refused_sign_in
from tests.test_serve_e2e import free_port, smsbot_process, wait_until_serving

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Site:
    base: str
    env: dict[str, str] = field(repr=False)
    cwd: Path = field(repr=False)

    def smsbot(self, *args: str, password: str = PASSWORD) -> str:
        """Run ``smsbot ARGS`` against the served database, as the operator would."""
        result = subprocess.run(
            [sys.executable, "-m", "smsbot", *args],
            env={**self.env, "SMSBOT_STAFF_PASSWORD": password},
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def add_nurse(self, email: str) -> None:
        self.smsbot("staff", "add", "--clinic", "riverside", "--email", email)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    cwd = tmp_path_factory.mktemp("sessions")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "SMSBOT_DATABASE_URL": f"sqlite:///{cwd / 'e2e.db'}",
        "SMSBOT_TRANSPORT": "console",
        "SMSBOT_PUBLIC_URL": base,
        "SMSBOT_SECRET_KEY": "dashboard-sessions-e2e",
    }
    with smsbot_process(["serve", "--port", str(port)], env, cwd) as process:
        wait_until_serving(base, process)
        served = Site(base, {**os.environ, **env}, cwd)
        served.smsbot("clinic", "create", "--slug", "riverside", "--name", "Riverside", "--timezone", "UTC")
        yield served


def signed_in(site: Site, email: str, password: str = PASSWORD) -> Visitor:
    nurse = Visitor(site.base)
    page = nurse.sign_in(email, password)
    assert (page.status, page.location) == (302, "/dashboard/"), page.body
    assert nurse.open("/dashboard/").status == 200
    return nurse


def is_sent_to_login(site: Site, cookie: str) -> bool:
    page = Visitor(site.base, cookie=cookie).open("/dashboard/families")
    return page.status == 302 and page.location == "/dashboard/login?next=/dashboard/families"


def test_a_logged_out_cookie_replayed_is_sent_to_the_login_page(site: Site) -> None:
    site.add_nurse("logout@riverside.example")
    nurse = signed_in(site, "logout@riverside.example")
    cookie = nurse.cookie
    assert not is_sent_to_login(site, cookie)  # the copy works while the nurse is signed in

    page = nurse.submit("/dashboard/", "/dashboard/logout", {})
    assert (page.status, page.location) == (302, "/dashboard/login")
    assert is_sent_to_login(site, cookie)


def test_reset_password_ends_the_accounts_sessions(site: Site) -> None:
    email = "reset@riverside.example"
    site.add_nurse(email)
    cookie = signed_in(site, email).cookie
    output = site.smsbot("staff", "reset-password", "--email", email, password="new pass 2026")
    assert "sessions are ended" in output
    assert is_sent_to_login(site, cookie)
    assert is_refused_sign_in(Visitor(site.base).sign_in(email, PASSWORD))
    signed_in(site, email, "new pass 2026")


def test_a_disabled_account_is_signed_out_and_cannot_sign_in(site: Site) -> None:
    site.add_nurse("leaver@riverside.example")
    cookie = signed_in(site, "leaver@riverside.example").cookie
    site.smsbot("staff", "disable", "--email", "leaver@riverside.example")
    assert is_sent_to_login(site, cookie)
    assert is_refused_sign_in(Visitor(site.base).sign_in("leaver@riverside.example", PASSWORD))
