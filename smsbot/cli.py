"""The ``smsbot`` command."""

from __future__ import annotations

import os
import sys
import uuid

import click

from smsbot.config import ConfigError, load_settings
from smsbot.db import Database, upgrade


def _settings(**overrides):  # type: ignore[no-untyped-def]
    try:
        return load_settings({k: v for k, v in overrides.items() if v is not None})
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


@click.group(name="smsbot")
def main() -> None:
    """smsbot: safe SMS guidance for parents of young babies with arm or leg tremors."""


@main.group()
def db() -> None:
    """Database commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    settings = _settings()
    upgrade(settings.database_url)
    click.echo("database is up to date")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=5000, show_default=True, type=int, help="Port to listen on.")
@click.option("--no-scheduler", is_flag=True, help="Do not run check-ins in this process.")
@click.option(
    "--prod",
    is_flag=True,
    help="Run under gunicorn (smsbot/gunicorn_conf.py): web workers only, run `smsbot worker` beside it.",
)
def serve(host: str, port: int, no_scheduler: bool, prod: bool) -> None:
    """Run the web app and the check-in scheduler (SQLite + console transport by default)."""
    if prod:
        os.execvp(
            "gunicorn",
            ["gunicorn", "-c", "python:smsbot.gunicorn_conf", "-b", f"{host}:{port}", "smsbot:create_app()"],
        )
    from smsbot import create_app
    from smsbot.logs import configure_logging
    from smsbot.scheduler import build_scheduler

    settings = _settings()
    configure_logging()
    upgrade(settings.database_url)
    try:
        app = create_app()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    scheduler = None
    if settings.run_scheduler and not no_scheduler:
        scheduler = build_scheduler(
            app.extensions["smsbot.db"], app.extensions["smsbot.transport"], settings, background=True
        )
        scheduler.start()
    click.echo(f"smsbot listening on http://{host}:{port} (transport: {settings.transport})", err=True)
    try:
        app.run(host=host, port=port, threaded=True, use_reloader=False)
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=False)


@main.command()
@click.option("--phone", default="+15550100001", show_default=True, help="The parent's phone number.")
@click.option("--whatsapp", is_flag=True, help="Text as a WhatsApp user.")
def chat(phone: str, whatsapp: bool) -> None:
    """Text the bot from the terminal, through exactly the pipeline a parent's SMS takes."""
    from smsbot.conversation import Inbound, receive
    from smsbot.phones import InvalidPhoneError, normalise_phone

    settings = _settings()
    try:
        phone = normalise_phone(phone, settings.default_region)
    except InvalidPhoneError as error:
        raise click.BadParameter(str(error), param_hint="--phone") from None
    upgrade(settings.database_url)
    database = Database(settings.database_url)
    interactive = sys.stdin.isatty()
    if interactive:
        click.echo(f"Texting as {phone}. Type a message, or Ctrl-D to quit.", err=True)
    while True:
        if interactive:
            click.echo("you> ", nl=False, err=True)
        line = sys.stdin.readline()
        if not line:
            break
        inbound = Inbound(
            sid=f"CHAT{uuid.uuid4().hex}",
            phone=phone,
            channel="whatsapp" if whatsapp else "sms",
            body=line.rstrip("\n"),
        )
        outcome = receive(database, settings, inbound)
        click.echo(f"bot [{outcome.level or '-'}]> {outcome.reply or '(no reply)'}")


@main.group()
def family() -> None:
    """A family's data: export it or erase it (privacy requests)."""


def _families_for(phone: str):  # type: ignore[no-untyped-def]
    from smsbot.phones import InvalidPhoneError, normalise_phone

    settings = _settings()
    try:
        phone = normalise_phone(phone, settings.default_region)
    except InvalidPhoneError as error:
        raise click.BadParameter(str(error), param_hint="PHONE") from None
    return Database(settings.database_url), phone


@family.command("export")
@click.argument("phone")
def family_export(phone: str) -> None:
    """Print everything held about PHONE as JSON."""
    import json

    from smsbot.privacy import export_family, find_family

    database, phone = _families_for(phone)
    with database.session() as session:
        found = [export_family(session, contact) for contact in find_family(session, phone)]
    if not found:
        raise click.ClickException("no family with that phone number")
    click.echo(json.dumps(found, indent=2, ensure_ascii=False))


@family.command("erase")
@click.argument("phone")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def family_erase(phone: str, yes: bool) -> None:
    """Delete PHONE's family, messages, check-ins and alerts for good."""
    from smsbot.models import utcnow
    from smsbot.privacy import erase_family, find_family

    database, phone = _families_for(phone)
    if not yes:
        click.confirm("Erase this family's data for good?", abort=True)
    with database.session() as session:
        contacts = find_family(session, phone)
        if not contacts:
            raise click.ClickException("no family with that phone number")
        for contact in contacts:
            counts = erase_family(session, contact, now=utcnow())
            click.echo("erased: " + ", ".join(f"{n} {table}" for table, n in counts.items()))


def _attach_subcommands() -> None:
    """Commands that live beside their concern, attached to the one ``smsbot`` group."""
    from smsbot.cli_checkins import checkins, worker

    main.add_command(worker)
    main.add_command(checkins)


_attach_subcommands()
