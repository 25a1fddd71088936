"""The README's configuration table lists every setting once, and only settings that exist."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from smsbot.config import Settings, env_name

README = Path(__file__).resolve().parent.parent / "README.md"
# Read outside ``Settings``: by a CLI option and by gunicorn's configuration.
OTHER_VARIABLES = {"SMSBOT_STAFF_PASSWORD", "SMSBOT_WEB_WORKERS", "SMSBOT_WEB_THREADS", "SMSBOT_BIND"}


def table_variables() -> list[str]:
    section = README.read_text(encoding="utf-8").split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [name for row in rows for name in re.findall(r"`((?:SMSBOT|TWILIO)_[A-Z_]+)`", row.split("|")[1])]


def test_every_setting_is_in_the_configuration_table_once():
    listed = table_variables()
    assert sorted(listed) == sorted(set(listed)), "a variable is listed twice"
    expected = {env_name(f.name) for f in fields(Settings)} | OTHER_VARIABLES
    assert set(listed) == expected
