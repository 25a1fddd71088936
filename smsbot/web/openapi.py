"""The OpenAPI 3 document served at ``/api/v1/openapi.json``.

Hand-written next to the views it describes, and checked against the running app by
schemathesis in the test suite, so a drift between the two fails CI.
"""

from __future__ import annotations

from typing import Any

NULLABLE_STRING = {"type": ["string", "null"]}
TIMESTAMP = {"type": "string", "format": "date-time"}
NULLABLE_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
LANGUAGE = {"type": "string", "enum": ["en", "es"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _responses(ok: dict[str, dict[str, Any]], *errors: str) -> dict[str, Any]:
    """Success responses plus the errors every authenticated call can return."""
    common = ("401", "422", "429")  # 422 also for an unknown query parameter
    return {**ok, **{code: {"$ref": f"#/components/responses/{code}"} for code in (*common, *errors)}}


def _all_required(schema: dict[str, Any]) -> dict[str, Any]:
    """Every property is always present in our responses (null when empty)."""
    return {**schema, "required": list(schema["properties"])}


def _page_of(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": _ref(item)},
            "next_cursor": {
                **NULLABLE_STRING,
                "description": "Pass as `cursor` for the next (older) page; null on the last page.",
            },
        },
        "additionalProperties": False,
    }


PAGE_PARAMETERS = [
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50},
    },
    {"name": "cursor", "in": "query", "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,8}$"}},
]
ID_PARAMETER = {
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
}
FAMILY_ID = [{"name": "family_id", **ID_PARAMETER}]

FAMILY_FIELDS: dict[str, Any] = {
    "language": LANGUAGE,
    "baby_name": {"type": ["string", "null"], "maxLength": 100},
    "baby_birth_date": {
        "type": ["string", "null"],
        "format": "date",
        "description": "A young baby's birth date (not in the future, at most two years ago).",
    },
    "timezone": {
        "type": ["string", "null"],
        "maxLength": 64,
        "description": "An IANA zone, e.g. America/Chicago.",
    },
    "external_ref": {
        "type": ["string", "null"],
        "maxLength": 100,
        "description": "Your own id for the family.",
    },
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "field"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "field": NULLABLE_STRING,
                },
            }
        },
    },
    "Family": _all_required(
        {
            "type": "object",
            "description": "A family as this clinic follows it: `id` and the details are this "
            "clinic's own; another clinic enrolling the same phone neither sees nor changes them.",
            "properties": {
                "id": {"type": "integer"},
                "phone": {"type": "string", "description": "E.164"},
                "channel": {"type": "string", "enum": ["sms", "whatsapp"]},
                **FAMILY_FIELDS,
                "baby_birth_date": {"type": ["string", "null"], "format": "date"},
                "programme": NULLABLE_STRING,
                "status": {"type": "string", "enum": ["awaiting_consent", "active", "ended"]},
                "consent": {
                    "type": "string",
                    "enum": ["requested", "given", "not_requested", "blocked_opted_out", "none"],
                    "description": "requested: the consent text went out and awaits the family's YES; "
                    "blocked_opted_out: the family had texted STOP, so no consent text was sent; "
                    "not_requested: it has not gone out (the family texted START since, or the send "
                    "failed): enroll again to send it. Until consent is given the clinic gets no "
                    "messages, check-ins or alerts of the family.",
                },
                "opted_out": {"type": "boolean"},
                "followup_hold": {
                    "type": ["string", "null"],
                    "enum": ["hospital", "loss", None],
                    "description": "Sensitive news the parent sent: hospital pauses automated messages "
                    "until the parent texts that the baby is home or you resume them; loss ends them.",
                },
                "followup_hold_since": NULLABLE_TIMESTAMP,
                "enrolled_at": TIMESTAMP,
                "consented_at": NULLABLE_TIMESTAMP,
                "ended_at": NULLABLE_TIMESTAMP,
            },
            "additionalProperties": False,
        }
    ),
    "FamilyCreate": {
        "type": "object",
        "description": "Enrolling a phone already enrolled here updates it (200) and sends no second text.",
        "required": ["phone", "programme"],
        "properties": {
            "phone": {
                "type": "string",
                "description": "Any format; national numbers use the default region.",
            },
            "programme": {
                "type": "string",
                "description": "A check-in programme id from rules/checkins.yaml.",
            },
            "channel": {"type": "string", "enum": ["sms", "whatsapp"], "default": "sms"},
            **FAMILY_FIELDS,
        },
        "additionalProperties": False,
    },
    "FamilyUpdate": {"type": "object", "properties": FAMILY_FIELDS, "additionalProperties": False},
    "EnrollmentRequest": {
        "type": "object",
        "required": ["programme"],
        "properties": {"programme": {"type": "string"}},
        "additionalProperties": False,
    },
    "Message": {
        "type": "object",
        "required": ["id", "direction", "kind", "body", "status", "level", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "direction": {"type": "string", "enum": ["in", "out"]},
            "kind": {"type": "string"},
            "body": {**NULLABLE_STRING, "description": "null once purged by retention"},
            "status": {"type": "string"},
            "level": NULLABLE_STRING,
            "created_at": TIMESTAMP,
        },
        "additionalProperties": False,
    },
    "CheckIn": {
        "type": "object",
        "required": ["id", "programme", "step", "status", "due_at", "sent_at", "answered_at", "outcome"],
        "properties": {
            "id": {"type": "integer"},
            "programme": {"type": "string"},
            "step": {"type": "integer"},
            "status": {"type": "string"},
            "due_at": TIMESTAMP,
            "sent_at": NULLABLE_TIMESTAMP,
            "answered_at": NULLABLE_TIMESTAMP,
            "outcome": NULLABLE_STRING,
        },
        "additionalProperties": False,
    },
    "Alert": _all_required(
        {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "family_id": {
                    "type": ["integer", "null"],
                    "description": "null: a walk-in texter never enrolled",
                },
                "level": {
                    "type": "string",
                    "description": "sensitive: a notice of sensitive news (never paged)",
                },
                "reason": {
                    "type": "string",
                    "enum": [
                        *("emergency", "urgent", "worse", "undelivered", "unprocessed"),
                        *("hospital", "loss", "home"),
                    ],
                    "description": "unprocessed: a text smsbot could not process after retries (read it); "
                    "hospital, loss, home: sensitive news the parent sent.",
                },
                "status": {"type": "string", "enum": ["open", "acknowledged"]},
                "created_at": TIMESTAMP,
                "acknowledged_at": NULLABLE_TIMESTAMP,
                "acknowledged_by": NULLABLE_STRING,
                "note": NULLABLE_STRING,
            },
            "additionalProperties": False,
        }
    ),
    "Acknowledge": {
        "type": "object",
        "properties": {"note": {"type": ["string", "null"], "maxLength": 2000}},
        "additionalProperties": False,
    },
    "Export": _all_required(
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "family": _ref("Family"),
                "messages": {"type": "array", "items": _ref("Message")},
                "checkins": {"type": "array", "items": _ref("CheckIn")},
                "alerts": {"type": "array", "items": _ref("Alert")},
            },
        }
    ),
    "Erased": _all_required(
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {"erased": {"type": "object", "additionalProperties": {"type": "integer"}}},
        }
    ),
    "FamilyPage": _page_of("Family"),
    "MessagePage": _page_of("Message"),
    "CheckInPage": _page_of("CheckIn"),
    "AlertPage": _page_of("Alert"),
}

RESPONSES = {
    "400": _error("The body is not a JSON object."),
    "401": _error("Missing, unknown or revoked API token."),
    "404": _error("No such resource at this clinic."),
    "409": _error("Conflicts with the current state."),
    "422": _error("A field or query parameter is missing, unknown or invalid; `field` names it."),
    "429": _error("Too many requests for this token; retry after the Retry-After header."),
}

FAMILY = {"200": _ok("The family.", _ref("Family"))}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "smsbot clinic API",
        "version": "1.0.0",
        "description": "Enroll families for follow-up check-ins and handle alerts. Every resource is "
        "scoped to the clinic owning the token: other clinics' ids answer 404.",
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearer": []}],
    "paths": {
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": _ok("OpenAPI 3 document.", {"type": "object"})},
            }
        },
        "/families": {
            "get": {
                "summary": "List families enrolled at this clinic, newest first",
                "parameters": [
                    *PAGE_PARAMETERS,
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["awaiting_consent", "active", "ended"]},
                    },
                ],
                "responses": _responses({"200": _ok("A page of families.", _ref("FamilyPage"))}, "422"),
            },
            "post": {
                "summary": "Enroll a family (sends one consent text)",
                "requestBody": _body(_ref("FamilyCreate")),
                "responses": _responses(
                    {
                        "201": _ok("Enrolled.", _ref("Family")),
                        "200": _ok("Already enrolled: updated.", _ref("Family")),
                    },
                    "400",
                    "409",
                    "422",
                ),
            },
        },
        "/families/{family_id}": {
            "parameters": FAMILY_ID,
            "get": {"summary": "One family", "responses": _responses(FAMILY, "404")},
            "delete": {
                "summary": "Erase the family's data for good (409 while another clinic follows them)",
                "responses": _responses(
                    {"200": _ok("Erased: rows removed per table.", _ref("Erased"))}, "404", "409"
                ),
            },
            "patch": {
                "summary": "Update a family's details (phone and programme are fixed)",
                "requestBody": _body(_ref("FamilyUpdate")),
                "responses": _responses(FAMILY, "400", "404", "422"),
            },
        },
        "/families/{family_id}/enrollment": {
            "parameters": FAMILY_ID,
            "post": {
                "summary": "Enroll again, or in a programme; re-opening asks consent again",
                "requestBody": _body(_ref("EnrollmentRequest")),
                "responses": _responses(FAMILY, "400", "404", "409", "422"),
            },
            "delete": {
                "summary": "Unenroll: pending check-ins are cancelled (idempotent)",
                "responses": _responses(FAMILY, "404"),
            },
        },
        "/families/{family_id}/resume": {
            "parameters": FAMILY_ID,
            "post": {
                "summary": "Resume automated messages held by sensitive news (idempotent)",
                "responses": _responses(FAMILY, "404"),
            },
        },
        "/families/{family_id}/messages": {
            "parameters": FAMILY_ID,
            "get": {
                "summary": "Messages since this clinic enrolled the family, newest first",
                "parameters": PAGE_PARAMETERS,
                "responses": _responses(
                    {"200": _ok("A page of messages.", _ref("MessagePage"))}, "404", "422"
                ),
            },
        },
        "/families/{family_id}/export": {
            "parameters": FAMILY_ID,
            "get": {
                "summary": "Everything this clinic holds about the family (privacy export)",
                "responses": _responses({"200": _ok("The family's data.", _ref("Export"))}, "404"),
            },
        },
        "/families/{family_id}/checkins": {
            "parameters": FAMILY_ID,
            "get": {
                "summary": "The family's check-ins for this clinic, newest first",
                "parameters": PAGE_PARAMETERS,
                "responses": _responses(
                    {"200": _ok("A page of check-ins.", _ref("CheckInPage"))}, "404", "422"
                ),
            },
        },
        "/alerts": {
            "get": {
                "summary": "Alerts for this clinic, newest first",
                "parameters": [
                    *PAGE_PARAMETERS,
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["open", "acknowledged"]},
                    },
                ],
                "responses": _responses({"200": _ok("A page of alerts.", _ref("AlertPage"))}, "422"),
            }
        },
        "/alerts/{alert_id}/acknowledge": {
            "parameters": [{"name": "alert_id", **ID_PARAMETER}],
            "post": {
                "summary": "Acknowledge an alert, with an optional note",
                "requestBody": _body(_ref("Acknowledge"), required=False),
                "responses": _responses(
                    {"200": _ok("The acknowledged alert.", _ref("Alert"))}, "400", "404", "409", "422"
                ),
            },
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": SCHEMAS,
        "responses": RESPONSES,
    },
}
