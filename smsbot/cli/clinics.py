"""``smsbot clinic …``, ``smsbot staff …`` and ``smsbot enroll import``: clinic administration.

Every command is a thin wrapper over ``smsbot.clinics`` (and its ``csv_import``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from sqlalchemy.orm import Session

from smsbot import clinics
from smsbot.cli.settings import cli_settings
from smsbot.clinics import csv_import
from smsbot.config import Settings
from smsbot.db import Database
from smsbot.messaging.factory import make_transport
from smsbot.models import Clinic, utcnow


@contextmanager
def session_for(settings: Settings) -> Iterator[Session]:
    """A committed-on-success session that turns domain errors into one-line CLI errors."""
    try:
        with Database(settings.database_url) as database, database.session() as session:
            yield session
    except (clinics.InvalidFieldsError, clinics.ConflictError, LookupError) as error:
        raise click.ClickException(str(error)) from None


def find_clinic(session: Session, slug: str) -> Clinic:
    clinic = clinics.get_clinic(session, slug)
    if clinic is None:
        raise click.ClickException(f"no clinic with slug {slug!r} (see `smsbot clinic create`)")
    return clinic


clinic_option = click.option("--clinic", "slug", required=True, help="The clinic's slug.")


@click.group()
def clinic() -> None:
    """Clinics and their API tokens."""


def clinic_settings_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options ``clinic create`` and ``clinic update`` share."""
    for option in (
        click.option(
            "--whatsapp-sms-fallback",
            type=click.Choice(["on", "off"]),
            help="Text WhatsApp families by SMS when WhatsApp's 24-hour window is closed.",
        ),
        click.option("--quiet-hours", help="No scheduled texts in this window, e.g. 20:00-09:00."),
        click.option("--webhook-url", help="Gets a signed JSON POST per alert (needs SMSBOT_PUBLIC_URL)."),
        click.option("--oncall-phone", help="Gets an SMS for every alert (needs SMSBOT_PUBLIC_URL)."),
    ):
        command = option(command)
    return command


@clinic.command("create")
@click.option("--slug", required=True, help="Short unique id, e.g. riverside.")
@click.option("--name", required=True, help="Shown to families, e.g. 'Riverside Pediatrics'.")
@click.option("--timezone", required=True, help="IANA time zone, e.g. America/Chicago.")
@clinic_settings_options
def create_clinic(
    slug: str,
    name: str,
    timezone: str,
    oncall_phone: str | None,
    webhook_url: str | None,
    quiet_hours: str | None,
    whatsapp_sms_fallback: str | None,
) -> None:
    """Create a clinic; prints the secret its alert webhooks are signed with."""
    settings = cli_settings()
    with session_for(settings) as session:
        created = clinics.create_clinic(
            session,
            settings,
            slug=slug,
            name=name,
            timezone=timezone,
            oncall_phone=oncall_phone,
            webhook_url=webhook_url,
            quiet_hours=quiet_hours,
            whatsapp_sms_fallback=whatsapp_sms_fallback,
        )
        click.echo(f"created clinic {created.slug} ({created.name})")
        if created.webhook_url:
            click.echo(f"webhook secret (verify X-Smsbot-Signature with it): {created.webhook_secret}")


@clinic.command("update")
@click.option("--slug", required=True, help="The clinic to change.")
@click.option("--name", help="Shown to families.")
@click.option("--timezone", help="IANA time zone, e.g. America/Chicago.")
@click.option(
    "--episode-quiet-days",
    type=int,
    help="Close a family's episode after this many days without a text from it (default 14).",
)
@clinic_settings_options
def update_clinic(slug: str, **changes: str | int | None) -> None:
    """Change a clinic's settings; only the options given change ('' clears an optional one)."""
    settings = cli_settings()
    with session_for(settings) as session:
        updated = clinics.update_clinic(session, settings, find_clinic(session, slug), **changes)
        click.echo(f"updated clinic {updated.slug} ({updated.name})")


@clinic.command("list")
def list_clinics() -> None:
    """List clinics: slug, name, time zone, and how their alerts are paged."""
    settings = cli_settings()
    with session_for(settings) as session:
        for row in clinics.list_clinics(session):
            paging = ", ".join(
                part for part, on in (("on-call phone", row.oncall_phone), ("webhook", row.webhook_url)) if on
            )
            click.echo(f"{row.slug}\t{row.name}\t{row.timezone}\t{paging or 'no paging'}")


@clinic.group()
def token() -> None:
    """API tokens (``Authorization: Bearer …``)."""


@token.command("create")
@clinic_option
@click.option("--name", default="", help="What the token is for, e.g. 'EHR sync'.")
def create_token(slug: str, name: str) -> None:
    """Create an API token and print it once: only its hash is stored."""
    settings = cli_settings()
    with session_for(settings) as session:
        raw = clinics.create_token(session, find_clinic(session, slug), name)
    click.echo(raw)
    click.echo("Store it now: it cannot be shown again.", err=True)


@token.command("list")
@clinic_option
def list_tokens(slug: str) -> None:
    """List a clinic's API tokens: id, prefix, name, last use; revoked ones are marked."""
    settings = cli_settings()
    with session_for(settings) as session:
        for row in clinics.list_tokens(session, find_clinic(session, slug)):
            used = f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never used"
            state = "revoked" if row.revoked_at else "live"
            click.echo(f"{row.id}\t{row.prefix}…\t{row.name or '-'}\t{used}\t{state}")


@token.command("revoke")
@clinic_option
@click.argument("prefix_or_id")
def revoke_token(slug: str, prefix_or_id: str) -> None:
    """Revoke a token by the prefix it starts with (smsb_…) or its id."""
    settings = cli_settings()
    with session_for(settings) as session:
        revoked = clinics.revoke_token(session, find_clinic(session, slug), prefix_or_id, now=utcnow())
        click.echo(f"revoked token {revoked.id} ({revoked.prefix}…)")


@click.group()
def staff() -> None:
    """Clinic staff accounts (dashboard logins)."""


password_option = click.option(
    "--password",
    envvar="SMSBOT_STAFF_PASSWORD",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Prompted for when not given (or set SMSBOT_STAFF_PASSWORD).",
)
email_option = click.option("--email", required=True, help="The staff account's email.")


role_option = click.option(
    "--role",
    type=click.Choice(clinics.ROLES),
    default="nurse",
    show_default=True,
    help="admin: also manages staff, on-call and backup contacts, and escalation delays.",
)


@staff.command("add")
@clinic_option
@email_option
@click.option("--name", default="")
@role_option
@password_option
def add_staff(slug: str, email: str, name: str, role: str, password: str) -> None:
    """Add a staff account to a clinic (the password is stored as a scrypt hash)."""
    settings = cli_settings()
    with session_for(settings) as session:
        added = clinics.add_staff(
            session, find_clinic(session, slug), email=email, password=password, name=name, role=role
        )
        click.echo(f"added {added.email} to {slug} as {added.role}")


@staff.command("list")
@clinic_option
def list_staff(slug: str) -> None:
    """List a clinic's staff accounts: email, name, role, and whether disabled or locked."""
    settings = cli_settings()
    now = utcnow()
    with session_for(settings) as session:
        for account in clinics.list_staff(session, find_clinic(session, slug)):
            state = "disabled" if account.disabled_at else "active"
            if account.locked_until and account.locked_until > now:
                state = "locked"
            click.echo(f"{account.email}\t{account.name or '-'}\t{account.role}\t{state}")


@staff.command("set-role")
@email_option
@click.option("--role", type=click.Choice(clinics.ROLES), required=True)
def set_role(email: str, role: str) -> None:
    """Make an account a nurse or an admin."""
    settings = cli_settings()
    with session_for(settings) as session:
        account = clinics.get_staff(session, email)
        clinics.set_role(account, role)
        click.echo(f"{account.email} is now {account.role}")


@staff.command("reset-password")
@email_option
@password_option
def reset_password(email: str, password: str) -> None:
    """Set a new password: the account is signed out everywhere and any lockout is lifted."""
    settings = cli_settings()
    with session_for(settings) as session:
        account = clinics.get_staff(session, email)
        clinics.set_password(session, account, password)
        click.echo(f"new password set for {account.email}; their dashboard sessions are ended")


@staff.command("disable")
@email_option
def disable_staff(email: str) -> None:
    """Stop an account signing in and end its dashboard sessions (the account is kept)."""
    settings = cli_settings()
    with session_for(settings) as session:
        account = clinics.get_staff(session, email)
        clinics.disable_staff(session, account, now=utcnow())
        click.echo(f"disabled {account.email}; their dashboard sessions are ended")


@staff.command("enable")
@email_option
def enable_staff(email: str) -> None:
    """Let a disabled account sign in again with its password."""
    settings = cli_settings()
    with session_for(settings) as session:
        account = clinics.get_staff(session, email)
        clinics.enable_staff(account)
        click.echo(f"enabled {account.email}")


@click.group()
def enroll() -> None:
    """Enroll families for clinic follow-up."""


@enroll.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@clinic_option
@click.option(
    "--report",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write bad rows here as CSV (line, field, code, reason); default: print them.",
)
def import_families(csv_file: Path, slug: str, report: Path | None) -> None:
    """Enroll every good row of CSV_FILE; each new family gets one consent text.

    Columns: phone and programme (required), language, baby_name, baby_birth_date
    (YYYY-MM-DD), timezone, external_ref, channel. Every row is read and validated first;
    then the good rows are imported and each bad one reported. Re-running the same file
    (once fixed) changes nothing already imported. Exit status 1 if any row was bad.
    """
    settings = cli_settings()
    now = utcnow()
    try:
        with csv_file.open(newline="", encoding="utf-8-sig") as handle:
            rows, errors = csv_import.read_rows(handle)
    except (csv_import.CsvFormatError, UnicodeDecodeError) as error:
        raise click.ClickException(f"{csv_file}: {error}") from None
    good, invalid = csv_import.validate_rows(rows, settings, today=now.date())
    errors += invalid
    transport = make_transport(settings)
    created = 0
    with session_for(settings) as session:
        target = find_clinic(session, slug)
        with click.progressbar(good, label="Enrolling", file=sys.stderr) as bar:
            for row in bar:
                try:
                    _, is_new = clinics.enroll_family(
                        session, target, **row.values, now=now, settings=settings, transport=transport
                    )
                except clinics.ConflictError as error:
                    session.rollback()
                    errors.append(csv_import.RowError(row.line, error.field or "", error.code, str(error)))
                    continue
                session.commit()  # a crash half-way keeps what was done; re-running is safe
                created += is_new
    errors.sort(key=lambda error: error.line)
    bad_lines = len({error.line for error in errors})
    imported = len({row.line for row in good} - {error.line for error in errors})
    click.echo(f"{imported} rows imported ({created} newly enrolled), {bad_lines} rows with errors")
    if report is not None:
        csv_import.write_report(report, errors)
        click.echo(f"error report: {report}")
    else:
        for error in errors:
            click.echo(f"line {error.line}: {error.field}: {error.reason}", err=True)
    if errors:
        sys.exit(1)
