"""Clinics and parents against a real ``smsbot serve`` over HTTP: the operator sets clinics up
with the ``smsbot`` command, clinics use their API token and the dashboard, parents text
through the signed Twilio webhook."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from twilio.request_validator import RequestValidator

from smsbot.db import upgrade
from tests.clinic_fixtures import *  # noqa: F403 (the receiver fixture)
from tests.clinic_fixtures import WebhookReceiver
from tests.test_serve_e2e import free_port, post, smsbot_process
from tests.test_serve_e2e_family_texts import wait_for

TOKEN = "e2e-clinics-auth-token"
PASSWORD = "correct horse battery staple"
PROGRAMME = "clinic_followup"
EMERGENCY = "he stopped breathing and is not responding"


@dataclass
class Service:
    """A running ``smsbot serve`` and what an operator needs to administer it."""

    base: str
    env: dict[str, str]
    cwd: Path
    sids: Iterator[int] = field(default_factory=lambda: count(1))

    def smsbot(self, *args: str) -> str:
        """Run an ``smsbot`` command against the same database; its output."""
        done = subprocess.run(
            [sys.executable, "-m", "smsbot", *args],
            env={**os.environ, **self.env, "SMSBOT_STAFF_PASSWORD": PASSWORD},
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def clinic(self, slug: str, name: str, *options: str) -> str:
        """Create a clinic with a nurse (``nurse@<slug>.example``); its API token."""
        self.smsbot(
            "clinic", "create", "--slug", slug, "--name", name, "--timezone", "America/Chicago", *options
        )
        self.smsbot("staff", "add", "--clinic", slug, "--email", f"nurse@{slug}.example")
        return self.smsbot("clinic", "token", "create", "--clinic", slug).strip()

    def text(self, phone: str, body: str) -> str | None:
        """A parent's SMS as Twilio delivers it; the reply, if any."""
        url = self.base + "/twilio/sms"
        form = {"MessageSid": f"SM{next(self.sids):032d}", "From": phone, "Body": body}
        status, xml = post(url, form, RequestValidator(TOKEN).compute_signature(url, form))
        assert status == 200, xml
        message = ET.fromstring(xml).find("Message")
        return None if message is None else message.text

    def api(self, token: str, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"{self.base}/api/v1{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.load(error)


@contextmanager
def smsbot_serve(env: dict[str, str], cwd: Path) -> Iterator[str]:
    """``smsbot serve`` on a free port (its base URL as SMSBOT_PUBLIC_URL); yields that URL once healthy."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with smsbot_process(["serve", "--port", str(port)], {**env, "SMSBOT_PUBLIC_URL": base}, cwd) as process:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=1):
                    break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(process.stderr.read().decode()) from None
                time.sleep(0.2)
        yield base


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    cwd = tmp_path_factory.mktemp("clinics-e2e")
    env = {
        "SMSBOT_DATABASE_URL": f"sqlite:///{cwd / 'e2e.db'}",
        "SMSBOT_TRANSPORT": "console",
        "TWILIO_AUTH_TOKEN": TOKEN,
        "SMSBOT_SECRET_KEY": "e2e-secret",
    }
    with smsbot_serve(env, cwd) as base:
        yield Service(base, {**env, "SMSBOT_PUBLIC_URL": base}, cwd)


def test_an_emergency_after_stop_is_listed_in_the_clinics_open_alerts(service: Service) -> None:
    token = service.clinic("stop-clinic", "Stop Street Clinic")
    parent = "+15550110001"
    status, family = service.api(token, "POST", "/families", {"phone": parent, "programme": PROGRAMME})
    assert status == 201
    assert service.text(parent, "YES") is not None
    assert service.text(parent, "STOP") is not None
    assert service.text(parent, EMERGENCY) is None  # opted out: no reply of any kind

    # Raised right after the reply, by the web process's courier (the text's follow-ups).
    open_alerts = wait_for(lambda: service.api(token, "GET", "/alerts?status=open")[1]["data"])
    assert [(a["family_id"], a["level"]) for a in open_alerts] == [(family["id"], "emergency")]
    _, shown = service.api(token, "GET", f"/families/{family['id']}")
    assert shown["opted_out"] is True


def test_a_reenrolling_clinic_does_not_see_the_other_clinics_window(service: Service) -> None:
    first, second = (
        service.clinic("window-a", "Window A Clinic"),
        service.clinic("window-b", "Window B Clinic"),
    )
    parent = "+15550110002"
    _, at_b = service.api(second, "POST", "/families", {"phone": parent, "programme": PROGRAMME})
    service.text(parent, "YES")
    service.api(second, "DELETE", f"/families/{at_b['id']}/enrollment")
    service.api(first, "POST", "/families", {"phone": parent, "programme": PROGRAMME})
    service.text(parent, "YES")
    service.text(parent, "his legs shake a little when he cries")  # meant for clinic A
    service.api(second, "POST", f"/families/{at_b['id']}/enrollment", {"programme": PROGRAMME})
    service.text(parent, "YES")  # B follows the family again, from now on
    service.text(parent, "better today")

    _, messages = service.api(second, "GET", f"/families/{at_b['id']}/messages")
    inbound = [m["body"] for m in messages["data"] if m["direction"] == "in"]
    assert inbound == ["better today", "YES", "YES"]
    _, export = service.api(second, "GET", f"/families/{at_b['id']}/export")
    assert "his legs shake a little" not in json.dumps(export)


def test_a_second_clinic_cannot_read_or_change_the_first_clinics_details(service: Service) -> None:
    first, second = (
        service.clinic("details-a", "Details A Clinic"),
        service.clinic("details-b", "Details B Clinic"),
    )
    parent = "+15550110003"
    mine = {
        "phone": parent,
        "programme": PROGRAMME,
        "baby_name": "Ana",
        "language": "es",
        "external_ref": "MRN-1",
    }
    _, at_a = service.api(first, "POST", "/families", mine)
    assert service.text(parent, "SI").startswith("Details A Clinic: gracias")
    status, at_b = service.api(second, "POST", "/families", {"phone": parent, "programme": PROGRAMME})
    assert status == 201
    assert (at_b["baby_name"], at_b["language"], at_b["external_ref"]) == (None, "en", None)
    status, _ = service.api(
        second, "PATCH", f"/families/{at_b['id']}", {"baby_name": "Bea", "language": "en"}
    )
    assert status == 200
    assert service.api(second, "GET", f"/families/{at_a['id']}")[0] == 404  # A's id is not B's family

    _, kept = service.api(first, "GET", f"/families/{at_a['id']}")
    assert (kept["baby_name"], kept["language"], kept["external_ref"]) == ("Ana", "es", "MRN-1")
    reply = service.text(parent, "tiene los labios morados y no responde")
    assert reply is not None and "Ana" in reply and "Bea" not in reply
    _, waiting = service.api(second, "GET", f"/families/{at_b['id']}/messages")
    assert (waiting["data"], service.api(second, "GET", "/alerts")[1]["data"]) == ([], [])


def _signed_in(service: Service, email: str, link: str) -> tuple[int, str, str]:
    """Open ``link`` as a nurse would from a phone: the login page, then straight back to it."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(link, timeout=10) as response:
        login_url, html = response.url, response.read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert token and "/dashboard/login?next=" in login_url
    form = urllib.parse.urlencode({"email": email, "password": PASSWORD, "csrf_token": token.group(1)})
    try:
        with opener.open(login_url, data=form.encode(), timeout=10) as response:
            return response.status, response.url, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.url, error.read().decode()


def test_the_alert_link_opens_for_the_clinics_signed_in_staff(
    service: Service, receiver: WebhookReceiver
) -> None:
    token = service.clinic("link-a", "Link A Clinic", "--webhook-url", receiver.url)
    service.clinic("link-b", "Link B Clinic")
    parent = "+15550110004"
    service.api(token, "POST", "/families", {"phone": parent, "programme": PROGRAMME, "baby_name": "Leo"})
    service.text(parent, "YES")
    service.text(parent, EMERGENCY)
    deadline = time.monotonic() + 20
    while not receiver.requests:
        assert time.monotonic() < deadline, "no alert webhook"
        time.sleep(0.1)
    link = json.loads(receiver.requests[0][1])["dashboard_url"]
    assert link.startswith(service.base + "/dashboard/alerts/")

    status, url, html = _signed_in(service, "nurse@link-a.example", link)
    assert (status, url) == (200, link)
    assert EMERGENCY in html and f'href="tel:{parent}"' in html and "Leo" in html and "Acknowledge" in html
    status, _, html = _signed_in(service, "nurse@link-b.example", link)
    assert status == 404 and parent not in html and EMERGENCY not in html


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["worker"]])
def test_start_up_refuses_a_clinic_with_alerts_but_no_public_url(tmp_path: Path, command: list[str]) -> None:
    database = f"sqlite:///{tmp_path / 'no-url.db'}"
    upgrade(database)
    env = {
        "SMSBOT_DATABASE_URL": database,
        "SMSBOT_TRANSPORT": "console",
        "SMSBOT_PUBLIC_URL": "http://x.test",
    }
    operator = Service("", env, tmp_path)
    operator.smsbot("clinic", "create", "--slug", "nourl", "--name", "No URL", "--timezone", "UTC",
                    "--oncall-phone", "+15550109999")  # fmt: skip
    without_url = {key: value for key, value in {**os.environ, **env}.items() if key != "SMSBOT_PUBLIC_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "smsbot", *command],
        env=without_url,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("Error: clinic 'nourl'") and "SMSBOT_PUBLIC_URL" in line
