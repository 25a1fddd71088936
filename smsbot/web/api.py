"""The clinic REST API (``/api/v1``), authenticated by a clinic API token.

Tenant isolation is structural: a "family" here is the clinic's Enrollment, and every
lookup goes through the token's clinic, so another clinic's ids are simply not found (404).
Views are thin: validation, idempotency and consent live in ``smsbot.clinics``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from smsbot import clinics
from smsbot.clinics import queries
from smsbot.conversation import news
from smsbot.db import request_session
from smsbot.models import Alert, ApiToken, CheckIn, Clinic, Enrollment, Message, utcnow
from smsbot.vocabulary import MAX_ID, NOTE_MAX_CHARS
from smsbot.web.errors import error_response
from smsbot.web.openapi import OPENAPI

bp = Blueprint("api", __name__, url_prefix="/api/v1")

DEFAULT_LIMIT, MAX_LIMIT = 50, 100
READ_ONLY_FIELDS = ("phone", "channel", "programme")
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)  # last_used_at: useful to staff, not worth a write per call
PUBLIC_ENDPOINTS = ("api.openapi",)
PAGE_PARAMETERS = {"limit", "cursor"}
QUERY_PARAMETERS = {
    "api.list_families": {*PAGE_PARAMETERS, "status"},
    "api.list_alerts": {*PAGE_PARAMETERS, "status"},
    "api.list_messages": PAGE_PARAMETERS,
    "api.list_checkins": PAGE_PARAMETERS,
}


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
def _concurrent_write(_error: IntegrityError) -> tuple[Response, int]:
    # Two requests enrolling the same new phone at once: one wins, the other may retry.
    request_session().rollback()
    return error_response(409, "concurrent_update", "the family was changed at the same time; retry")


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
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    token = _token()
    # A typo such as ?stauts=open must not silently return every alert.
    unknown = sorted(set(request.args) - QUERY_PARAMETERS.get(request.endpoint or "", set()))
    if unknown:
        raise ApiError(422, "unknown_parameter", f"unknown query parameter {unknown[0]!r}", unknown[0])
    now = utcnow()
    if token.last_used_at is None or token.last_used_at < now - TOKEN_TOUCH_INTERVAL:
        token.last_used_at = now
        request_session().commit()


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
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the request body must be a JSON object")
    return body


def _ts(moment: datetime | None) -> str | None:
    """Naive UTC from the database → RFC 3339 with an explicit Z."""
    return None if moment is None else moment.isoformat(timespec="seconds") + "Z"


def _day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


# --- pagination --------------------------------------------------------------------------


def _whole_number(raw: str, maximum: int) -> int | None:
    """``raw`` as 1..maximum, else None.

    ``str.isdigit`` alone would let "²" or a 5,000-digit string through to ``int()``, which
    raises on both (a 500).
    """
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(maximum)):
        return None
    value = int(raw)
    return value if 1 <= value <= maximum else None


def _page_args() -> tuple[int, int | None]:
    limit = _whole_number(request.args.get("limit", str(DEFAULT_LIMIT)), MAX_LIMIT)
    if limit is None:
        raise ApiError(422, "invalid_limit", f"limit must be a number from 1 to {MAX_LIMIT}", "limit")
    raw_cursor = request.args.get("cursor")
    cursor = None if raw_cursor is None else _whole_number(raw_cursor, MAX_ID)
    if raw_cursor is not None and cursor is None:
        raise ApiError(
            422, "invalid_cursor", "cursor must be a next_cursor value from a previous page", "cursor"
        )
    return limit, cursor


def _page(
    session: Session, query: Select[Any], id_column: Any, render: Callable[[list[Any]], list[dict[str, Any]]]
) -> Response:
    """Newest first, keyset-paginated by id: stable while rows are being added."""
    limit, cursor = _page_args()
    if cursor is not None:
        query = query.where(id_column < cursor)
    rows = list(session.scalars(query.order_by(id_column.desc()).limit(limit + 1)).all())
    items = rows[:limit]
    next_cursor = str(items[-1].id) if len(rows) > limit else None
    return jsonify({"data": render(items), "next_cursor": next_cursor})


def _each(render: Callable[[Any], dict[str, Any]]) -> Callable[[list[Any]], list[dict[str, Any]]]:
    return lambda rows: [render(row) for row in rows]


# --- families ----------------------------------------------------------------------------


def family_json(enrollment: Enrollment) -> dict[str, Any]:
    """The family as this clinic knows it: its own details, never another clinic's."""
    family = enrollment.family
    return {
        "id": enrollment.id,
        "phone": family.phone,
        "channel": family.channel,
        "language": enrollment.language,
        "timezone": enrollment.timezone,
        "baby_name": enrollment.baby_name,
        "baby_birth_date": _day(enrollment.baby_birth_date),
        "external_ref": enrollment.external_ref,
        "programme": enrollment.programme,
        "status": enrollment.status,
        "consent": clinics.consent_state(enrollment),
        "opted_out": family.opted_out,
        "followup_hold": family.followup_hold,
        "followup_hold_since": _ts(family.followup_hold_since),
        "enrolled_at": _ts(enrollment.enrolled_at),
        "consented_at": _ts(enrollment.consented_at),
        "ended_at": _ts(enrollment.ended_at),
    }


def _enrollment_or_404(session: Session, family_id: int) -> Enrollment:
    enrollment = None
    if family_id <= MAX_ID:
        enrollment = session.scalar(
            select(Enrollment).where(Enrollment.id == family_id, Enrollment.clinic_id == _clinic_id())
        )
    if enrollment is None:
        raise ApiError(404, "not_found", f"no family {family_id} at this clinic")
    return enrollment


def _enroll(session: Session, fields: dict[str, Any]) -> tuple[Enrollment, bool]:
    clinic = session.get(Clinic, _clinic_id())
    _reject_unknown(fields, clinics.FAMILY_FIELDS)
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
def openapi() -> Response:
    """The OpenAPI 3 description of this API (public: it holds no data)."""
    return jsonify(OPENAPI)


@bp.get("/families")
def list_families() -> Response:
    session = request_session()
    query = select(Enrollment).where(Enrollment.clinic_id == _clinic_id())
    status = request.args.get("status")
    if status is not None:
        if status not in ("awaiting_consent", "active", "ended"):
            raise ApiError(
                422, "invalid_status", "status must be awaiting_consent, active or ended", "status"
            )
        query = query.where(Enrollment.status == status)
    return _page(session, query, Enrollment.id, _each(family_json))


@bp.post("/families")
def create_family() -> tuple[Response, int]:
    """Enroll a family (idempotent per phone at this clinic); sends the consent text once."""
    enrollment, created = _enroll(request_session(), _json_body())
    return jsonify(family_json(enrollment)), 201 if created else 200


@bp.get("/families/<int:family_id>")
def get_family(family_id: int) -> Response:
    return jsonify(family_json(_enrollment_or_404(request_session(), family_id)))


@bp.patch("/families/<int:family_id>")
def update_family(family_id: int) -> Response:
    session = request_session()
    enrollment = _enrollment_or_404(session, family_id)
    body = _json_body()
    for field in READ_ONLY_FIELDS:
        if field in body:
            raise ApiError(422, "read_only", f"{field} cannot be changed here", field)
    settings = current_app.extensions["smsbot.settings"]
    values = clinics.clean_family_fields(body, settings, today=utcnow().date())
    clinics.update_family(session, enrollment, values)
    session.commit()
    return jsonify(family_json(enrollment))


@bp.post("/families/<int:family_id>/enrollment")
def enroll(family_id: int) -> Response:
    """(Re-)enroll a known family in a programme; a re-opened enrollment asks consent again."""
    session = request_session()
    family = _enrollment_or_404(session, family_id).family
    body = _json_body()
    _reject_unknown(body, ("programme",))
    enrollment, _ = _enroll(session, {"phone": family.phone, "channel": family.channel, **body})
    return jsonify(family_json(enrollment))


@bp.delete("/families/<int:family_id>/enrollment")
def unenroll(family_id: int) -> Response:
    """End follow-up: pending check-ins are cancelled; idempotent."""
    session = request_session()
    enrollment = _enrollment_or_404(session, family_id)
    clinics.unenroll(session, enrollment, now=utcnow())
    session.commit()
    return jsonify(family_json(enrollment))


@bp.post("/families/<int:family_id>/resume")
def resume_followup(family_id: int) -> Response:
    """Resume automated messages held by sensitive news (in hospital, or a loss reported in
    error): consented programmes start again from now; idempotent."""
    session = request_session()
    enrollment = _enrollment_or_404(session, family_id)
    settings = current_app.extensions["smsbot.settings"]
    if news.resume(session, settings, enrollment.family, now=utcnow(), by=_actor()):
        session.commit()
    return jsonify(family_json(enrollment))


def message_json(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "direction": message.direction,
        "kind": message.kind,
        "body": message.body,
        "status": message.status,
        "level": message.level,
        "created_at": _ts(message.created_at),
    }


def checkin_json(checkin: CheckIn) -> dict[str, Any]:
    return {
        "id": checkin.id,
        "programme": checkin.programme,
        "step": checkin.step,
        "status": checkin.status,
        "due_at": _ts(checkin.due_at),
        "sent_at": _ts(checkin.sent_at),
        "answered_at": _ts(checkin.answered_at),
        "outcome": checkin.outcome,
    }


@bp.get("/families/<int:family_id>/messages")
def list_messages(family_id: int) -> Response:
    session = request_session()
    enrollment = _enrollment_or_404(session, family_id)
    return _page(session, clinics.family_messages(enrollment), Message.id, _each(message_json))


@bp.get("/families/<int:family_id>/checkins")
def list_checkins(family_id: int) -> Response:
    session = request_session()
    enrollment = _enrollment_or_404(session, family_id)
    return _page(session, clinics.family_checkins(enrollment), CheckIn.id, _each(checkin_json))


@bp.get("/families/<int:family_id>/export")
def export_family(family_id: int) -> Response:
    """Everything this clinic holds about the family, in one document (a privacy request)."""
    session = request_session()
    enrollment = _enrollment_or_404(session, family_id)
    alerts = session.scalars(
        select(Alert)
        .where(Alert.clinic_id == enrollment.clinic_id, Alert.family_id == enrollment.family_id)
        .order_by(Alert.id)
    ).all()
    return jsonify(
        {
            "family": family_json(enrollment),
            "messages": [message_json(m) for m in session.scalars(clinics.family_messages(enrollment))],
            "checkins": [checkin_json(c) for c in session.scalars(clinics.family_checkins(enrollment))],
            "alerts": [alert_json(alert, enrollment.id) for alert in alerts],
        }
    )


@bp.delete("/families/<int:family_id>")
def erase_family(family_id: int) -> Response:
    """Erase the family's data for good; refused while another clinic still follows them."""
    session = request_session()
    enrollment = _enrollment_or_404(session, family_id)
    counts = queries.erase_family(session, enrollment, now=utcnow())
    session.commit()
    return jsonify({"erased": counts})


# --- alerts ------------------------------------------------------------------------------


def alert_json(alert: Alert, enrollment_id: int | None) -> dict[str, Any]:
    return {
        "id": alert.id,
        "family_id": enrollment_id,
        "level": alert.level,
        "reason": alert.reason,
        "status": "open" if alert.acknowledged_at is None else "acknowledged",
        "created_at": _ts(alert.created_at),
        "acknowledged_at": _ts(alert.acknowledged_at),
        "acknowledged_by": alert.acknowledged_by,
        "note": alert.ack_note,
    }


def _alerts_json(session: Session, alerts: list[Alert]) -> list[dict[str, Any]]:
    """Alerts with the clinic's id for each family (its enrollment), in one query."""
    ids = dict(
        session.execute(
            select(Enrollment.family_id, Enrollment.id).where(
                Enrollment.clinic_id == _clinic_id(), Enrollment.family_id.in_({a.family_id for a in alerts})
            )
        ).all()
    )
    return [alert_json(alert, ids.get(alert.family_id)) for alert in alerts]


@bp.get("/alerts")
def list_alerts() -> Response:
    session = request_session()
    query = select(Alert).where(Alert.clinic_id == _clinic_id())
    status = request.args.get("status")
    if status == "open":
        query = query.where(Alert.acknowledged_at.is_(None))
    elif status == "acknowledged":
        query = query.where(Alert.acknowledged_at.is_not(None))
    elif status is not None:
        raise ApiError(422, "invalid_status", "status must be open or acknowledged", "status")
    return _page(session, query, Alert.id, lambda alerts: _alerts_json(session, alerts))


@bp.post("/alerts/<int:alert_id>/acknowledge")
def acknowledge_alert(alert_id: int) -> Response:
    """Mark an alert as handled, with an optional note; acknowledging twice is a 409."""
    session = request_session()
    row = queries.find_alert_row(session, _clinic_id(), alert_id) if alert_id <= MAX_ID else None
    if row is None:
        raise ApiError(404, "not_found", f"no alert {alert_id} at this clinic")
    body = _json_body(optional=True)
    _reject_unknown(body, ("note",))
    note = body.get("note")
    if note is not None and (
        not isinstance(note, str) or len(note) > NOTE_MAX_CHARS or not clinics.is_storable_text(note)
    ):
        raise ApiError(
            422, "invalid_note", f"note must be text of at most {NOTE_MAX_CHARS} characters", "note"
        )
    if not queries.acknowledge_alert(session, row.alert, by=_actor(), note=note, now=utcnow()):
        raise ApiError(409, "already_acknowledged", "this alert was already acknowledged")
    return jsonify(alert_json(row.alert, row.enrollment.id if row.enrollment else None))
