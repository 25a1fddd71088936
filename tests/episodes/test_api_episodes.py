"""Episodes through the clinic API: a first report opens one, the quiet days or staff close
it, the detail holds the levels, flags with their reasons and who acknowledged, and another
clinic never sees it."""

from __future__ import annotations

from datetime import timedelta

from click.testing import CliRunner

from smsbot import episodes
from smsbot.cli import main
from smsbot.db import Database
from smsbot.models import Clinic, Enrollment, Episode, Message, utcnow
from tests.clinic_fixtures import *  # noqa: F403
from tests.clinic_fixtures import PROGRAMME

BLUE = "he is shaking and his lips are turning blue"


def test_a_first_report_opens_an_episode_with_its_levels_flags_and_alert(
    api, enroll_consenting_parent, text_bot
):
    family = enroll_consenting_parent()
    assert api("GET", f"/families/{family['id']}/episodes").get_json() == {"data": []}

    assert text_bot(BLUE).status_code == 200
    [episode] = api("GET", f"/families/{family['id']}/episodes").get_json()["data"]
    assert (episode["family_id"], episode["status"], episode["highest_level"]) == (
        family["id"],
        "open",
        "emergency",
    )

    [alert] = api("GET", "/alerts").get_json()["data"]
    api("POST", f"/alerts/{alert['id']}/acknowledge", json={"note": "called mum, sent to ED"})
    detail = api("GET", f"/families/{family['id']}/episodes/{episode['id']}").get_json()
    [text] = detail["levels"]
    assert text["level"] == "emergency"
    assert text["flags"] and all(flag["rule_id"] and flag["reason"] for flag in text["flags"])
    [acknowledged] = detail["alerts"]
    assert (acknowledged["acknowledged_by"], acknowledged["note"]) == ("api:ehr", "called mum, sent to ED")
    assert [reply["direction"] for reply in detail["replies"]] == ["out"]
    timeline = [entry["text"] for entry in detail["timeline"]]
    assert timeline[0].startswith("The family texted; triage read it as emergency.")
    assert "api:ehr acknowledged the alert: called mum, sent to ED" in timeline


def test_texts_without_a_symptom_open_no_episode(api, enroll_consenting_parent, text_bot):
    family = enroll_consenting_parent()
    text_bot("what should I watch for?")
    assert api("GET", f"/families/{family['id']}/episodes").get_json() == {"data": []}


def test_the_quiet_days_close_an_episode_and_a_later_report_opens_another(
    app, db: Database, api, enroll_consenting_parent, text_bot
):
    family = enroll_consenting_parent()
    text_bot("her legs shake when she cries")
    with db.session() as session:
        enrollment = session.get_one(Enrollment, family["id"])
        first_text = session.get_one(
            Episode, episodes.refresh(session, enrollment, now=utcnow())[0].id
        ).opened_at
        day13 = episodes.refresh(session, enrollment, now=first_text + timedelta(days=13, hours=23))
        assert [e.closed_at for e in day13] == [None]
        [closed] = episodes.refresh(session, enrollment, now=first_text + timedelta(days=14))
        assert (closed.closed_at, closed.close_reason, closed.closed_by) == (
            first_text + timedelta(days=14),
            "quiet",
            None,
        )
        later = first_text + timedelta(days=20)
        session.add(
            Message(
                family_id=enrollment.family_id,
                direction="in",
                kind="symptom",
                level="urgent",
                created_at=later,
            )
        )
        session.flush()
        first, second = episodes.refresh(session, enrollment, now=later)
        assert first.id == closed.id and (second.opened_at, second.closed_at) == (later, None)
        session.commit()
    listed = api("GET", f"/families/{family['id']}/episodes").get_json()["data"]
    assert [(e["status"], e["close_reason"]) for e in listed] == [("closed", "quiet"), ("open", None)]


def test_a_clinic_with_fewer_quiet_days_closes_sooner(
    db: Database, world, enroll_consenting_parent, text_bot
):
    family = enroll_consenting_parent()
    text_bot("her legs shake when she cries")
    with db.session() as session:
        enrollment = session.get_one(Enrollment, family["id"])
        enrollment.clinic.episode_quiet_days = 3
        [episode] = episodes.refresh(session, enrollment, now=utcnow() + timedelta(days=3, minutes=1))
        assert episode.close_reason == "quiet"


def test_staff_close_an_episode_and_a_new_report_opens_the_next(
    db: Database, enroll_consenting_parent, text_bot
):
    family = enroll_consenting_parent()
    text_bot("her legs shake when she cries")
    with db.session() as session:
        enrollment = session.get_one(Enrollment, family["id"])
        [episode] = episodes.refresh(session, enrollment, now=utcnow())
        assert episodes.close_by_staff(session, episode, by="staff:nurse@riverside.example", now=utcnow())
        assert not episodes.close_by_staff(session, episode, by="staff:someone", now=utcnow())
        assert (episode.close_reason, episode.closed_by) == ("staff", "staff:nurse@riverside.example")
        session.commit()
    text_bot("ok thanks")
    with db.session() as session:
        enrollment = session.get_one(Enrollment, family["id"])
        assert len(episodes.refresh(session, enrollment, now=utcnow())) == 1  # no report: none opened
    text_bot("now she is shaking again and very floppy")
    with db.session() as session:
        enrollment = session.get_one(Enrollment, family["id"])
        first, second = episodes.refresh(session, enrollment, now=utcnow())
        assert first.close_reason == "staff" and second.closed_at is None


def test_another_clinic_never_sees_the_episode(api, world, enroll_consenting_parent, text_bot):
    family = enroll_consenting_parent()
    other = enroll_consenting_parent("+15550100002")
    text_bot(BLUE)
    [episode] = api("GET", f"/families/{family['id']}/episodes").get_json()["data"]
    lakeside = world.lakeside_token
    assert api("GET", f"/families/{family['id']}/episodes", token=lakeside).status_code == 404
    assert api("GET", f"/families/{family['id']}/episodes/{episode['id']}", token=lakeside).status_code == 404
    # Nor through one of its own ids: the episode belongs to another family.
    assert api("GET", f"/families/{other['id']}/episodes/{episode['id']}").status_code == 404


def test_family_summary_prints_each_clinics_episodes(
    monkeypatch, database_url, api, enroll_consenting_parent, text_bot
):
    family = enroll_consenting_parent(baby_name="Ana")
    text_bot(BLUE)
    [alert] = api("GET", "/alerts").get_json()["data"]
    api("POST", f"/alerts/{alert['id']}/acknowledge", json={"note": "called"})
    monkeypatch.setenv("SMSBOT_DATABASE_URL", database_url)
    result = CliRunner().invoke(main, ["family", "summary", "(555) 010-0001"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"Riverside Pediatrics · family {family['id']} · •••0001 · Ana"
    assert "open; highest level emergency" in lines[1]
    assert any(line.startswith("    red flag ") for line in lines)
    assert any("alert emergency" in line and "acknowledged by api:ehr" in line for line in lines)
    assert "+15550100001" not in result.output


def test_family_summary_of_an_unknown_number_is_a_clear_error(monkeypatch, database_url):
    monkeypatch.setenv("SMSBOT_DATABASE_URL", database_url)
    result = CliRunner().invoke(main, ["family", "summary", "+15550109999"])
    assert result.exit_code == 1 and "no family with that phone number" in result.output


def test_an_operator_sets_a_clinics_quiet_days(monkeypatch, database_url, db: Database, world):
    monkeypatch.setenv("SMSBOT_DATABASE_URL", database_url)
    update = ["clinic", "update", "--slug", "riverside", "--episode-quiet-days"]
    assert CliRunner().invoke(main, [*update, "7"]).exit_code == 0
    refused = CliRunner().invoke(main, [*update, "0"])
    assert refused.exit_code == 1 and "episode_quiet_days" in refused.output
    with db.session() as session:
        assert session.get_one(Clinic, world.riverside_id).episode_quiet_days == 7


def test_a_shared_family_has_separate_episodes_per_clinic(
    api, world, enroll_consenting_parent, text_bot, enroll_parent
):
    family = enroll_consenting_parent()
    text_bot(BLUE)  # before Lakeside follows the family: never Lakeside's to see
    lakeside = api(
        "POST",
        "/families",
        token=world.lakeside_token,
        json={"phone": "+15550100001", "programme": PROGRAMME},
    ).get_json()
    text_bot("YES")
    assert api("GET", f"/families/{lakeside['id']}/episodes", token=world.lakeside_token).get_json() == {
        "data": []
    }
    [riverside_episode] = api("GET", f"/families/{family['id']}/episodes").get_json()["data"]
    path = f"/families/{lakeside['id']}/episodes/{riverside_episode['id']}"
    assert api("GET", path, token=world.lakeside_token).status_code == 404


def test_the_openapi_document_has_the_episode_endpoints(api):
    paths = api("GET", "/openapi.json", token=None).get_json()["paths"]
    for path in (
        "/families/{family_id}/episodes",
        "/families/{family_id}/episodes/{episode_id}",
        "/families/{family_id}/episodes/{episode_id}/fhir",
    ):
        assert set(paths[path]) == {"get"}
    assert paths["/families/{family_id}/episodes/{episode_id}"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"] == {"$ref": "#/components/schemas/EpisodeDetail"}
