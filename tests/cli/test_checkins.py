"""``smsbot checkins list`` as an operator runs it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner

from smsbot.cli.checkins import checkins
from smsbot.models import CheckIn, utcnow
from tests.checkin_fixtures import RULES_DIR, add_family, checkin_database

db = pytest.fixture(checkin_database, name="db")


def add_checkin(session, family, *, due_in: timedelta, **fields) -> None:
    values = {"programme": "after_routine", "step": 1, "status": "pending", "attempts": 0, **fields}
    session.add(
        CheckIn(family_id=family.id, due_at=utcnow() + due_in, dedupe_key=f"{family.id}:{due_in}", **values)
    )


def test_checkins_list_masks_phones_and_due_shows_only_what_is_due(db):
    with db.session() as session:
        family = add_family(session)
        add_checkin(
            session,
            family,
            due_in=timedelta(minutes=-5),
            attempts=2,
            last_error="Twilio 30001: queue overflow",
        )
        add_checkin(session, family, due_in=timedelta(days=1))
    env = {"SMSBOT_DATABASE_URL": db.url, "SMSBOT_RULES_DIR": str(RULES_DIR)}

    everything = CliRunner().invoke(checkins, ["list"], env=env)
    due = CliRunner().invoke(checkins, ["list", "--due"], env=env)

    assert everything.exit_code == 0, everything.output
    lines = everything.output.splitlines()
    assert lines[0].split() == [
        "id",
        "phone",
        "programme",
        "step",
        "status",
        "due_at",
        "(UTC)",
        "attempts",
        "last_error",
    ]
    assert [line.split()[0] for line in lines[1:]] == ["2", "1"]
    assert "+1555" not in everything.output and "•••0001" in everything.output
    assert [line.split()[0] for line in due.output.splitlines()[1:]] == ["1"]
    assert due.output.splitlines()[1].split(maxsplit=8)[7:] == ["2", "Twilio 30001: queue overflow"]
