"""``smsbot clinic list``, ``clinic token list``, ``clinic escalation …``, ``staff list|set-role``,
``--version`` and ``-h``, as an operator runs them."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result

from smsbot import clinics
from smsbot.alerts import chain_settings
from smsbot.cli import main
from smsbot.models import Clinic
from tests.clinic_fixtures import *  # noqa: F403
from tests.conftest import PUBLIC_URL


@pytest.fixture
def smsbot(database_url: str):  # type: ignore[no-untyped-def]
    def run(*args: str) -> Result:
        env = {
            "SMSBOT_DATABASE_URL": database_url,
            "SMSBOT_TRANSPORT": "console",
            "SMSBOT_STAFF_PASSWORD": "correct horse battery",
            "SMSBOT_PUBLIC_URL": PUBLIC_URL,
        }
        return CliRunner().invoke(main, list(args), env=env)

    return run


def test_version_and_short_help(smsbot):
    assert smsbot("--version").output.startswith("smsbot, version ")
    assert smsbot("-h").output == smsbot("--help").output
    assert "Usage: smsbot staff list" in smsbot("staff", "list", "-h").output


def test_clinic_list_and_token_list(smsbot, world):
    listed = smsbot("clinic", "list")
    assert listed.exit_code == 0
    assert listed.output.splitlines() == [
        "lakeside\tLakeside Family Clinic\tAmerica/New_York\tno paging",
        "riverside\tRiverside Pediatrics\tAmerica/Chicago\ton-call phone",
    ]
    tokens = smsbot("clinic", "token", "list", "--clinic", "riverside").output.splitlines()
    assert [line.split("\t")[2:] for line in tokens] == [
        ["old", "never used", "revoked"],
        ["ehr", "never used", "live"],
    ]
    assert world.riverside_token not in "".join(tokens)  # only the prefix is ever shown
    assert smsbot("clinic", "token", "list", "--clinic", "nowhere").exit_code == 1


def test_staff_add_as_admin_list_and_set_role(smsbot, db, world):
    assert (
        smsbot(
            "staff", "add", "--clinic", "riverside", "--email", "Ada@Riverside.example", "--role", "admin"
        ).exit_code
        == 0
    )
    assert smsbot("staff", "add", "--clinic", "riverside", "--email", "bo@riverside.example").exit_code == 0
    assert smsbot("staff", "disable", "--email", "bo@riverside.example").exit_code == 0
    assert smsbot("staff", "list", "--clinic", "riverside").output.splitlines() == [
        "ada@riverside.example\t-\tadmin\tactive",
        "bo@riverside.example\t-\tnurse\tdisabled",
    ]
    assert smsbot("staff", "list", "--clinic", "lakeside").output == ""
    assert smsbot("staff", "set-role", "--email", "bo@riverside.example", "--role", "admin").exit_code == 0
    assert smsbot("staff", "set-role", "--email", "bo@riverside.example", "--role", "boss").exit_code == 2
    with db.session() as session:
        assert clinics.get_staff(session, "bo@riverside.example").role == "admin"


def test_escalation_chain_is_configured_from_the_command_line(smsbot, db, world):
    assert smsbot("clinic", "escalation", "set", "--clinic", "riverside", "--emergency-delay", "5",
                  "--urgent-delay", "45", "--clinic-hours", "07:30-19:00").exit_code == 0  # fmt: skip
    added = smsbot("clinic", "escalation", "add-contact", "--clinic", "riverside", "--name", "Dr Rivera",
                   "--phone", "555 010 8888", "--delay", "3")  # fmt: skip
    assert added.exit_code == 0, added.output
    shown = smsbot("clinic", "escalation", "show", "--clinic", "riverside").output
    assert "emergency 5 min, urgent 45 min (clinic hours 07:30-19:00 America/Chicago)" in shown
    assert "1. Dr Rivera: " in shown and "after 3 min" in shown
    assert "5550108888" not in shown  # phone numbers are masked
    bad = smsbot("clinic", "escalation", "set", "--clinic", "riverside", "--emergency-delay", "0")
    assert bad.exit_code == 1 and "emergency_minutes" in bad.output
    with db.session() as session:
        riverside = session.get(Clinic, world.riverside_id)
        assert (riverside.emergency_delay_minutes, riverside.urgent_delay_minutes) == (5, 45)
        (contact,) = chain_settings.contacts(session, riverside)
        assert (contact.phone, contact.delay_minutes) == ("+15550108888", 3)
    assert (
        smsbot("clinic", "escalation", "remove-contact", "--clinic", "lakeside", str(contact.id)).exit_code
        == 1
    )
    assert (
        smsbot("clinic", "escalation", "remove-contact", "--clinic", "riverside", str(contact.id)).exit_code
        == 0
    )
    with db.session() as session:
        assert chain_settings.contacts(session, session.get(Clinic, world.riverside_id)) == []
