"""Settings for command-line use: a bad value is one clear ``Error:`` line, not a traceback.

Shared by every module that adds commands to ``smsbot``.
"""

from __future__ import annotations

import click

from smsbot.config import ConfigError, Settings, load_settings


def cli_settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
