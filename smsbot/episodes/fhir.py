"""An episode as a FHIR R4B (4.3.0) Bundle, built with the ``fhir.resources`` models.

R4B is the release of the R4 family the maintained library ships (its ``R4B`` package);
the resources used here (Patient, EpisodeOfCare, Observation, Flag, Communication, Bundle)
read the same in R4 4.0.1. The Patient is the baby, carrying only the identifier the
clinic gave (its external reference): no name, birth date or phone leaves with it.
Resources are identified by UUIDs derived from the clinic and the row, so exporting the
same episode twice gives the same ids.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.communication import Communication, CommunicationPayload
from fhir.resources.R4B.episodeofcare import EpisodeOfCare
from fhir.resources.R4B.extension import Extension
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.observation import Observation, ObservationComponent
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.period import Period
from fhir.resources.R4B.quantity import Quantity
from fhir.resources.R4B.reference import Reference

from smsbot.episodes.story import Report, Story
from smsbot.models import Alert, Clinic, Message
from smsbot.triage import RuleSet, assess

FHIR_VERSION = "4.3.0"  # R4B
SYSTEM = "https://smsbot.invalid/fhir"  # smsbot's own code systems, under a name that is never a host
LEVELS = f"{SYSTEM}/CodeSystem/triage-level"
RULES = f"{SYSTEM}/CodeSystem/triage-rule"
ALERT_REASONS = f"{SYSTEM}/CodeSystem/alert-reason"
MESSAGE_KINDS = f"{SYSTEM}/CodeSystem/message-kind"
ACKNOWLEDGED_BY = f"{SYSTEM}/StructureDefinition/acknowledged-by"
ACKNOWLEDGEMENT_NOTE = f"{SYSTEM}/StructureDefinition/acknowledgement-note"
LOINC, UCUM = "http://loinc.org", "http://unitsofmeasure.org"
BODY_TEMPERATURE = Coding(system=LOINC, code="8310-5", display="Body temperature")
NAMESPACE = uuid.UUID("0b9c3f0e-6a43-5b53-9a5e-7c1f3f7e2a10")
UNDELIVERED = ("failed", "undelivered")


def _moment(value: datetime) -> datetime:
    """A stored naive-UTC time as FHIR wants it: with its zone, to the second."""
    return value.replace(tzinfo=UTC, microsecond=0)


def bundle_of(story: Story, clinic: Clinic, rules: RuleSet, *, now: datetime) -> Bundle:
    """The episode as a collection Bundle: Patient, EpisodeOfCare, an Observation per triaged
    text, a Flag per alert and a Communication per message."""

    def url(kind: str, row_id: int) -> str:
        return f"urn:uuid:{uuid.uuid5(NAMESPACE, f'{clinic.slug}/{kind}/{row_id}')}"

    episode, enrollment = story.episode, story.episode.enrollment
    patient_url = url("patient", enrollment.id)
    patient = Reference(reference=patient_url)
    clinic_ref = Reference(display=clinic.name)
    identifiers = []
    if enrollment.external_ref:
        system = f"{SYSTEM}/clinic/{clinic.slug}/external-ref"
        identifiers.append(Identifier(system=system, value=enrollment.external_ref))
    resources: list[tuple[str, object]] = [
        (patient_url, Patient(identifier=identifiers or None)),
        (
            url("episode", episode.id),
            EpisodeOfCare(
                status="active" if episode.closed_at is None else "finished",
                type=[CodeableConcept(text="Follow-up of a young baby's tremors reported by text")],
                patient=patient,
                managingOrganization=clinic_ref,
                period=Period(
                    start=_moment(episode.opened_at),
                    end=_moment(episode.closed_at) if episode.closed_at else None,
                ),
            ),
        ),
    ]
    for report in story.reports:
        resources.append((url("observation", report.message.id), _observation(report, patient, rules)))
    for alert in story.alerts:
        resources.append((url("flag", alert.id), _flag(alert, patient)))
    messages = sorted([r.message for r in story.reports] + story.replies + story.staff_messages, key=_order)
    in_bundle = {message.id for message in messages}
    for message in messages:
        reply_to = message.reply_to_id if message.reply_to_id in in_bundle else None
        in_response_to = [Reference(reference=url("communication", reply_to))] if reply_to else None
        communication = _communication(message, patient, clinic_ref, in_response_to)
        resources.append((url("communication", message.id), communication))
    return Bundle(
        id=_id(url("bundle", episode.id)),
        type="collection",
        timestamp=_moment(now),
        entry=[
            BundleEntry(fullUrl=full_url, resource=_with_id(res, full_url)) for full_url, res in resources
        ],
    )


def _order(message: Message) -> tuple[datetime, int]:
    return message.created_at, message.id


def _id(full_url: str) -> str:
    return full_url.removeprefix("urn:uuid:")


def _with_id(resource: object, full_url: str) -> object:
    resource.id = _id(full_url)  # type: ignore[attr-defined]
    return resource


def _observation(report: Report, patient: Reference, rules: RuleSet) -> Observation:
    """The triage of one text: its level, each flag with its reason, the temperature read."""
    components = [
        ObservationComponent(
            code=CodeableConcept(coding=[Coding(system=RULES, code=flag.rule_id)], text=flag.rule_id),
            valueString=flag.reason,
        )
        for flag in report.flags
    ]
    message = report.message
    if message.body:  # the temperature is read again from the text (bodies purged by retention: none)
        temperature = assess(message.body, lang=message.lang, rules=rules, classifier=None).temperature_f
        if temperature is not None:
            components.append(
                ObservationComponent(
                    code=CodeableConcept(coding=[BODY_TEMPERATURE], text="Temperature the parent reported"),
                    valueQuantity=Quantity(value=temperature, unit="°F", system=UCUM, code="[degF]"),
                )
            )
    versions = (
        f"rules {message.rules_version or 'unknown'}; classifier {message.model_version or 'not asked'}"
    )
    return Observation(
        status="final",
        code=CodeableConcept(text="smsbot triage level of a parent's text (not a diagnosis)"),
        subject=patient,
        effectiveDateTime=_moment(report.at),
        valueCodeableConcept=CodeableConcept(
            coding=[Coding(system=LEVELS, code=report.level)], text=report.level
        ),
        method=CodeableConcept(text=versions),
        component=components or None,
    )


def _flag(alert: Alert, patient: Reference) -> Flag:
    """An alert raised to the clinic; acknowledged ones are inactive, with who and the note."""
    extensions = []
    if alert.acknowledged_by:
        extensions.append(Extension(url=ACKNOWLEDGED_BY, valueString=alert.acknowledged_by))
    if alert.ack_note:
        extensions.append(Extension(url=ACKNOWLEDGEMENT_NOTE, valueString=alert.ack_note))
    return Flag(
        extension=extensions or None,
        status="active" if alert.acknowledged_at is None else "inactive",
        code=CodeableConcept(
            coding=[Coding(system=ALERT_REASONS, code=alert.reason)],
            text=f"{alert.level} alert: {alert.reason}",
        ),
        subject=patient,
        period=Period(
            start=_moment(alert.created_at),
            end=_moment(alert.acknowledged_at) if alert.acknowledged_at else None,
        ),
    )


def _communication(
    message: Message, patient: Reference, clinic: Reference, in_response_to: list[Reference] | None
) -> Communication:
    family = Reference(display="the baby's parent or caregiver")
    inbound = message.direction == "in"
    return Communication(
        status="not-done" if message.status in UNDELIVERED else "completed",
        category=[
            CodeableConcept(coding=[Coding(system=MESSAGE_KINDS, code=message.kind)], text=message.kind)
        ],
        subject=patient,
        sent=_moment(message.created_at),
        sender=family if inbound else clinic,
        recipient=[clinic if inbound else family],
        inResponseTo=in_response_to,
        payload=[CommunicationPayload(contentString=message.body)] if message.body else None,
    )
