"""``smsbot clinic escalation …``: who is paged when an alert stays unacknowledged, and when.

Thin wrappers over ``smsbot.alerts.chain_settings`` (the dashboard's escalation page uses the
same functions).
"""

from __future__ import annotations

import click

from smsbot.alerts import chain_settings, escalation
from smsbot.cli.clinics import clinic_option, find_clinic, session_for
from smsbot.cli.settings import cli_settings
from smsbot.phones import mask_phone


@click.group("escalation")
def escalation_group() -> None:
    """The escalation chain: on-call phone, then backups, each paged after a delay."""


@escalation_group.command("show")
@clinic_option
def show(slug: str) -> None:
    """Print the chain, the delays and the clinic hours the urgent clock counts in."""
    settings = cli_settings()
    with session_for(settings) as session:
        target = find_clinic(session, slug)
        opening, closing = escalation.clinic_hours(target)
        emergency, urgent = target.emergency_delay_minutes, target.urgent_delay_minutes
        click.echo(
            f"delays: emergency {emergency} min, urgent {urgent} min "
            f"(clinic hours {opening:%H:%M}-{closing:%H:%M} {target.timezone})"
        )
        click.echo(
            f"0. on-call phone: {mask_phone(target.oncall_phone) if target.oncall_phone else 'not set'}"
        )
        for number, contact in enumerate(chain_settings.contacts(session, target), start=1):
            delay = f"{contact.delay_minutes} min" if contact.delay_minutes else "the level's delay"
            click.echo(
                f"{number}. {contact.name}: {mask_phone(contact.phone)} after {delay} [id {contact.id}]"
            )
        click.echo(f"webhook: {'every page' if target.webhook_url else 'not set'}")


@escalation_group.command("set")
@clinic_option
@click.option("--emergency-delay", help="Minutes before the next contact is paged (default 10).")
@click.option("--urgent-delay", help="Minutes of clinic hours before the next page (default 60).")
@click.option("--clinic-hours", help="When the urgent clock runs, e.g. 08:00-18:00 ('' for the default).")
def set_chain(
    slug: str, emergency_delay: str | None, urgent_delay: str | None, clinic_hours: str | None
) -> None:
    """Change the level delays and the clinic hours; only the options given change."""
    settings = cli_settings()
    with session_for(settings) as session:
        chain_settings.set_delays(
            session,
            find_clinic(session, slug),
            emergency_minutes=emergency_delay,
            urgent_minutes=urgent_delay,
            clinic_hours=clinic_hours,
        )
        click.echo(f"escalation of {slug} updated")


@escalation_group.command("add-contact")
@clinic_option
@click.option("--name", required=True, help="Who this is, e.g. 'Dr Rivera (backup)'.")
@click.option("--phone", required=True, help="Mobile number paged by SMS.")
@click.option("--delay", help="Minutes to wait before paging this contact (default: the level's delay).")
def add_contact(slug: str, name: str, phone: str, delay: str | None) -> None:
    """Add a backup at the end of the chain."""
    settings = cli_settings()
    with session_for(settings) as session:
        contact = chain_settings.add_contact(
            session, settings, find_clinic(session, slug), name=name, phone=phone, delay_minutes=delay
        )
        click.echo(f"added {contact.name} ({mask_phone(contact.phone)}) as backup [id {contact.id}]")


@escalation_group.command("remove-contact")
@clinic_option
@click.argument("contact_id", type=click.IntRange(1, 2**31 - 1))
def remove_contact(slug: str, contact_id: int) -> None:
    """Remove a backup by the id ``show`` prints."""
    settings = cli_settings()
    with session_for(settings) as session:
        removed = chain_settings.remove_contact(session, find_clinic(session, slug), contact_id)
        click.echo(f"removed {removed.name}")
