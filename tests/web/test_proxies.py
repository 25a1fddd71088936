"""Behind a reverse proxy on the same host: X-Forwarded-For is believed from
SMSBOT_FORWARDED_ALLOW_IPS only, so a client is never mistaken for loopback."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from smsbot.cli import main
from smsbot.config import ConfigError, load_settings
from smsbot.logs import LOGGER_LEVELS
from smsbot.web import gunicorn_conf

PROXY = {"REMOTE_ADDR": "127.0.0.1"}  # nginx on the same host
INTERNET = "203.0.113.9"


@pytest.fixture
def proxied(make_app):  # type: ignore[no-untyped-def]
    return make_app(forwarded_allow_ips="127.0.0.1", api_rate_limit="2 per minute").test_client()


def test_an_unsigned_text_through_the_proxy_is_refused_even_in_console_mode(proxied):
    form = {"MessageSid": "SM" + "a" * 32, "From": "+15550100001", "Body": "hi"}
    forwarded = proxied.post(
        "/twilio/sms", data=form, environ_base=PROXY, headers={"X-Forwarded-For": INTERNET}
    )
    assert forwarded.status_code == 403
    # Straight from loopback (trying smsbot out in the console) it is still accepted.
    assert proxied.post("/twilio/sms", data=form, environ_base=PROXY).status_code == 200


def test_metrics_through_the_proxy_need_the_token(proxied):
    assert (
        proxied.get("/metrics", environ_base=PROXY, headers={"X-Forwarded-For": INTERNET}).status_code == 403
    )
    assert proxied.get("/metrics", environ_base=PROXY).status_code == 200


def test_each_client_behind_the_proxy_has_its_own_rate_limit_bucket(proxied):
    def call(client_ip: str) -> int:
        headers = {"X-Forwarded-For": client_ip}
        return proxied.get("/api/v1/families", environ_base=PROXY, headers=headers).status_code

    assert [call("203.0.113.1") for _ in range(3)] == [401, 401, 429]
    assert call("203.0.113.2") == 401


def test_a_forwarded_header_from_anyone_else_is_ignored(proxied):
    form = {"MessageSid": "SM" + "b" * 32, "From": "+15550100001", "Body": "hi"}
    spoofed = proxied.post(
        "/twilio/sms",
        data=form,
        environ_base={"REMOTE_ADDR": INTERNET},
        headers={"X-Forwarded-For": "127.0.0.1"},
    )
    assert spoofed.status_code == 403


def test_with_any_proxy_trusted_a_forwarded_loopback_address_is_still_not_loopback(make_app):
    client = make_app(forwarded_allow_ips="*").test_client()
    form = {"MessageSid": "SM" + "c" * 32, "From": "+15550100001", "Body": "hi"}
    spoofed = client.post(
        "/twilio/sms",
        data=form,
        environ_base={"REMOTE_ADDR": INTERNET},
        headers={"X-Forwarded-For": "127.0.0.1"},
    )
    assert spoofed.status_code == 403
    assert (
        client.get(
            "/metrics", environ_base={"REMOTE_ADDR": INTERNET}, headers={"X-Forwarded-For": "::1"}
        ).status_code
        == 403
    )


def test_a_bad_allow_list_is_one_clear_line():
    with pytest.raises(ConfigError, match="SMSBOT_FORWARDED_ALLOW_IPS"):
        load_settings(environ={"SMSBOT_FORWARDED_ALLOW_IPS": "nginx"})


def test_the_console_transport_refuses_to_listen_beyond_loopback(monkeypatch):
    monkeypatch.setenv("SMSBOT_TRANSPORT", "console")
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "loopback only" in result.output and "\n" not in result.output.strip()


def test_serve_prod_without_gunicorn_names_the_extra_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # gunicorn is nowhere to be found
    result = CliRunner().invoke(main, ["serve", "--prod"])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: --prod needs gunicorn: pip install -e '.[prod]'"


@pytest.fixture
def restore_logging():  # type: ignore[no-untyped-def]
    """``on_starting`` configures the process's loggers: put them back for the next tests."""
    saved = {name: logging.getLogger(name) for name in LOGGER_LEVELS}
    state = {name: (log.handlers[:], log.level, log.propagate) for name, log in saved.items()}
    yield
    for name, log in saved.items():
        log.handlers[:], log.level, log.propagate = state[name]


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(
    ("workers", "redis", "warned"), [(2, "", True), (1, "", False), (4, "redis://r", False)]
)
def test_gunicorn_warns_in_one_line_when_rate_limits_are_per_worker(
    monkeypatch, capfd, workers, redis, warned
):
    monkeypatch.setenv("SMSBOT_REDIS_URL", redis)
    gunicorn_conf.on_starting(SimpleNamespace(cfg=SimpleNamespace(workers=workers)))
    logged = capfd.readouterr().err.strip()
    assert ("SMSBOT_REDIS_URL" in logged) == warned
    assert len(logged.splitlines()) == (1 if warned else 0)
