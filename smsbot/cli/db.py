"""``smsbot db``: the database schema."""

from __future__ import annotations

import click

from smsbot.cli.settings import cli_settings
from smsbot.db import upgrade


@click.group()
def db() -> None:
    """Database commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    settings = cli_settings()
    upgrade(settings.database_url)
    click.echo("database is up to date")
