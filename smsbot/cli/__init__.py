"""The ``smsbot`` command: one module per command group, each added here."""

from __future__ import annotations

import click

from smsbot.cli import checkins, clinics, db, escalation, family, rules, serve, triage


@click.group(name="smsbot", context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="smsbot", prog_name="smsbot")
def main() -> None:
    """smsbot: safe SMS guidance for parents of young babies with arm or leg tremors."""


for command in (
    triage.triage,
    rules.rules,
    db.db,
    serve.serve,
    serve.chat,
    family.family,
    checkins.worker,
    checkins.checkins,
    clinics.clinic,
    clinics.staff,
    clinics.enroll,
):
    main.add_command(command)
clinics.clinic.add_command(escalation.escalation_group)
