"""``smsbot worker`` and ``smsbot checkins …``: operator commands for scheduled check-ins."""

from __future__ import annotations

import click
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from smsbot import metrics
from smsbot.alerts import require_public_url
from smsbot.cli.settings import cli_settings
from smsbot.config import ConfigError
from smsbot.db import Database
from smsbot.jobs import build_scheduler
from smsbot.logs import configure_logging
from smsbot.messaging.factory import make_transport
from smsbot.models import CheckIn, utcnow
from smsbot.phones import mask_phone


@click.command("worker")
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Serve this worker's Prometheus metrics (check-ins, dispatch lag) on this port.",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="Address for --metrics-port; it has no token, so keep it on an internal network.",
)
def worker(metrics_port: int | None, metrics_host: str) -> None:
    """Run the scheduler alone (production): dispatch due check-ins beside the web workers.

    Several workers may run at once; each check-in is still sent once. Run migrations
    first: this command does not change the schema.
    """
    settings = cli_settings()
    configure_logging()
    if metrics_port is not None:
        try:
            metrics.serve(metrics_port, metrics_host)
        except (OSError, RuntimeError) as error:
            where = f"{metrics_host}:{metrics_port}"
            raise click.ClickException(f"cannot serve metrics on {where}: {error}") from None
    database = Database(settings.database_url)
    try:
        require_public_url(database, settings)  # the worker sends the alerts and their links
    except ConfigError as error:
        database.close()
        raise click.ClickException(str(error)) from None
    scheduler = build_scheduler(database, make_transport(settings), settings, background=False)
    click.echo(
        f"smsbot worker: dispatching check-ins every {settings.dispatch_interval_seconds:g} s (Ctrl-C stops)"
    )
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        click.echo("smsbot worker: stopped")


@click.group("checkins")
def checkins() -> None:
    """Inspect scheduled check-ins."""


@checkins.command("list")
@click.option("--due", is_flag=True, help="Only pending check-ins whose time has come.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1), help="Rows to show.")
def list_checkins(due: bool, limit: int) -> None:
    """Show check-ins, latest due time first (oldest first with --due); times are UTC."""
    settings = cli_settings()
    query = select(CheckIn).options(joinedload(CheckIn.family)).limit(limit)
    if due:
        query = query.where(CheckIn.status == "pending", CheckIn.due_at <= utcnow()).order_by(CheckIn.due_at)
    else:
        query = query.order_by(CheckIn.due_at.desc())
    with Database(settings.database_url) as db, db.session() as session:
        rows = [
            (
                str(c.id),
                mask_phone(c.family.phone),
                c.programme,
                str(c.step),
                c.status,
                c.due_at.strftime("%Y-%m-%d %H:%M"),
                str(c.attempts),
                c.last_error or "",
            )
            for c in session.scalars(query)
        ]
    header = ("id", "phone", "programme", "step", "status", "due_at (UTC)", "attempts", "last_error")
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
