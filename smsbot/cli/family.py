"""``smsbot family``: a family's data, exported or erased on request (privacy), and the
summary of its episodes."""

from __future__ import annotations

import getpass
import json

import click
from sqlalchemy import select

from smsbot import audit, episodes
from smsbot.cli.settings import cli_settings
from smsbot.db import Database
from smsbot.models import Enrollment, utcnow
from smsbot.phones import InvalidPhoneError, mask_phone, normalise_phone
from smsbot.privacy import erase_family, export_family, find_family
from smsbot.triage import load_rules

TIME = "%Y-%m-%d %H:%M UTC"


@click.group()
def family() -> None:
    """A family's data: export it or erase it (privacy requests), or summarise its episodes."""


def _database_and_phone(phone: str) -> tuple[Database, str]:
    """The configured database and ``phone`` in E.164 (a bad number is a usage error)."""
    settings = cli_settings()
    try:
        phone = normalise_phone(phone, settings.default_region)
    except InvalidPhoneError as error:
        raise click.BadParameter(str(error), param_hint="PHONE") from None
    return Database(settings.database_url), phone


def _operator() -> str:
    """Who runs the command, for the audit: the operating-system account."""
    try:
        return f"operator:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name in this environment
        return "operator"


ASKED_BY = click.option("--asked-by", help="Who asked for it (the parent, a clinic…), for the audit.")


@family.command("export")
@click.argument("phone")
@ASKED_BY
def family_export(phone: str, asked_by: str | None) -> None:
    """Print everything held about PHONE as JSON."""
    database, phone = _database_and_phone(phone)
    with database, database.session() as session:
        found = []
        for contact in find_family(session, phone):
            found.append(export_family(session, contact))
            audit.record(
                session,
                audit.EXPORT,
                actor=_operator(),
                now=utcnow(),
                family_id=contact.id,
                asked_by=asked_by,
            )
    if not found:
        raise click.ClickException("no family with that phone number")
    click.echo(json.dumps(found, indent=2, ensure_ascii=False))


@family.command("erase")
@click.argument("phone")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@ASKED_BY
def family_erase(phone: str, yes: bool, asked_by: str | None) -> None:
    """Delete PHONE's family, messages, check-ins and alerts for good."""
    database, phone = _database_and_phone(phone)
    if not yes:
        click.confirm("Erase this family's data for good?", abort=True)
    with database, database.session() as session:
        contacts = find_family(session, phone)
        if not contacts:
            raise click.ClickException("no family with that phone number")
        for contact in contacts:
            counts = erase_family(session, contact, now=utcnow(), by=_operator(), asked_by=asked_by)
            click.echo("erased: " + ", ".join(f"{n} {table}" for table, n in counts.items()))


@family.command("summary")
@click.argument("phone")
@ASKED_BY
def family_summary(phone: str, asked_by: str | None) -> None:
    """Print PHONE's episodes at each clinic: levels, red flags and why, alerts, what happened."""
    settings = cli_settings()
    database, phone = _database_and_phone(phone)
    rules = load_rules(settings.rules_path)
    with database, database.session() as session:
        contacts = find_family(session, phone)
        if not contacts:
            raise click.ClickException("no family with that phone number")
        enrollments = session.scalars(
            select(Enrollment)
            .where(Enrollment.family_id.in_([contact.id for contact in contacts]))
            .order_by(Enrollment.id)
        ).all()
        now = utcnow()
        for enrollment in enrollments:
            audit.record(
                session,
                audit.EXPORT,
                actor=_operator(),
                now=now,
                clinic_id=enrollment.clinic_id,
                family_id=enrollment.family_id,
                format="summary",
                asked_by=asked_by,
            )
            click.echo(_heading(enrollment))
            stories = episodes.stories_of(session, enrollment, rules, now=now)
            if not stories:
                click.echo("  no episode: no symptom reported")
            for story in stories:
                click.echo(_episode_lines(story))
        session.commit()


def _heading(enrollment: Enrollment) -> str:
    baby = f" · {enrollment.baby_name}" if enrollment.baby_name else ""
    return f"{enrollment.clinic.name} · family {enrollment.id} · {mask_phone(enrollment.family.phone)}{baby}"


def _episode_lines(story: episodes.Story) -> str:
    episode = story.episode
    if episode.closed_at is None:
        state = "open"
    elif episode.close_reason == episodes.CLOSED_BY_STAFF:
        state = f"closed {episode.closed_at:{TIME}} by {episode.closed_by}"
    else:
        state = f"closed {episode.closed_at:{TIME}} after the quiet days"
    lines = [
        f"  episode {episode.id}: opened {episode.opened_at:{TIME}}, {state}; "
        f"highest level {story.highest_level}",
        "    levels: " + (", ".join(f"{r.at:%m-%d %H:%M} {r.level}" for r in story.reports) or "none"),
    ]
    lines += [f"    red flag {flag.rule_id}: {flag.reason}" for r in story.reports for flag in r.flags]
    for alert in story.alerts:
        acked = (
            f"acknowledged by {alert.acknowledged_by} {alert.acknowledged_at:{TIME}}"
            if alert.acknowledged_at
            else "NOT acknowledged"
        )
        lines.append(f"    alert {alert.level} {alert.created_at:{TIME}}: {acked}")
    lines += [f"    {entry.at:{TIME}}  {entry.text}" for entry in story.timeline]
    return "\n".join(lines)
