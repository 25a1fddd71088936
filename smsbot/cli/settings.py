"""What every ``smsbot`` command shares: settings read for command-line use (a bad value is
one clear ``Error:`` line, not a traceback) and the options several commands take."""

from __future__ import annotations

from pathlib import Path

import click

from smsbot.config import ConfigError, Settings, load_settings


def cli_settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


rules_dir_option = click.option(
    "--rules-dir",
    envvar="SMSBOT_RULES_DIR",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Directory of rule files [env SMSBOT_RULES_DIR; default: the rules shipped with smsbot].",
)
