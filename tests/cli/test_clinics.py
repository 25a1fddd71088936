"""``smsbot clinic``, ``staff`` and ``enroll import`` as an operator runs them."""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select
from werkzeug.security import check_password_hash

from smsbot import clinics
from smsbot.cli import main
from smsbot.models import ApiToken, Clinic, Enrollment, Family, Message, Staff, utcnow
from tests.clinic_fixtures import *  # noqa: F403
from tests.clinic_fixtures import PROGRAMME
from tests.conftest import PUBLIC_URL


@pytest.fixture
def smsbot(database_url: str):  # type: ignore[no-untyped-def]
    """Run ``smsbot …`` against the test database, as an operator would."""

    def run(*args: str, input: str | None = None, public_url: str | None = PUBLIC_URL) -> Result:
        env = {
            "SMSBOT_DATABASE_URL": database_url,
            "SMSBOT_TRANSPORT": "console",
            "SMSBOT_STAFF_PASSWORD": None,
            "SMSBOT_PUBLIC_URL": public_url,
        }
        return CliRunner().invoke(main, list(args), env=env, input=input)

    return run


def test_clinic_create_normalises_and_prints_the_webhook_secret(smsbot, db):
    result = smsbot(
        "clinic", "create", "--slug", "hillside", "--name", "Hillside Clinic", "--timezone", "America/Denver",
        "--oncall-phone", "555 010 9998", "--webhook-url", "https://ehr.example.org/hook",
        "--quiet-hours", "21:00-08:00",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with db.session() as session:
        clinic = clinics.get_clinic(session, "hillside")
        assert (clinic.oncall_phone, clinic.quiet_hours_start, clinic.quiet_hours_end) == (
            "+15550109998",
            "21:00",
            "08:00",
        )
        assert clinic.webhook_secret in result.output


@pytest.mark.parametrize("option", ["--oncall-phone", "--webhook-url"])
def test_a_clinic_cannot_get_alerts_without_a_public_url_for_their_links(smsbot, db, option):
    target = {"--oncall-phone": "555 010 9998", "--webhook-url": "https://ehr.example.org/hook"}[option]
    create = ("clinic", "create", "--slug", "hillside", "--name", "Hillside", "--timezone", "America/Denver")
    result = smsbot(*create, option, target, public_url=None)
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert "SMSBOT_PUBLIC_URL" in line
    assert smsbot(*create, public_url=None).exit_code == 0  # a clinic without alerts needs none
    assert smsbot("clinic", "update", "--slug", "hillside", option, target, public_url=None).exit_code == 1
    with db.session() as session:
        clinic = clinics.get_clinic(session, "hillside")
        assert (clinic.oncall_phone, clinic.webhook_url) == (None, None)


def test_clinic_update_changes_only_what_is_given(smsbot, db):
    smsbot(
        "clinic", "create", "--slug", "hillside", "--name", "Hillside Clinic", "--timezone", "America/Denver",
        "--oncall-phone", "555 010 9998", "--quiet-hours", "21:00-08:00",
    )  # fmt: skip
    result = smsbot(
        "clinic", "update", "--slug", "hillside", "--oncall-phone", "555 010 9997", "--quiet-hours", ""
    )
    assert result.exit_code == 0, result.output
    with db.session() as session:
        clinic = clinics.get_clinic(session, "hillside")
        assert (clinic.name, clinic.timezone, clinic.oncall_phone, clinic.quiet_hours_start) == (
            "Hillside Clinic",
            "America/Denver",
            "+15550109997",
            None,
        )
    assert smsbot("clinic", "update", "--slug", "nowhere", "--name", "X").exit_code == 1


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--timezone", "Mars/Base", "time zone"),
        ("--quiet-hours", "late", "quiet hours"),
        ("--slug", "No Way", "slug"),
    ],
)
def test_clinic_create_refuses_bad_values_in_one_line(smsbot, option, value, message):
    args = {"--slug": "hillside", "--name": "Hillside", "--timezone": "UTC", option: value}
    result = smsbot("clinic", "create", *[part for pair in args.items() for part in pair])
    assert result.exit_code == 1
    assert message in result.output


def test_duplicate_clinic_slug_is_refused(smsbot, world):
    result = smsbot("clinic", "create", "--slug", "riverside", "--name", "Again", "--timezone", "UTC")
    assert result.exit_code == 1 and "already exists" in result.output


def test_token_is_printed_once_stored_hashed_and_revocable(smsbot, db, world):
    result = smsbot("clinic", "token", "create", "--clinic", "riverside", "--name", "ehr sync")
    assert result.exit_code == 0
    raw = result.stdout.strip()
    with db.session() as session:
        assert session.scalar(select(ApiToken.id).where(ApiToken.token_hash == raw)) is None
        assert clinics.authenticate_token(session, raw).name == "ehr sync"
    assert smsbot("clinic", "token", "revoke", "--clinic", "riverside", raw[:13]).exit_code == 0
    with db.session() as session:
        assert clinics.authenticate_token(session, raw) is None


def test_revoking_another_clinics_token_is_refused(smsbot, db, world):
    with db.session() as session:
        token_id = clinics.authenticate_token(session, world.lakeside_token).id
    result = smsbot("clinic", "token", "revoke", "--clinic", "riverside", str(token_id))
    assert result.exit_code == 1
    with db.session() as session:
        assert clinics.authenticate_token(session, world.lakeside_token) is not None


def test_staff_add_prompts_for_the_password_and_stores_a_scrypt_hash(smsbot, db, world):
    result = smsbot(
        "staff", "add", "--clinic", "riverside", "--email", "Nurse@Example.org", input="s3cret-pass!\n" * 2
    )
    assert result.exit_code == 0, result.output
    with db.session() as session:
        staff = session.scalar(select(Staff))
        assert staff.email == "nurse@example.org" and staff.clinic_id == world.riverside_id
        assert staff.password_hash.startswith("scrypt:")
        assert check_password_hash(staff.password_hash, "s3cret-pass!")


@pytest.fixture
def nurse(smsbot, db, world) -> int:  # type: ignore[no-untyped-def]
    """A staff account, locked out after five wrong passwords; its id."""
    email = "nurse@example.org"
    added = smsbot("staff", "add", "--clinic", "riverside", "--email", email, input="first-pass!\n" * 2)
    assert added.exit_code == 0, added.output
    with db.session() as session:
        staff = clinics.get_staff(session, email)
        staff.failed_logins, staff.locked_until = 5, utcnow() + timedelta(minutes=15)
        return staff.id


def test_staff_reset_password_ends_sessions_and_lifts_the_lockout(smsbot, db, nurse):
    result = smsbot("staff", "reset-password", "--email", "Nurse@Example.org", input="brand-new-pass\n" * 2)
    assert result.exit_code == 0, result.output
    assert "sessions are ended" in result.output
    with db.session() as session:
        staff = session.get(Staff, nurse)
        assert check_password_hash(staff.password_hash, "brand-new-pass")
        assert (staff.failed_logins, staff.locked_until, staff.session_generation) == (0, None, 1)


def test_staff_reset_password_refuses_a_short_password_and_an_unknown_email(smsbot, db, nurse):
    short = smsbot("staff", "reset-password", "--email", "nurse@example.org", input="short\n" * 2)
    unknown = smsbot("staff", "reset-password", "--email", "who@example.org", input="brand-new-pass\n" * 2)
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    assert unknown.exit_code == 1 and "no staff account with email 'who@example.org'" in unknown.output
    with db.session() as session:
        staff = session.get(Staff, nurse)
        assert check_password_hash(staff.password_hash, "first-pass!") and staff.session_generation == 0


def test_staff_disable_ends_sessions_and_enable_lets_the_account_sign_in_again(smsbot, db, nurse):
    result = smsbot("staff", "disable", "--email", "nurse@example.org")
    assert result.exit_code == 0 and "disabled nurse@example.org" in result.output
    with db.session() as session:
        staff = session.get(Staff, nurse)
        assert staff.disabled_at is not None and staff.session_generation == 1
    assert smsbot("staff", "enable", "--email", "nurse@example.org").exit_code == 0
    with db.session() as session:
        staff = session.get(Staff, nurse)
        assert staff.disabled_at is None and staff.session_generation == 1


def test_unknown_clinic_is_a_clear_error(smsbot):
    result = smsbot("clinic", "token", "create", "--clinic", "nowhere")
    assert result.exit_code == 1 and "no clinic with slug 'nowhere'" in result.output


# --- CSV import -------------------------------------------------------------------------


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


@pytest.fixture
def families_csv(tmp_path: Path) -> Path:
    born = (utcnow().date() - timedelta(days=50)).isoformat()
    return write_csv(
        tmp_path / "families.csv",
        [
            ["phone", "language", "programme", "baby_name", "baby_birth_date", "external_ref"],
            ["(555) 010-0001", "en", PROGRAMME, "Ana", born, "MRN-1"],  # line 2: good
            ["555-0100", "en", PROGRAMME, "Bo", born, "MRN-2"],  # line 3: too short
            ["+15550100003", "fr", PROGRAMME, "Cy", born, "MRN-3"],  # line 4: language
            ["+15550100004", "es", "no-such-plan", "Di", "2026-02-30", "MRN-4"],  # line 5: two errors
            ["+15550100005", "es", PROGRAMME, "Ed", "", "MRN-5"],  # line 6: good
        ],
    )


def counts(db) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return (
            session.scalar(select(func.count(Family.id))),
            session.scalar(select(func.count(Enrollment.id))),
            session.scalar(select(func.count(Message.id)).where(Message.kind == "consent")),
        )


def test_import_enrolls_good_rows_and_reports_bad_ones_by_line(smsbot, db, world, families_csv, tmp_path):
    report = tmp_path / "errors.csv"
    result = smsbot("enroll", "import", str(families_csv), "--clinic", "riverside", "--report", str(report))
    assert result.exit_code == 1
    assert "2 rows imported (2 newly enrolled), 3 rows with errors" in result.output
    assert counts(db) == (2, 2, 2)
    with report.open(newline="") as handle:
        rows = [(r["line"], r["field"], r["code"]) for r in csv.DictReader(handle)]
    assert rows == [
        ("3", "phone", "invalid_phone"),
        ("4", "language", "unknown_language"),
        ("5", "programme", "unknown_programme"),
        ("5", "baby_birth_date", "invalid_date"),
    ]
    with db.session() as session:
        enrollment = session.scalar(select(Enrollment).where(Enrollment.external_ref == "MRN-1"))
        assert (enrollment.family.phone, enrollment.clinic_id, enrollment.programme) == (
            "+15550100001",
            world.riverside_id,
            PROGRAMME,
        )


def test_reimporting_the_same_file_changes_nothing(smsbot, db, world, families_csv):
    smsbot("enroll", "import", str(families_csv), "--clinic", "riverside")
    before = counts(db)
    result = smsbot("enroll", "import", str(families_csv), "--clinic", "riverside")
    assert "(0 newly enrolled)" in result.output
    assert counts(db) == before  # no new family, enrollment or consent text


def test_clean_file_exits_zero(smsbot, db, world, tmp_path):
    path = write_csv(tmp_path / "ok.csv", [["Phone", "Programme"], ["+15550100009", PROGRAMME], ["", ""]])
    result = smsbot("enroll", "import", str(path), "--clinic", "riverside")
    assert result.exit_code == 0, result.output
    assert counts(db) == (1, 1, 1)


def test_file_with_unknown_columns_is_refused_before_importing_anything(smsbot, db, world, tmp_path):
    path = write_csv(
        tmp_path / "bad.csv", [["phone", "programme", "mothers_name"], ["+15550100009", PROGRAMME, "X"]]
    )
    result = smsbot("enroll", "import", str(path), "--clinic", "riverside")
    assert result.exit_code == 1 and "unknown: mothers_name" in result.output
    assert counts(db) == (0, 0, 0)


def test_import_into_the_wrong_programme_of_an_active_family_is_reported(smsbot, db, world, tmp_path):
    path = write_csv(tmp_path / "f.csv", [["phone", "programme"], ["+15550100009", PROGRAMME]])
    smsbot("enroll", "import", str(path), "--clinic", "riverside")
    with db.session() as session:
        session.scalar(select(Enrollment)).status = "active"
    path = write_csv(tmp_path / "g.csv", [["phone", "programme"], ["+15550100009", "after_routine"]])
    result = smsbot("enroll", "import", str(path), "--clinic", "riverside")
    assert result.exit_code == 1 and "line 2: programme" in result.output
    with db.session() as session:
        assert session.scalar(select(Clinic.id)) is not None
        assert session.scalar(select(Enrollment.programme)) == PROGRAMME


def import_text(smsbot, tmp_path: Path, content: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "families.csv"
    path.write_text(content, encoding="utf-8")
    return smsbot("enroll", "import", str(path), "--clinic", "riverside")


def test_a_huge_cell_is_a_row_error_and_the_other_rows_are_imported(smsbot, db, world, tmp_path):
    content = (
        f"phone,programme,baby_name\n+15550100001,{PROGRAMME},Ana\n"
        f'+15550100002,{PROGRAMME},"{"x" * 200_000}"\n+15550100003,{PROGRAMME},Cy\n'
    )
    result = import_text(smsbot, tmp_path, content)
    assert result.exit_code == 1, result.output
    assert "line 3: : cannot be read as CSV" in result.output
    assert "Traceback" not in result.output
    assert counts(db) == (2, 2, 2)


def test_an_unclosed_quote_is_a_row_error_not_a_merged_name(smsbot, db, world, tmp_path):
    content = f'phone,programme,baby_name\n+15550100001,{PROGRAMME},"Ana\n+15550100002,{PROGRAMME},Bo\n'
    result = import_text(smsbot, tmp_path, content)
    assert result.exit_code == 1
    assert "line 2: baby_name: baby_name contains a line break" in result.output
    assert counts(db) == (0, 0, 0)


def test_a_repeated_column_refuses_the_file(smsbot, db, world, tmp_path):
    result = import_text(smsbot, tmp_path, f"phone,programme,phone\n+15550100001,{PROGRAMME},+15550100002\n")
    assert result.exit_code == 1 and "twice: phone" in result.output
    assert counts(db) == (0, 0, 0)


def test_extra_cells_are_a_row_error(smsbot, db, world, tmp_path):
    content = f"phone,programme\n+15550100001,{PROGRAMME},Ana\n+15550100002,{PROGRAMME}\n"
    result = import_text(smsbot, tmp_path, content)
    assert result.exit_code == 1
    assert "line 2: : 1 more cell(s) than the header has columns" in result.output
    assert "1 rows imported (1 newly enrolled), 1 rows with errors" in result.output


def test_a_line_break_in_a_babys_name_never_reaches_a_text(api):
    response = api(
        "POST",
        "/families",
        json={"phone": "+15550100001", "programme": PROGRAMME, "baby_name": "Ana\nReply STOP"},
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "baby_name"
