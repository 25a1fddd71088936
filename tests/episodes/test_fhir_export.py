"""The FHIR export of an episode: a Bundle the library's R4B models validate, that
round-trips, holds the expected resources, and carries only the identifier the clinic gave."""

from __future__ import annotations

import json
from collections import Counter

from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select

from smsbot.models import AuditEntry
from tests.clinic_fixtures import *  # noqa: F403

FEVER = "she has a fever of 38.5 and her arms keep shaking"
BLUE = "now his lips are turning blue"


def _bundle(api, enroll_consenting_parent, text_bot, **family_fields):  # type: ignore[no-untyped-def]
    family = enroll_consenting_parent(**family_fields)
    text_bot(FEVER)
    text_bot(BLUE)
    alerts = api("GET", "/alerts").get_json()["data"]
    api("POST", f"/alerts/{alerts[-1]['id']}/acknowledge", json={"note": "called, sent to ED"})
    [episode] = api("GET", f"/families/{family['id']}/episodes").get_json()["data"]
    response = api("GET", f"/families/{family['id']}/episodes/{episode['id']}/fhir")
    assert response.status_code == 200
    return family, episode, response


def test_the_bundle_validates_round_trips_and_holds_the_expected_resources(
    api, enroll_consenting_parent, text_bot
):
    family, episode, response = _bundle(api, enroll_consenting_parent, text_bot, external_ref="MRN-4471")
    bundle = Bundle.model_validate_json(response.data)  # raises on anything the R4B models refuse
    assert Bundle.model_validate_json(bundle.model_dump_json()) == bundle
    assert json.loads(bundle.model_dump_json()) == response.get_json()

    resources = [entry.resource for entry in bundle.entry]
    kinds = Counter(resource.get_resource_type() for resource in resources)
    detail = api("GET", f"/families/{family['id']}/episodes/{episode['id']}").get_json()
    messages = len(detail["levels"]) + len(detail["replies"]) + len(detail["staff_messages"])
    assert kinds == {
        "Patient": 1,
        "EpisodeOfCare": 1,
        "Observation": len(detail["levels"]),
        "Flag": len(detail["alerts"]),
        "Communication": messages,
    }
    assert bundle.type == "collection" and len(detail["alerts"]) >= 1 and len(detail["levels"]) == 2


def test_the_patient_carries_only_the_identifier_the_clinic_gave(api, enroll_consenting_parent, text_bot):
    _, _, response = _bundle(
        api, enroll_consenting_parent, text_bot, external_ref="MRN-4471", baby_name="Ana"
    )
    [patient] = [
        e["resource"] for e in response.get_json()["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    assert set(patient) == {"resourceType", "id", "identifier"}
    [identifier] = patient["identifier"]
    assert identifier["value"] == "MRN-4471"
    assert "+15550100001" not in response.get_data(as_text=True)  # the parent's number never leaves


def test_observations_carry_level_flags_with_reasons_and_the_temperature(
    api, enroll_consenting_parent, text_bot
):
    _, _, response = _bundle(api, enroll_consenting_parent, text_bot)
    resources = [e["resource"] for e in response.get_json()["entry"]]
    fever, blue = [r for r in resources if r["resourceType"] == "Observation"]
    assert blue["valueCodeableConcept"]["coding"][0]["code"] == "emergency"
    assert any(
        c["code"]["coding"][0]["system"].endswith("triage-rule") and c["valueString"]
        for c in blue["component"]
    )
    [temperature] = [c for c in fever["component"] if c["code"]["coding"][0]["code"] == "8310-5"]
    assert temperature["valueQuantity"]["value"] == 101.3 and temperature["valueQuantity"]["code"] == "[degF]"
    [flag] = [r for r in resources if r["resourceType"] == "Flag" and r["status"] == "inactive"]
    assert {ext["valueString"] for ext in flag["extension"]} == {"api:ehr", "called, sent to ED"}
    episode = next(r for r in resources if r["resourceType"] == "EpisodeOfCare")
    assert episode["status"] == "active" and episode["patient"]["reference"].startswith("urn:uuid:")


def test_the_patient_has_no_identifier_when_the_clinic_gave_none(api, enroll_consenting_parent, text_bot):
    _, _, response = _bundle(api, enroll_consenting_parent, text_bot)
    [patient] = [
        e["resource"] for e in response.get_json()["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    assert set(patient) == {"resourceType", "id"}


def test_another_clinic_cannot_export_the_episode(api, world, enroll_consenting_parent, text_bot):
    family, episode, _ = _bundle(api, enroll_consenting_parent, text_bot)
    path = f"/families/{family['id']}/episodes/{episode['id']}/fhir"
    assert api("GET", path, token=world.lakeside_token).status_code == 404


def test_the_export_writes_one_audit_line(db, api, enroll_consenting_parent, text_bot):
    family, episode, _ = _bundle(api, enroll_consenting_parent, text_bot)
    with db.session() as session:
        last = session.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).id
    api("GET", f"/families/{family['id']}/episodes/{episode['id']}/fhir")
    with db.session() as session:
        [line] = session.scalars(select(AuditEntry).where(AuditEntry.id > last)).all()
        assert (line.action, line.actor, line.detail["format"], line.detail["episode_id"]) == (
            "export",
            "api:ehr",
            "fhir",
            episode["id"],
        )
