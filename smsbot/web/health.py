"""``GET /healthz``: is the app up and can it reach its database?"""

from __future__ import annotations

from flask import Blueprint, jsonify

from smsbot.db import get_db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    database_ok = get_db().ping()
    body = {"status": "ok" if database_ok else "degraded", "database": "ok" if database_ok else "unreachable"}
    return jsonify(body), 200 if database_ok else 503
