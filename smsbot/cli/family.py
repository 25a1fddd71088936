"""``smsbot family``: a family's data, exported or erased on request (privacy)."""

from __future__ import annotations

import json

import click

from smsbot.cli.settings import cli_settings
from smsbot.db import Database
from smsbot.models import utcnow
from smsbot.phones import InvalidPhoneError, normalise_phone
from smsbot.privacy import erase_family, export_family, find_family


@click.group()
def family() -> None:
    """A family's data: export it or erase it (privacy requests)."""


def _database_and_phone(phone: str) -> tuple[Database, str]:
    """The configured database and ``phone`` in E.164 (a bad number is a usage error)."""
    settings = cli_settings()
    try:
        phone = normalise_phone(phone, settings.default_region)
    except InvalidPhoneError as error:
        raise click.BadParameter(str(error), param_hint="PHONE") from None
    return Database(settings.database_url), phone


@family.command("export")
@click.argument("phone")
def family_export(phone: str) -> None:
    """Print everything held about PHONE as JSON."""
    database, phone = _database_and_phone(phone)
    with database, database.session() as session:
        found = [export_family(session, contact) for contact in find_family(session, phone)]
    if not found:
        raise click.ClickException("no family with that phone number")
    click.echo(json.dumps(found, indent=2, ensure_ascii=False))


@family.command("erase")
@click.argument("phone")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def family_erase(phone: str, yes: bool) -> None:
    """Delete PHONE's family, messages, check-ins and alerts for good."""
    database, phone = _database_and_phone(phone)
    if not yes:
        click.confirm("Erase this family's data for good?", abort=True)
    with database, database.session() as session:
        contacts = find_family(session, phone)
        if not contacts:
            raise click.ClickException("no family with that phone number")
        for contact in contacts:
            counts = erase_family(session, contact, now=utcnow())
            click.echo("erased: " + ", ".join(f"{n} {table}" for table, n in counts.items()))
