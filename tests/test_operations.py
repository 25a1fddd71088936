"""Operator-facing behaviour: settings errors, metrics, request ids, privacy commands."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from smsbot.cli import main
from smsbot.config import ConfigError, load_settings
from smsbot.models import Clinic, Event, Family, Message, utcnow
from smsbot.privacy import purge_old_bodies
from tests.conftest import PARENT
from tests.web.test_webhook import reply_text


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"SMSBOT_TRANSPORT": "carrier-pigeon"}, "SMSBOT_TRANSPORT"),
        ({"SMSBOT_TRANSPORT": "twilio"}, "TWILIO_ACCOUNT_SID"),
        ({"SMSBOT_EMERGENCY_NUMBER": "call mom"}, "SMSBOT_EMERGENCY_NUMBER"),
        ({"SMSBOT_QUIET_HOURS_START": "late"}, "SMSBOT_QUIET_HOURS_START"),
        ({"SMSBOT_DEFAULT_TIMEZONE": "Mars/Olympus"}, "SMSBOT_DEFAULT_TIMEZONE"),
        ({"SMSBOT_RETENTION_DAYS": "soon"}, "SMSBOT_RETENTION_DAYS"),
        ({"SMSBOT_FLOOD_MESSAGES_PER_MINUTE": "0"}, "SMSBOT_FLOOD_MESSAGES_PER_MINUTE"),
        ({"SMSBOT_DATABASE_URL": "mysql://x"}, "SMSBOT_DATABASE_URL"),
        ({"SMSBOT_PUBLIC_URL": "sms.example.org"}, "SMSBOT_PUBLIC_URL"),
    ],
)
def test_a_bad_setting_is_one_clear_line_naming_the_variable(environ, named):
    with pytest.raises(ConfigError) as error:
        load_settings(environ=environ)
    assert named in str(error.value) and "\n" not in str(error.value)


def test_serve_refuses_to_start_with_a_bad_setting(monkeypatch):
    monkeypatch.setenv("SMSBOT_TRANSPORT", "twilio")
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: SMSBOT_TRANSPORT=twilio needs TWILIO_ACCOUNT_SID"


def test_the_app_refuses_to_start_when_a_clinics_alert_links_could_not_open(make_app, db):
    with db.session() as session:  # created while SMSBOT_PUBLIC_URL was set
        session.add(Clinic(slug="riverside", name="Riverside Pediatrics", oncall_phone="+15550109999"))
    with pytest.raises(ConfigError) as error:
        make_app(public_url="")
    message = str(error.value)
    assert "'riverside'" in message and "SMSBOT_PUBLIC_URL" in message and "\n" not in message
    assert make_app().extensions["smsbot.settings"].public_url  # with the URL it starts


def test_metrics_count_inbound_messages_by_level(client, text_bot):
    reply_text(text_bot("her lips are blue"))
    body = client.get("/metrics").get_data(as_text=True)
    assert 'smsbot_inbound_messages_total{level="emergency"}' in body
    assert "smsbot_webhook_seconds_bucket" in body


def test_metrics_are_not_served_to_the_internet_without_a_token(client):
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.4"}).status_code == 403


def test_metrics_token_is_required_when_set(make_app):
    client = make_app(metrics_token="s3cret").test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_request_id_is_echoed_only_when_it_is_a_plain_token(client):
    assert client.get("/healthz", headers={"X-Request-Id": "abc-123"}).headers["X-Request-Id"] == "abc-123"
    forged = client.get("/healthz", headers={"X-Request-Id": "x\tinjected=1"}).headers["X-Request-Id"]
    assert forged != "x\tinjected=1" and len(forged) == 32


def test_retention_blanks_old_bodies_but_keeps_the_rows(text_bot, db):
    reply_text(text_bot("her legs shake when she cries"))
    with db.session() as session:
        assert purge_old_bodies(session, retention_days=30, now=utcnow()) == 0
        purged = purge_old_bodies(session, retention_days=30, now=utcnow() + timedelta(days=31))
    assert purged == 2
    with db.session() as session:
        rows = session.scalars(select(Message)).all()
        assert [m.body for m in rows] == [None, None]
        assert {m.level for m in rows} == {"routine"}


@pytest.fixture
def cli_env(monkeypatch, database_url):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SMSBOT_DATABASE_URL", database_url)


def test_family_export_prints_everything_held(cli_env, text_bot):
    reply_text(text_bot("his arms tremble when he cries"))
    result = CliRunner().invoke(main, ["family", "export", "(555) 010-0001"])
    assert result.exit_code == 0, result.output
    (document,) = json.loads(result.output)
    assert document["family"]["phone"] == PARENT
    assert [m["direction"] for m in document["messages"]] == ["in", "out"]
    assert document["checkins"]


def test_family_erase_deletes_the_family_and_leaves_an_anonymous_trace(cli_env, text_bot, db):
    reply_text(text_bot("his arms tremble when he cries"))
    result = CliRunner().invoke(main, ["family", "erase", PARENT, "--yes"])
    assert result.exit_code == 0, result.output
    with db.session() as session:
        assert session.scalar(select(Family)) is None
        assert session.scalar(select(Message)) is None
        (event,) = session.scalars(select(Event).where(Event.kind == "family_erased"))
        assert event.family_id is None


def test_family_export_of_an_unknown_number_is_a_clear_error(cli_env):
    result = CliRunner().invoke(main, ["family", "export", "+15550109999"])
    assert result.exit_code == 1
    assert "no family with that phone number" in result.output
