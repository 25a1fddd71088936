"""Settings from the environment, validated once at start-up.

Order of precedence: defaults in code → environment (``SMSBOT_*``, ``TWILIO_*``) → a
plain dict passed to ``create_app`` (tests). A bad value fails fast with one clear line
instead of at the first parent's message.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from smsbot.vocabulary import DIALABLE


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


# Said at start-up and by ``smsbot clinic create/update`` when a clinic would get alerts.
ALERT_LINKS_NEED_PUBLIC_URL = (
    "its alerts link to the dashboard, so set SMSBOT_PUBLIC_URL (e.g. https://sms.example.org)"
)


def default_rules_dir() -> Path:
    """The rules shipped with smsbot: inside the wheel, or the repository's ``rules/``."""
    packaged = Path(__file__).parent / "rules"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "rules"


@dataclass(frozen=True)
class Settings:
    """Every knob smsbot has; the environment variable is ``SMSBOT_<NAME>`` unless noted."""

    database_url: str = "sqlite:///smsbot.db"
    transport: str = "console"
    twilio_account_sid: str = ""  # TWILIO_ACCOUNT_SID
    twilio_auth_token: str = ""  # TWILIO_AUTH_TOKEN
    sender: str = ""  # SMSBOT_FROM: a phone number or a Messaging Service SID (MG…)
    twilio_api_url: str = "https://api.twilio.com"
    public_url: str = ""
    emergency_number: str = "911"
    rules_dir: str = ""
    redis_url: str = ""
    secret_key: str = ""
    default_region: str = "US"
    default_timezone: str = "America/New_York"
    quiet_hours_start: str = "20:00"  # scheduled messages wait from here…
    quiet_hours_end: str = "09:00"  # …until here, in the family's own time zone
    checkin_grace_hours: float = 12.0
    dispatch_interval_seconds: float = 15.0
    twilio_advanced_opt_out: bool = False
    default_clinic: str = ""
    retention_days: int = 0
    audit_retention_days: int = 0  # the access audit's own retention; 0 keeps it
    metrics_token: str = ""
    run_scheduler: bool = True
    api_rate_limit: str = "120 per minute"
    # Reverse proxies whose X-Forwarded-For is believed (comma-separated addresses).
    forwarded_allow_ips: str = "127.0.0.1,::1"
    flood_messages_per_minute: int = 20  # beyond this a number gets replies only for emergencies
    # A worker's claim on a batch of check-ins: past it, another worker asks the provider
    # what was really sent and finishes the batch. Must outlast a batch's sends.
    claim_lease_seconds: float = 300.0
    retry_backoff_seconds: float = 60.0  # first retry after a transient error; doubles per attempt
    # An inbound text still unprocessed this long after its processing started (a request
    # that failed or lost its database connection) is taken over by the sweeper. Must
    # outlast the longest request (gunicorn's timeout is 15 s).
    sweep_after_seconds: float = 30.0
    sweep_interval_seconds: float = 5.0  # how often the scheduler looks for such texts

    @property
    def rules_path(self) -> Path:
        return Path(self.rules_dir) if self.rules_dir else default_rules_dir()

    @property
    def quiet_start(self) -> time:
        return time.fromisoformat(self.quiet_hours_start)

    @property
    def quiet_end(self) -> time:
        return time.fromisoformat(self.quiet_hours_end)


_ENV_NAMES = {
    "twilio_account_sid": "TWILIO_ACCOUNT_SID",
    "twilio_auth_token": "TWILIO_AUTH_TOKEN",
    "sender": "SMSBOT_FROM",
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_name(field_name: str) -> str:
    return _ENV_NAMES.get(field_name, f"SMSBOT_{field_name.upper()}")


def _coerce(name: str, kind: Any, raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        if kind in (bool, "bool"):
            value = raw.strip().lower()
            if value not in _TRUE | _FALSE:
                raise ValueError
            return value in _TRUE
        if kind in (int, "int"):
            return int(raw)
        if kind in (float, "float"):
            return float(raw)
    except ValueError:
        raise ConfigError(f"{env_name(name)}={raw!r} is not a valid {kind}") from None
    return raw


def parse_allow_ips(raw: str) -> frozenset[str]:
    """``"127.0.0.1, ::1"`` as a set of addresses (``"*"``: any, as gunicorn takes it);
    raises ValueError on anything else."""
    found = set()
    for part in raw.split(","):
        if part.strip():
            found.add("*" if part.strip() == "*" else str(ipaddress.ip_address(part.strip())))
    return frozenset(found)


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build and validate settings from ``environ`` (default ``os.environ``) and overrides.

    Overrides use field names (``{"database_url": ...}``).
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    known = {f.name: f for f in fields(Settings)}
    for name, field in known.items():
        if env_name(name) in environ:
            values[name] = _coerce(name, field.type, environ[env_name(name)])
    for name, value in (overrides or {}).items():
        if name not in known:
            raise ConfigError(f"unknown setting {name!r}")
        values[name] = _coerce(name, known[name].type, value)
    settings = replace(Settings(), **values)
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    """Raise ConfigError naming the first bad setting."""
    if settings.transport not in ("console", "twilio"):
        raise ConfigError(f"SMSBOT_TRANSPORT must be 'console' or 'twilio', not {settings.transport!r}")
    if settings.transport == "twilio":
        for name in ("twilio_account_sid", "twilio_auth_token", "sender", "public_url"):
            if not getattr(settings, name):
                raise ConfigError(f"SMSBOT_TRANSPORT=twilio needs {env_name(name)}")
    for name in ("public_url", "twilio_api_url"):
        url = getattr(settings, name)
        if url and not re.match(r"^https?://[^/\s]+", url):
            raise ConfigError(f"{env_name(name)}={url!r} must be an http(s) URL")
    if not re.fullmatch(DIALABLE, settings.emergency_number):
        raise ConfigError(f"SMSBOT_EMERGENCY_NUMBER={settings.emergency_number!r} must be a dialable number")
    if not settings.rules_path.is_dir():
        raise ConfigError(f"SMSBOT_RULES_DIR={str(settings.rules_path)!r} is not a directory")
    if settings.default_region not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(f"SMSBOT_DEFAULT_REGION={settings.default_region!r} is not a region code")
    try:
        ZoneInfo(settings.default_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"SMSBOT_DEFAULT_TIMEZONE={settings.default_timezone!r} is not a time zone"
        ) from None
    for name in ("quiet_hours_start", "quiet_hours_end"):
        try:
            time.fromisoformat(getattr(settings, name))
        except ValueError:
            raise ConfigError(f"{env_name(name)} must be HH:MM") from None
    if settings.checkin_grace_hours <= 0 or settings.dispatch_interval_seconds <= 0:
        raise ConfigError("SMSBOT_CHECKIN_GRACE_HOURS and SMSBOT_DISPATCH_INTERVAL_SECONDS must be > 0")
    for name in (
        "claim_lease_seconds",
        "retry_backoff_seconds",
        "flood_messages_per_minute",
        "sweep_after_seconds",
        "sweep_interval_seconds",
    ):
        if getattr(settings, name) <= 0:
            raise ConfigError(f"{env_name(name)} must be > 0")
    for name in ("retention_days", "audit_retention_days"):
        if getattr(settings, name) < 0:
            raise ConfigError(f"{env_name(name)} must be 0 (keep) or a positive number of days")
    try:
        parse_allow_ips(settings.forwarded_allow_ips)
    except ValueError:
        raise ConfigError("SMSBOT_FORWARDED_ALLOW_IPS must be comma-separated IP addresses, or *") from None
    if not settings.database_url.startswith(("sqlite:", "postgresql")):
        raise ConfigError("SMSBOT_DATABASE_URL must be a sqlite:// or postgresql+psycopg:// URL")
