"""The clinic REST API (``/api/v1``), authenticated by a clinic API token.

Tenant isolation is structural: a "family" here is the clinic's Enrollment, and every
lookup goes through the token's clinic, so another clinic's ids are simply not found (404).
Views are thin: validation, idempotency and consent live in ``smsbot.clinics``; what each
view takes and answers is its ``@operation`` over the shapes of ``shapes.py``, which the
OpenAPI document is generated from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any, get_args

from flask import Blueprint, Response, current_app, g, jsonify, request
from pydantic import BaseModel
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from smsbot import alerts, audit, clinics, episodes
from smsbot.clinics import inbox, queries
from smsbot.conversation import news
from smsbot.db import clashing_table, request_session
from smsbot.episodes import fhir
from smsbot.families import lock_family
from smsbot.models import Alert, ApiToken, CheckIn, Clinic, Enrollment, Message, utcnow
from smsbot.triage import load_rules
from smsbot.vocabulary import MAX_ID, NOTE_MAX_CHARS
from smsbot.web import openapi, shapes
from smsbot.web.errors import error_response
from smsbot.web.inputs import whole_number
from smsbot.web.openapi import operation

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api/v1")

# Given when enrolling, fixed after: phone, channel and programme.
CHANGEABLE = shapes.fields_of(shapes.FamilyDetails)
READ_ONLY_FIELDS = tuple(name for name in shapes.fields_of(shapes.FamilyCreate) if name not in CHANGEABLE)
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)  # last_used_at: useful to staff, not worth a write per call
FAMILY = {200: ("The family.", shapes.Family)}


class ApiError(Exception):
    """An error answered in the one JSON error shape."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


@bp.errorhandler(ApiError)
def _api_error(error: ApiError) -> tuple[Response, int]:
    response, status = error_response(error.status, error.code, error.message, error.field)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="smsbot"'
    return response, status


@bp.errorhandler(clinics.InvalidFieldsError)
def _invalid_fields(error: clinics.InvalidFieldsError) -> tuple[Response, int]:
    first = error.errors[0]  # the shape has one field; the message lists the rest
    return error_response(422, first.code, str(error), first.field)


@bp.errorhandler(IntegrityError)
def _integrity_error(error: IntegrityError) -> tuple[Response, int]:
    request_session().rollback()
    table = clashing_table(error)
    if table == Enrollment.__tablename__:
        # Two requests enrolling the same new phone at once: one wins, the other may retry.
        return error_response(409, "concurrent_update", "the family was changed at the same time; retry")
    # Anything else is our fault, not the client's: say which key clashed (never the values).
    log.error("write refused by the database: %s on %s", type(error.orig).__name__, table or "-")
    return error_response(
        500,
        "duplicate_key" if table else "integrity_error",
        # Only the clashing write is undone: an enrollment is recorded before its consent
        # text goes out, so it stands when recording the send fails.
        f"a write clashed with stored data ({table or 'constraint'}); that write was undone, "
        "what was recorded before it stands",
    )


@bp.errorhandler(clinics.ConflictError)
def _conflict(error: clinics.ConflictError) -> tuple[Response, int]:
    return error_response(409, error.code, str(error), error.field)


def current_token() -> ApiToken | None:
    """The live token in ``Authorization: Bearer …``, looked up once per request.

    The rate limiter keys on it too, so this runs before the view's own check.
    """
    if "api_token" not in g:
        scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
        token = None
        if scheme.lower() == "bearer" and raw.strip():
            token = clinics.authenticate_token(request_session(), raw.strip())
        g.api_token = token
    return g.api_token


def _token() -> ApiToken:
    token = current_token()
    if token is None:
        raise ApiError(
            401, "unauthorized", "send a valid clinic API token as 'Authorization: Bearer <token>'"
        )
    return token


@bp.before_request
def _require_token() -> None:
    spec = openapi.operation_of(current_app.view_functions.get(request.endpoint or ""))
    if spec is not None and spec.public:
        return
    token = _token()
    # A typo such as ?stauts=open must not silently return every alert.
    allowed = shapes.fields_of(spec.query) if spec is not None and spec.query is not None else ()
    unknown = sorted(set(request.args) - set(allowed))
    if unknown:
        raise ApiError(422, "unknown_parameter", f"unknown query parameter {unknown[0]!r}", unknown[0])
    now = utcnow()
    if token.last_used_at is None or token.last_used_at < now - TOKEN_TOUCH_INTERVAL:
        token.last_used_at = now
        request_session().commit()


@bp.after_request
def _audit_read(response: Response) -> Response:
    """One audit line for each successful read with a token: an export, or an API read."""
    token = g.get("api_token")
    if request.method == "GET" and token is not None and response.status_code == 200:
        session = request_session()
        audit.record(
            session,
            g.get("audit_action", audit.API_READ),
            actor=_actor(),
            now=utcnow(),
            clinic_id=token.clinic_id,
            family_id=g.get("audit_family_id"),
            endpoint=(request.endpoint or "").partition(".")[2],
            token=token.prefix,
            **g.get("audit_detail", {}),
        )
        session.commit()
    return response


def _clinic_id() -> int:
    return _token().clinic_id


def _actor() -> str:
    """Who did it, for the clinic's record: the token's name (or prefix)."""
    token = _token()
    return f"api:{token.name or token.prefix}"


def _reject_unknown(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(422, "unknown_field", f"unknown field {unknown[0]!r}", unknown[0])


def _json_body(*, optional: bool = False) -> dict[str, Any]:
    if optional and not request.get_data():
        return {}
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # e.g. 100,000 nested "[": deeper than any body we take
        raise ApiError(400, "invalid_json", "the request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the request body must be a JSON object")
    return body


# --- pagination --------------------------------------------------------------------------


def _whole_number(raw: str, maximum: int) -> int | None:
    """``raw`` as 1..maximum, else None."""
    value = whole_number(raw, maximum)
    return value if value else None


def _page_args() -> tuple[int, int | None]:
    limit = _whole_number(request.args.get("limit", str(shapes.DEFAULT_LIMIT)), shapes.MAX_LIMIT)
    if limit is None:
        raise ApiError(422, "invalid_limit", f"limit must be a number from 1 to {shapes.MAX_LIMIT}", "limit")
    raw_cursor = request.args.get("cursor")
    cursor = None if raw_cursor is None else _whole_number(raw_cursor, MAX_ID)
    if raw_cursor is not None and cursor is None:
        raise ApiError(
            422, "invalid_cursor", "cursor must be a next_cursor value from a previous page", "cursor"
        )
    return limit, cursor


def _page(
    session: Session,
    query: Select[Any],
    id_column: Any,
    page: type[shapes.Page],
    render: Callable[[list[Any]], list[BaseModel]],
) -> Response:
    """Newest first, keyset-paginated by id: stable while rows are being added."""
    limit, cursor = _page_args()
    if cursor is not None:
        query = query.where(id_column < cursor)
    rows = list(session.scalars(query.order_by(id_column.desc()).limit(limit + 1)).all())
    items = rows[:limit]
    next_cursor = str(items[-1].id) if len(rows) > limit else None
    return _answer(page(data=render(items), next_cursor=next_cursor))


def _each(render: Callable[[Any], BaseModel]) -> Callable[[list[Any]], list[BaseModel]]:
    return lambda rows: [render(row) for row in rows]


def _answer(shape: BaseModel, status: int = 200) -> Response:
    response = jsonify(shape.model_dump(mode="json"))
    response.status_code = status
    return response


# --- families ----------------------------------------------------------------------------


def _enrollment_or_404(session: Session, family_id: int, *, lock: bool = False) -> Enrollment:
    """This clinic's enrollment ``family_id``; with ``lock``, its family's row locked first
    (``families.lock_family``) and the enrollment read again, as a change must."""
    enrollment = None
    if family_id <= MAX_ID:
        enrollment = session.scalar(
            select(Enrollment).where(Enrollment.id == family_id, Enrollment.clinic_id == _clinic_id())
        )
    if enrollment is not None and lock:
        if lock_family(session, enrollment.family_id) is None:
            enrollment = None  # erased while this request waited for the lock
        else:
            session.refresh(enrollment)
    if enrollment is None:
        raise ApiError(404, "not_found", f"no family {family_id} at this clinic")
    g.audit_family_id = enrollment.family_id  # what a read of this request is about
    return enrollment


def _enroll(session: Session, fields: dict[str, Any]) -> tuple[Enrollment, bool]:
    clinic = session.get(Clinic, _clinic_id())
    _reject_unknown(fields, shapes.fields_of(shapes.FamilyCreate))
    enrollment, created = clinics.enroll_family(
        session,
        clinic,
        **{"phone": None, "programme": None, **fields},  # absent ones are reported as missing
        now=utcnow(),
        settings=current_app.extensions["smsbot.settings"],
        transport=current_app.extensions["smsbot.transport"],
    )
    session.commit()
    return enrollment, created


@bp.get("/openapi.json")
@operation(responses={200: ("OpenAPI 3 document.", None)}, public=True)
def document() -> Response:
    """This document (public: it holds no data)"""
    return jsonify(openapi.document(current_app))


@bp.get("/families")
@operation(responses={200: ("A page of families.", shapes.FamilyPage)}, query=shapes.FamilyQuery)
def list_families() -> Response:
    """List families enrolled at this clinic, newest first"""
    session = request_session()
    query = select(Enrollment).where(Enrollment.clinic_id == _clinic_id())
    status = request.args.get("status")
    if status is not None:
        if status not in get_args(shapes.EnrollmentStatus):
            raise ApiError(
                422, "invalid_status", "status must be awaiting_consent, active or ended", "status"
            )
        query = query.where(Enrollment.status == status)
    return _page(session, query, Enrollment.id, shapes.FamilyPage, _each(shapes.Family.of))


@bp.post("/families")
@operation(
    responses={201: ("Enrolled.", shapes.Family), 200: ("Already enrolled: updated.", shapes.Family)},
    body=shapes.FamilyCreate,
    errors=(400, 409),
)
def create_family() -> Response:
    """Enroll a family (records it, then sends one consent text)

    The enrollment is recorded before the consent text goes out; ``consent`` says what became
    of the text. Idempotent per phone at this clinic: enrolling it again updates its details
    and sends no second text (only a failed one is sent again).
    """
    enrollment, created = _enroll(request_session(), _json_body())
    return _answer(shapes.Family.of(enrollment), 201 if created else 200)


@bp.get("/families/<int:family_id>")
@operation(responses=FAMILY, errors=(404,))
def get_family(family_id: int) -> Response:
    """One family"""
    return _answer(shapes.Family.of(_enrollment_or_404(request_session(), family_id)))


@bp.patch("/families/<int:family_id>")
@operation(responses=FAMILY, body=shapes.FamilyDetails, errors=(400, 404))
def update_family(family_id: int) -> Response:
    """Update a family's details (phone, channel and programme are fixed)"""
    session = request_session()
    enrollment = _enrollment_or_404(session, family_id, lock=True)
    body = _json_body()
    for field in READ_ONLY_FIELDS:
        if field in body:
            raise ApiError(422, "read_only", f"{field} cannot be changed here", field)
    settings = current_app.extensions["smsbot.settings"]
    values = clinics.clean_family_fields(body, settings, today=utcnow().date())
    clinics.update_family(session, enrollment, values)
    session.commit()
    return _answer(shapes.Family.of(enrollment))


@bp.post("/families/<int:family_id>/enrollment")
@operation(responses=FAMILY, body=shapes.EnrollmentRequest, errors=(400, 404, 409))
def enroll(family_id: int) -> Response:
    """Enroll again, or in another programme; re-opening asks consent again"""
    session = request_session()
    family = _enrollment_or_404(session, family_id, lock=True).family
    body = _json_body()
    _reject_unknown(body, shapes.fields_of(shapes.EnrollmentRequest))
    enrollment, _ = _enroll(session, {"phone": family.phone, "channel": family.channel, **body})
    return _answer(shapes.Family.of(enrollment))


@bp.delete("/families/<int:family_id>/enrollment")
@operation(responses=FAMILY, errors=(404,))
def unenroll(family_id: int) -> Response:
    """Unenroll: pending check-ins are cancelled (idempotent)"""
    session = request_session()
    enrollment = _enrollment_or_404(session, family_id, lock=True)
    clinics.unenroll(session, enrollment, now=utcnow())
    session.commit()
    return _answer(shapes.Family.of(enrollment))


@bp.post("/families/<int:family_id>/resume")
@operation(responses=FAMILY, errors=(404,))
def resume_followup(family_id: int) -> Response:
    """Resume automated messages held by sensitive news (idempotent)

    For a baby home from hospital, or a loss reported in error: consented programmes start
    again from now.
    """
    session = request_session()
    enrollment = _enrollment_or_404(session, family_id, lock=True)
    settings = current_app.extensions["smsbot.settings"]
    if news.resume(session, settings, enrollment.family, now=utcnow(), by=_actor()):
        session.commit()
    return _answer(shapes.Family.of(enrollment))


@bp.get("/families/<int:family_id>/messages")
@operation(
    responses={200: ("A page of messages.", shapes.MessagePage)}, query=shapes.PageQuery, errors=(404,)
)
def list_messages(family_id: int) -> Response:
    """Messages since this clinic enrolled the family, newest first"""
    session = request_session()
    enrollment = _enrollment_or_404(session, family_id)
    query = clinics.family_messages(enrollment)
    return _page(session, query, Message.id, shapes.MessagePage, _each(shapes.Message.of))


@bp.post("/families/<int:family_id>/messages")
@operation(
    responses={201: ("Sent (or refused by the provider: status failed).", shapes.StaffMessageSent)},
    body=shapes.StaffMessageCreate,
    errors=(400, 404, 409),
)
def send_message(family_id: int) -> Response:
    """Text the family, signed with the clinic's name

    Only to a family that agreed (YES) to this clinic's texts and has not texted STOP (409
    otherwise). The parent's answer lands in the same thread. With ``acknowledge``, the
    family's open alerts are acknowledged once the text is sent.
    """
    session = request_session()
    enrollment = _enrollment_or_404(session, family_id)
    body = _json_body()
    _reject_unknown(body, shapes.fields_of(shapes.StaffMessageCreate))
    acknowledge = body.get("acknowledge", False)
    if not isinstance(acknowledge, bool):
        raise ApiError(422, "invalid_acknowledge", "acknowledge must be true or false", "acknowledge")
    template = body.get("template")
    if template is not None and not isinstance(template, str):
        raise ApiError(422, "unknown_template", "template must be a quick reply id", "template")
    sent = inbox.send_staff_text(
        session,
        current_app.extensions["smsbot.settings"],
        current_app.extensions["smsbot.transport"],
        enrollment,
        text=body.get("text"),
        template=template,
        sender=_actor(),
        acknowledge=acknowledge,
        now=utcnow(),
    )
    shape = shapes.StaffMessageSent(
        message=shapes.Message.of(sent.message), error=sent.error, acknowledged_alerts=sent.acknowledged
    )
    return _answer(shape, 201)


@bp.get("/families/<int:family_id>/checkins")
@operation(
    responses={200: ("A page of check-ins.", shapes.CheckInPage)}, query=shapes.PageQuery, errors=(404,)
)
def list_checkins(family_id: int) -> Response:
    """The family's check-ins for this clinic, newest first"""
    session = request_session()
    enrollment = _enrollment_or_404(session, family_id)
    query = clinics.family_checkins(enrollment)
    return _page(session, query, CheckIn.id, shapes.CheckInPage, _each(shapes.CheckIn.of))


@bp.get("/families/<int:family_id>/export")
@operation(responses={200: ("The family's data.", shapes.Export)}, errors=(404,))
def export_family(family_id: int) -> Response:
    """Everything this clinic holds about the family (privacy export)"""
    session = request_session()
    enrollment = _enrollment_or_404(session, family_id)
    g.audit_action, g.audit_detail = audit.EXPORT, {"format": "json"}
    alerts = session.scalars(
        select(Alert)
        .where(Alert.clinic_id == enrollment.clinic_id, Alert.family_id == enrollment.family_id)
        .order_by(Alert.id)
    ).all()
    return _answer(
        shapes.Export(
            family=shapes.Family.of(enrollment),
            # In the order they were stored: without ORDER BY, PostgreSQL returns rows as laid out.
            messages=[
                shapes.Message.of(m)
                for m in session.scalars(clinics.family_messages(enrollment).order_by(Message.id))
            ],
            checkins=[
                shapes.CheckIn.of(c)
                for c in session.scalars(clinics.family_checkins(enrollment).order_by(CheckIn.id))
            ],
            alerts=[shapes.Alert.of(alert, enrollment.id) for alert in alerts],
        )
    )


@bp.delete("/families/<int:family_id>")
@operation(responses={200: ("Erased: rows removed per table.", shapes.Erased)}, errors=(404, 409))
def erase_family(family_id: int) -> Response:
    """Erase the family's data for good (409 while another clinic follows them)"""
    session = request_session()
    enrollment = _enrollment_or_404(session, family_id, lock=True)
    counts = queries.erase_family(session, enrollment, now=utcnow(), by=_actor())
    session.commit()
    return _answer(shapes.Erased(erased=counts))


# --- episodes ----------------------------------------------------------------------------


def _stories(session: Session, enrollment: Enrollment) -> list[episodes.Story]:
    """The enrollment's episodes, brought up to date, with what happened in each."""
    rules = load_rules(current_app.extensions["smsbot.settings"].rules_path)
    stories = episodes.stories_of(session, enrollment, rules, now=utcnow())
    session.commit()
    return stories


def _story_or_404(session: Session, family_id: int, episode_id: int) -> tuple[Enrollment, episodes.Story]:
    enrollment = _enrollment_or_404(session, family_id)
    for story in _stories(session, enrollment):
        if story.episode.id == episode_id:
            return enrollment, story
    raise ApiError(404, "not_found", f"no episode {episode_id} for family {family_id} at this clinic")


@bp.get("/families/<int:family_id>/episodes")
@operation(responses={200: ("The family's episodes at this clinic.", shapes.EpisodeList)}, errors=(404,))
def list_episodes(family_id: int) -> Response:
    """The family's episodes at this clinic, oldest first"""
    session = request_session()
    stories = _stories(session, _enrollment_or_404(session, family_id))
    return _answer(shapes.EpisodeList(data=[shapes.Episode.of(story) for story in stories]))


@bp.get("/families/<int:family_id>/episodes/<int:episode_id>")
@operation(responses={200: ("The episode.", shapes.EpisodeDetail)}, errors=(404,))
def get_episode(family_id: int, episode_id: int) -> Response:
    """One episode: levels over time, red flags and why, replies, answers, alerts, timeline"""
    _, story = _story_or_404(request_session(), family_id, episode_id)
    return _answer(shapes.EpisodeDetail.of(story))


@bp.get("/families/<int:family_id>/episodes/<int:episode_id>/fhir")
@operation(
    responses={200: (f"A FHIR {fhir.FHIR_VERSION} (R4B) Bundle of type collection.", None)}, errors=(404,)
)
def export_episode_fhir(family_id: int, episode_id: int) -> Response:
    """The episode as a FHIR R4B Bundle (export)

    Patient (only the identifier the clinic gave: its external_ref), EpisodeOfCare, an
    Observation per triaged text, a Flag per alert and a Communication per message.
    """
    session = request_session()
    enrollment, story = _story_or_404(session, family_id, episode_id)
    g.audit_action, g.audit_detail = audit.EXPORT, {"format": "fhir", "episode_id": episode_id}
    rules = load_rules(current_app.extensions["smsbot.settings"].rules_path)
    bundle = fhir.bundle_of(story, enrollment.clinic, rules, now=utcnow())
    return current_app.response_class(bundle.model_dump_json(), mimetype="application/json")


# --- alerts ------------------------------------------------------------------------------


def _alert_shapes(session: Session, alerts: list[Alert]) -> list[shapes.Alert]:
    """Alerts with the clinic's id for each family (its enrollment), in one query."""
    ids = dict(
        session.execute(
            select(Enrollment.family_id, Enrollment.id).where(
                Enrollment.clinic_id == _clinic_id(), Enrollment.family_id.in_({a.family_id for a in alerts})
            )
        ).all()
    )
    return [shapes.Alert.of(alert, ids.get(alert.family_id)) for alert in alerts]


@bp.get("/alerts")
@operation(responses={200: ("A page of alerts.", shapes.AlertPage)}, query=shapes.AlertQuery)
def list_alerts() -> Response:
    """Alerts for this clinic, newest first"""
    session = request_session()
    query = select(Alert).where(Alert.clinic_id == _clinic_id())
    status = request.args.get("status")
    if status == "open":
        query = query.where(Alert.acknowledged_at.is_(None))
    elif status == "acknowledged":
        query = query.where(Alert.acknowledged_at.is_not(None))
    elif status is not None:
        raise ApiError(422, "invalid_status", "status must be open or acknowledged", "status")
    return _page(session, query, Alert.id, shapes.AlertPage, lambda alerts: _alert_shapes(session, alerts))


@bp.post("/alerts/<int:alert_id>/acknowledge")
@operation(
    responses={200: ("The acknowledged alert.", shapes.Alert)},
    body=shapes.Acknowledge,
    body_required=False,
    errors=(400, 404, 409),
)
def acknowledge_alert(alert_id: int) -> Response:
    """Acknowledge an alert, with an optional note

    Of two acknowledgements at once, one wins; the other, like any later one, is a 409.
    """
    session = request_session()
    row = queries.find_alert_row(session, _clinic_id(), alert_id) if alert_id <= MAX_ID else None
    if row is None:
        raise ApiError(404, "not_found", f"no alert {alert_id} at this clinic")
    body = _json_body(optional=True)
    _reject_unknown(body, shapes.fields_of(shapes.Acknowledge))
    note = body.get("note")
    if note is not None and (
        not isinstance(note, str) or len(note) > NOTE_MAX_CHARS or not clinics.is_storable_text(note)
    ):
        raise ApiError(
            422, "invalid_note", f"note must be text of at most {NOTE_MAX_CHARS} characters", "note"
        )
    if not alerts.acknowledge(session, row.alert, by=_actor(), note=note, now=utcnow()):
        raise ApiError(409, "already_acknowledged", "this alert was already acknowledged")
    return _answer(shapes.Alert.of(row.alert, row.enrollment.id if row.enrollment else None))
