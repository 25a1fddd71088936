"""Structured JSON logs with a request id. Message bodies are never logged, and any phone
number that slips into a log line is masked before it is written."""

from __future__ import annotations

import json
import logging
import re
import traceback
import uuid
from urllib.parse import unquote_plus

from flask import Flask, g, has_request_context, request

REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
PHONE_PATTERN = re.compile(r"\+?\d[\d\s().-]{7,}\d")
# Loggers of ours and of the libraries that run our code: the scheduler reports a job's
# exception, and the development server writes the access log. Through the JSON formatter
# neither can print a body, an SQL parameter or a full phone number.
ACCESS_LOGGER = "werkzeug"
LOGGER_LEVELS = {"smsbot": None, "apscheduler": "WARNING", ACCESS_LOGGER: "INFO"}


IPV4 = re.compile(r"\d{1,3}(\.\d{1,3}){3}")


def _mask(match: re.Match[str]) -> str:
    if IPV4.fullmatch(match.group()):
        return match.group()  # an address in the access log, not a phone number
    digits = re.sub(r"\D", "", match.group())
    return "•••" + digits[-4:]


def _readable(record: logging.LogRecord) -> str:
    """The message, with the access log's URLs decoded: a number written ``%2B1%20555…`` in
    a query string is still a number, and must be masked like any other."""
    message = record.getMessage()
    return unquote_plus(message) if record.name == ACCESS_LOGGER else message


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": PHONE_PATTERN.sub(_mask, _readable(record)),
        }
        if has_request_context():
            entry["request_id"] = g.get("request_id")
            entry["path"] = request.path
        if record.exc_info and record.exc_info[0] is not None:
            # The stack and the type, never the exception's message: it may quote a body.
            entry["exception"] = record.exc_info[0].__name__
            entry["stack"] = "".join(traceback.format_tb(record.exc_info[2]))
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for ``smsbot`` and the libraries in ``LOGGER_LEVELS``."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    for name, own_level in LOGGER_LEVELS.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(own_level or level)
        logger.propagate = False


def init_app(app: Flask) -> None:
    @app.before_request
    def _assign_request_id() -> None:
        # Echoed in a response header and in logs: accept only a plain token, so a crafted
        # header can neither split the response nor forge log lines.
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex

    @app.after_request
    def _echo_request_id(response):  # type: ignore[no-untyped-def]
        response.headers["X-Request-Id"] = g.get("request_id", "")
        return response
