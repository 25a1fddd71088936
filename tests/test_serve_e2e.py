"""``smsbot serve`` and ``smsbot worker`` as real subprocesses on free loopback ports, over real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from twilio.request_validator import RequestValidator

from smsbot.db import Database, upgrade
from smsbot.models import Family, utcnow
from tests.checkin_fixtures import add_checkin

TOKEN = "e2e-auth-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def smsbot_process(args: list[str], env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m smsbot ARGS`` running until the block ends (stderr kept for failures)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "smsbot", *args],
        env={**os.environ, **env},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stderr.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "SMSBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'e2e.db'}",
        "SMSBOT_TRANSPORT": "console",
        "TWILIO_AUTH_TOKEN": TOKEN,
        "SMSBOT_PUBLIC_URL": base,
    }
    with smsbot_process(["serve", "--port", str(port)], env, tmp_path) as process:
        wait_until_serving(base, process)
        yield base


def wait_until_serving(base: str, process: subprocess.Popen[bytes]) -> None:
    """Return once ``base/healthz`` answers 200; raise with the server's stderr if it died."""
    deadline = time.monotonic() + 90  # a loaded machine takes its time to import and warm up
    while True:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.terminate()  # so that reading its stderr to the end cannot hang
                raise RuntimeError(process.stderr.read().decode()) from None
            time.sleep(0.2)


def post(url: str, form: dict[str, str], signature: str | None) -> tuple[int, str]:
    headers = {"X-Twilio-Signature": signature} if signature else {}
    request = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def test_signed_emergency_text_over_real_http(server: str):
    form = {"MessageSid": "SM" + "e" * 32, "From": "+15550100001", "Body": "she turned blue and went limp"}
    url = server + "/twilio/sms"
    status, body = post(url, form, RequestValidator(TOKEN).compute_signature(url, form))
    assert status == 200
    reply = ET.fromstring(body).find("Message").text
    assert "911" in reply.split(".")[0]
    again = post(url, form, RequestValidator(TOKEN).compute_signature(url, form))
    assert again == (200, body)


def test_bad_signature_over_real_http_is_403(server: str):
    form = {"MessageSid": "SM" + "f" * 32, "From": "+15550100001", "Body": "hi"}
    assert post(server + "/twilio/sms", form, "d3Jvbmc=")[0] == 403


def test_worker_serves_its_dispatch_metrics_on_an_internal_port(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    upgrade(url)
    with Database(url) as db, db.session() as session:
        family = Family(phone="+15550100001", channel="sms", created_at=utcnow())
        session.add(family)
        session.flush()
        add_checkin(session, family, due_at=utcnow() - timedelta(minutes=1), dedupe_key="due-now")
    port = free_port()
    env = {
        "SMSBOT_DATABASE_URL": url,
        "SMSBOT_TRANSPORT": "console",
        "SMSBOT_DISPATCH_INTERVAL_SECONDS": "0.2",
        "SMSBOT_QUIET_HOURS_START": "00:00",  # no quiet hours: the check-in goes out now
        "SMSBOT_QUIET_HOURS_END": "00:00",
    }
    with smsbot_process(["worker", "--metrics-port", str(port)], env, tmp_path) as process:
        deadline, page = time.monotonic() + 30, ""
        while 'smsbot_checkins_total{result="sent"} 1.0' not in page:
            assert process.poll() is None and time.monotonic() < deadline, (
                page or process.stderr.read().decode()
            )
            time.sleep(0.2)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as response:
                    page = response.read().decode()
            except (urllib.error.URLError, ConnectionError):
                continue
        assert "smsbot_dispatch_lag_seconds_count 1.0" in page
