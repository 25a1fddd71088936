"""One JSON error shape for every HTTP error: ``{"error": {"code", "message", "field"}}``.

No traceback ever reaches a client; a 500 rolls back the request's session first.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, g, jsonify
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException, InternalServerError

from smsbot.db import is_busy

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str, field: str | None = None) -> tuple[Response, int]:
    return jsonify({"error": {"code": code, "message": message, "field": field}}), status


def _http_error(error: HTTPException) -> tuple[Response, int]:
    code = (error.name or "error").lower().replace(" ", "_")
    response, status = error_response(error.code or 500, code, error.description or error.name)
    # Keep the headers the exception carries: ``Allow`` on a 405 is required by RFC 9110.
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response, status


def _server_error(error: Exception) -> tuple[Response, int]:
    session = g.pop("db_session", None)
    if session is not None:
        session.rollback()
        session.close()
    if not isinstance(error, InternalServerError):
        log.exception("unhandled error", exc_info=error)
    return error_response(500, "internal_error", "Something went wrong on our side.")


def _database_error(error: DBAPIError) -> tuple[Response, int]:
    """A database too busy to take the write in time is a 503 the caller retries (Twilio does,
    with the same MessageSid, which is stored once); any other database error is a 500."""
    if not is_busy(error):
        return _server_error(error)
    session = g.pop("db_session", None)
    if session is not None:
        session.rollback()
        session.close()
    log.warning("database busy: %s", type(error.orig).__name__)
    response, status = error_response(503, "database_busy", "The database is busy; retry in a moment.")
    response.headers["Retry-After"] = "1"
    return response, status


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(DBAPIError, _database_error)
    app.register_error_handler(Exception, _server_error)
