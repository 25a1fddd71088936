"""The dashboard tests' world: two clinics, one nurse each, one family each with an alert.

Riverside Pediatrics follows Ana (+15550100001); Lakeside Clinic follows Bo (+15550100009).
Rows are inserted directly (``devtools.demo`` helpers): the dashboard only reads them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash
from werkzeug.test import TestResponse

from devtools.demo import add_alert, add_clinic, add_enrollment, add_message
from smsbot.db import Database
from smsbot.models import Clinic, Staff

NURSE = "nurse@riverside.example"
OTHER_NURSE = "coordinator@lakeside.example"
PASSWORD = "correct horse battery staple"
ANA_PHONE = "+15550100001"
BO_PHONE = "+15550100009"


@dataclass(frozen=True)
class World:
    riverside_id: int
    lakeside_id: int
    ana_id: int
    bo_id: int
    ana_alert_id: int
    bo_alert_id: int


@cache
def password_hash() -> str:
    """PASSWORD hashed once per run: scrypt is slow on purpose, and every test adds two nurses."""
    return generate_password_hash(PASSWORD)


def add_nurse(session: Session, clinic: Clinic, email: str) -> Staff:
    """A staff row as ``clinics.add_staff`` leaves it, without paying for a new scrypt hash."""
    staff = Staff(clinic_id=clinic.id, email=email, password_hash=password_hash())
    session.add(staff)
    return staff


def build_world(db: Database, now: datetime) -> World:
    with db.session() as session:
        riverside = add_clinic(session, "Riverside Pediatrics", "riverside")
        lakeside = add_clinic(session, "Lakeside Clinic", "lakeside", timezone="America/Chicago")
        add_nurse(session, riverside, NURSE)
        add_nurse(session, lakeside, OTHER_NURSE)
        ana = add_enrollment(session, riverside, ANA_PHONE, baby_name="Ana", at=now - timedelta(days=3))
        bo = add_enrollment(session, lakeside, BO_PHONE, baby_name="Bo", at=now - timedelta(days=3))
        ana_text = add_message(
            session, ana.family, "in", "her lips look blue", at=now - timedelta(hours=1), level="emergency"
        )
        bo_text = add_message(
            session, bo.family, "in", "fever and shaking", at=now - timedelta(hours=2), level="urgent"
        )
        ana_alert = add_alert(session, riverside, ana_text, at=ana_text.created_at)
        bo_alert = add_alert(session, lakeside, bo_text, at=bo_text.created_at)
        return World(riverside.id, lakeside.id, ana.family_id, bo.family_id, ana_alert.id, bo_alert.id)


def csrf_token(client: FlaskClient, path: str) -> str:
    """The CSRF token a browser would find in the form on ``path``."""
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def sign_in(client: FlaskClient, email: str = NURSE, password: str = PASSWORD) -> TestResponse:
    token = csrf_token(client, "/dashboard/login")
    return client.post("/dashboard/login", data={"email": email, "password": password, "csrf_token": token})


def post_form(client: FlaskClient, page: str, action: str, data: dict[str, str]) -> TestResponse:
    """Post ``data`` to ``action`` with the CSRF token from ``page``, as a browser would."""
    return client.post(action, data={**data, "csrf_token": csrf_token(client, page)})
