"""The access audit through the API, the CLI and the database: API reads, exports and
erasures write exactly one line each; erasure keeps only an anonymous line; the log is
append-only for the application, except its own retention."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, select, update

from smsbot import audit
from smsbot.cli import main
from smsbot.db import Database
from smsbot.models import AuditEntry, utcnow
from tests.clinic_fixtures import *  # noqa: F403


def lines(db: Database) -> list[AuditEntry]:
    with db.session() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


@pytest.mark.parametrize(
    ("path", "action"),
    [
        ("/families/{id}", "api_read"),
        ("/families/{id}/messages", "api_read"),
        ("/families/{id}/episodes", "api_read"),
        ("/families/{id}/export", "export"),
    ],
)
def test_each_api_read_writes_one_line_naming_the_token(
    db, api, world, enroll_consenting_parent, path, action
):
    family = enroll_consenting_parent()
    before = len(lines(db))
    assert api("GET", path.format(id=family["id"])).status_code == 200
    [line] = lines(db)[before:]
    assert (line.action, line.actor, line.clinic_id) == (action, "api:ehr", world.riverside_id)
    assert line.family_id is not None and world.riverside_token.startswith(line.detail["token"])


def test_a_refused_read_writes_nothing(db, api, world, enroll_consenting_parent):
    family = enroll_consenting_parent()
    before = len(lines(db))
    assert api("GET", f"/families/{family['id']}", token=world.lakeside_token).status_code == 404
    assert api("GET", f"/families/{family['id']}", token=None).status_code == 401
    assert len(lines(db)) == before


def test_erasing_a_family_keeps_only_one_anonymous_line(db, api, enroll_consenting_parent):
    family = enroll_consenting_parent()
    api("GET", f"/families/{family['id']}")
    api("GET", f"/families/{family['id']}/export")
    assert api("DELETE", f"/families/{family['id']}").status_code == 200
    [line] = [entry for entry in lines(db) if entry.action != "login"]
    assert (line.action, line.actor, line.family_id) == ("erase", "api:ehr", None)
    assert line.detail["erased"]["audit_log"] == 2


def test_cli_export_and_erase_say_who_asked(db, monkeypatch, database_url, enroll_consenting_parent):
    enroll_consenting_parent()
    monkeypatch.setenv("SMSBOT_DATABASE_URL", database_url)
    runner = CliRunner()
    assert (
        runner.invoke(
            main, ["family", "export", "+15550100001", "--asked-by", "the mother, by phone"]
        ).exit_code
        == 0
    )
    [export] = lines(db)
    assert (export.action, export.detail["asked_by"]) == ("export", "the mother, by phone")
    assert export.actor.startswith("operator")
    result = runner.invoke(main, ["family", "erase", "+15550100001", "--yes", "--asked-by", "the mother"])
    assert result.exit_code == 0, result.output
    [erase] = lines(db)
    assert (erase.action, erase.family_id, erase.detail["asked_by"]) == ("erase", None, "the mother")


def test_the_application_cannot_change_or_delete_audit_lines(db, api, enroll_consenting_parent):
    api("GET", f"/families/{enroll_consenting_parent()['id']}")
    with db.session() as session:
        entry = session.scalars(select(AuditEntry)).first()
        entry.actor = "someone else"
        with pytest.raises(audit.AuditLogAppendOnlyError):
            session.flush()
        session.rollback()
        entry = session.scalars(select(AuditEntry)).first()
        session.delete(entry)
        with pytest.raises(audit.AuditLogAppendOnlyError):
            session.flush()
        session.rollback()
        with pytest.raises(audit.AuditLogAppendOnlyError):
            session.execute(update(AuditEntry).values(actor="x"))
        with pytest.raises(audit.AuditLogAppendOnlyError):
            session.execute(delete(AuditEntry))
        with pytest.raises(audit.AuditLogAppendOnlyError):
            session.execute(delete(AuditEntry.__table__))
    assert all(entry.actor == "api:ehr" for entry in lines(db))


def test_retention_deletes_only_lines_older_than_its_own_setting(db):
    now = utcnow()
    with db.session() as session:
        for age in (1, 29, 31, 400):
            audit.record(session, audit.LOGIN_FAILED, actor=f"{age} days", now=now - timedelta(days=age))
    with db.session() as session:
        assert audit.purge_expired(session, retention_days=0, now=now) == 0
        assert audit.purge_expired(session, retention_days=30, now=now) == 2
    assert [entry.actor for entry in lines(db)] == ["1 days", "29 days"]
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 2
