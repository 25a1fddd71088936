"""``smsbot serve`` (the web app, and check-ins unless told not to) and ``smsbot chat``."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import sys
import uuid
from pathlib import Path

import click

from smsbot.cli.settings import cli_settings
from smsbot.config import ConfigError, Settings
from smsbot.db import Database, upgrade


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=5000, show_default=True, type=int, help="Port to listen on.")
@click.option("--no-scheduler", is_flag=True, help="Do not run check-ins in this process.")
@click.option(
    "--prod",
    is_flag=True,
    help="Run under gunicorn (smsbot/web/gunicorn_conf.py): web workers only, run `smsbot worker` beside it.",
)
def serve(host: str, port: int, no_scheduler: bool, prod: bool) -> None:
    """Run the web app and the check-in scheduler (SQLite + console transport by default)."""
    settings = cli_settings()
    if settings.transport == "console" and not _is_loopback(host):
        # The console transport takes unsigned texts from loopback: never offer that to a network.
        raise click.ClickException(
            f"the console transport listens on loopback only, not {host}: use --host 127.0.0.1, "
            "or SMSBOT_TRANSPORT=twilio"
        )
    if prod:
        gunicorn = shutil.which("gunicorn")
        if gunicorn is None:
            raise click.ClickException("--prod needs gunicorn: pip install -e '.[prod]'")
        config = "python:smsbot.web.gunicorn_conf"
        os.execv(gunicorn, ["gunicorn", "-c", config, "-b", f"{host}:{port}", "smsbot:create_app()"])
    from smsbot import create_app
    from smsbot.jobs import build_scheduler
    from smsbot.logs import configure_logging

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


def _is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name such as ``localhost``) is this machine only."""
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
    except (OSError, ValueError):
        return False


@click.command()
@click.option("--phone", default="+15550100001", show_default=True, help="The parent's phone number.")
@click.option("--whatsapp", is_flag=True, help="Text as a WhatsApp user.")
@click.option(
    "--script",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Play a transcript file (tests/transcripts/*.yaml) and check every reply; exit 1 on a failed check.",
)
def chat(phone: str, whatsapp: bool, script: Path | None) -> None:
    """Text the bot from the terminal, through exactly the pipeline a parent's SMS takes."""
    from smsbot import outbox
    from smsbot.conversation import Inbound, receive
    from smsbot.phones import InvalidPhoneError, normalise_phone

    settings = cli_settings()
    if script is not None:
        _play(script, settings)
        return
    try:
        phone = normalise_phone(phone, settings.default_region)
    except InvalidPhoneError as error:
        raise click.BadParameter(str(error), param_hint="--phone") from None
    upgrade(settings.database_url)
    interactive = sys.stdin.isatty()
    if interactive:
        click.echo(f"Texting as {phone}. Type a message, or Ctrl-D to quit.", err=True)
    with Database(settings.database_url) as database:
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
            outbox.drain_all(database, settings)  # its follow-ups, as the web app's courier would
            click.echo(f"bot [{outcome.level or '-'}]> {outcome.reply or '(no reply)'}")


def _play(script: Path, settings: Settings) -> None:
    """Each conversation of ``script`` from a fresh number, printed with each text's segments."""
    from pydantic import ValidationError

    from smsbot.conversation import transcripts
    from smsbot.rulefiles import RuleFileError

    try:
        conversations = transcripts.load_transcripts(script)
    except (RuleFileError, ValidationError) as error:
        raise click.ClickException(f"{script}: {error}") from None
    upgrade(settings.database_url)
    failed = 0
    with Database(settings.database_url) as database:
        driver = transcripts.LocalDriver(database, settings)
        phones = transcripts.phones()
        for conversation in conversations:
            click.echo(f"=== {conversation.name}")
            turns = transcripts.run(conversation, driver, next(phones))
            for turn in turns:
                click.echo(str(turn))
            failed += bool(transcripts.failures(turns))
            click.echo()
    click.echo(f"{len(conversations) - failed} of {len(conversations)} conversations pass")
    if failed:
        sys.exit(1)
