"""Clinics, their staff accounts (and ending their dashboard sessions) and API tokens."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from smsbot.clinics.errors import ConflictError, FieldError, InvalidFieldsError
from smsbot.config import ALERT_LINKS_NEED_PUBLIC_URL, Settings
from smsbot.models import ApiToken, Clinic, Staff
from smsbot.phones import InvalidPhoneError, normalise_phone

TOKEN_PREFIX = "smsb_"
ROLES = ("nurse", "admin")  # admin: also manages staff, the escalation chain and its delays
MIN_PASSWORD_LENGTH = 10


def is_timezone(name: Any) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        return False
    return True


def parse_quiet_hours(raw: str) -> tuple[str, str]:
    """``"20:00-09:00"`` → ("20:00", "09:00"); the window in which scheduled texts wait."""
    match = re.fullmatch(r"\s*(\d{2}:\d{2})\s*-\s*(\d{2}:\d{2})\s*", raw)
    if match is None:
        raise ValueError("quiet hours must look like 20:00-09:00")
    for part in match.groups():
        time.fromisoformat(part)  # rejects 25:00
    return match.group(1), match.group(2)


MAX_EPISODE_QUIET_DAYS = 365


def _clinic_values(
    settings: Settings,
    errors: list[FieldError],
    *,
    name: str | None = None,
    timezone: str | None = None,
    oncall_phone: str | None = None,
    webhook_url: str | None = None,
    quiet_hours: str | None = None,
    whatsapp_sms_fallback: str | None = None,
    episode_quiet_days: int | None = None,
) -> dict[str, Any]:
    """Clean the clinic settings given (None: not given; "" clears an optional one).

    Problems are appended to ``errors``, so a caller reports every one at once.
    """
    values: dict[str, Any] = {}
    if name is not None:
        values["name"] = name.strip()
        if not values["name"]:
            errors.append(FieldError("name", "missing_field", "a clinic needs a name"))
    if timezone is not None:
        values["timezone"] = timezone
        if not is_timezone(timezone):
            errors.append(FieldError("timezone", "invalid_timezone", f"{timezone!r} is not a time zone"))
    if webhook_url is not None:
        values["webhook_url"] = webhook_url or None
        if webhook_url and not re.match(r"^https?://[^/\s]+", webhook_url):
            errors.append(FieldError("webhook_url", "invalid_url", "must be an http(s) URL"))
    if quiet_hours is not None:
        values["quiet_hours_start"] = values["quiet_hours_end"] = None
        if quiet_hours:
            try:
                values["quiet_hours_start"], values["quiet_hours_end"] = parse_quiet_hours(quiet_hours)
            except ValueError as error:
                errors.append(FieldError("quiet_hours", "invalid_quiet_hours", str(error)))
    if oncall_phone is not None:
        values["oncall_phone"] = None
        if oncall_phone:
            try:
                values["oncall_phone"] = normalise_phone(oncall_phone, settings.default_region)
            except InvalidPhoneError as error:
                errors.append(FieldError("oncall_phone", "invalid_phone", str(error)))
    if whatsapp_sms_fallback is not None:
        values["whatsapp_sms_fallback"] = whatsapp_sms_fallback == "on"
        if whatsapp_sms_fallback not in ("on", "off"):
            errors.append(FieldError("whatsapp_sms_fallback", "invalid_choice", "use on or off"))
    if episode_quiet_days is not None:
        values["episode_quiet_days"] = episode_quiet_days
        if not 1 <= episode_quiet_days <= MAX_EPISODE_QUIET_DAYS:
            errors.append(
                FieldError(
                    "episode_quiet_days", "invalid_days", f"must be 1 to {MAX_EPISODE_QUIET_DAYS} days"
                )
            )
    alerting = next((field for field in ("oncall_phone", "webhook_url") if values.get(field)), None)
    if alerting is not None and not settings.public_url:
        errors.append(FieldError(alerting, "needs_public_url", ALERT_LINKS_NEED_PUBLIC_URL))
    return values


def create_clinic(
    session: Session,
    settings: Settings,
    *,
    slug: str,
    name: str,
    timezone: str,
    oncall_phone: str | None = None,
    webhook_url: str | None = None,
    quiet_hours: str | None = None,
    whatsapp_sms_fallback: str | None = None,
) -> Clinic:
    """Create a clinic with a fresh webhook secret (used to sign its alert webhooks)."""
    errors = []
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,63}", slug):
        errors.append(FieldError("slug", "invalid_slug", "use 2-64 lower-case letters, digits and '-'"))
    values = _clinic_values(
        settings,
        errors,
        name=name,
        timezone=timezone,
        oncall_phone=oncall_phone,
        webhook_url=webhook_url,
        quiet_hours=quiet_hours,
        whatsapp_sms_fallback=whatsapp_sms_fallback,
    )
    if errors:
        raise InvalidFieldsError(errors)
    if session.scalar(select(Clinic.id).where(Clinic.slug == slug)) is not None:
        raise ConflictError("slug_taken", f"a clinic with slug {slug!r} already exists", "slug")
    clinic = Clinic(slug=slug, webhook_secret=secrets.token_hex(32), **values)
    session.add(clinic)
    session.flush()
    return clinic


def update_clinic(
    session: Session, settings: Settings, clinic: Clinic, **changes: str | int | None
) -> Clinic:
    """Change the settings given, as ``create_clinic`` names them (None keeps one, "" clears an
    optional one); InvalidFieldsError lists every problem."""
    errors: list[FieldError] = []
    values = _clinic_values(settings, errors, **changes)
    if errors:
        raise InvalidFieldsError(errors)
    for field, value in values.items():
        setattr(clinic, field, value)
    session.flush()
    return clinic


def get_clinic(session: Session, slug: str) -> Clinic | None:
    return session.scalar(select(Clinic).where(Clinic.slug == slug))


def list_clinics(session: Session) -> list[Clinic]:
    return list(session.scalars(select(Clinic).order_by(Clinic.slug)))


def list_staff(session: Session, clinic: Clinic) -> list[Staff]:
    return list(session.scalars(select(Staff).where(Staff.clinic_id == clinic.id).order_by(Staff.email)))


def list_tokens(session: Session, clinic: Clinic) -> list[ApiToken]:
    return list(
        session.scalars(select(ApiToken).where(ApiToken.clinic_id == clinic.id).order_by(ApiToken.id))
    )


def add_staff(
    session: Session, clinic: Clinic, *, email: str, password: str, name: str = "", role: str = "nurse"
) -> Staff:
    """Add a staff account; the password is stored as a scrypt hash (werkzeug's default KDF)."""
    email = email.strip().lower()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        raise InvalidFieldsError([FieldError("email", "invalid_email", "not an email address")])
    _check_role(role)
    _check_password(password)
    if session.scalar(select(Staff.id).where(Staff.email == email)) is not None:
        raise ConflictError("email_taken", "a staff account with this email already exists", "email")
    staff = Staff(
        clinic_id=clinic.id, email=email, name=name, role=role, password_hash=generate_password_hash(password)
    )
    session.add(staff)
    session.flush()
    return staff


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidFieldsError(
            [FieldError("role", "invalid_role", f"role must be one of {', '.join(ROLES)}")]
        )


def set_role(staff: Staff, role: str) -> None:
    """Make the account a nurse or an admin."""
    _check_role(role)
    staff.role = role


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidFieldsError(
            [FieldError("password", "weak_password", f"use at least {MIN_PASSWORD_LENGTH} characters")]
        )


def get_staff(session: Session, email: str) -> Staff:
    """The staff account with this email (LookupError if none)."""
    staff = session.scalar(select(Staff).where(Staff.email == email.strip().lower()))
    if staff is None:
        raise LookupError(f"no staff account with email {email.strip()!r}")
    return staff


def end_sessions(session: Session, staff: Staff) -> None:
    """Sign the account out everywhere: every session cookie issued to it stops working.

    Cookies carry the session generation they were issued under; raising it in SQL (not
    in Python) means two sign-outs at once both count.
    """
    session.execute(
        update(Staff)
        .where(Staff.id == staff.id)
        .values(session_generation=Staff.session_generation + 1)
        .execution_options(synchronize_session="fetch")
    )


def set_password(session: Session, staff: Staff, password: str) -> None:
    """Give the account a new password: its sessions end, and a lockout is lifted."""
    _check_password(password)
    staff.password_hash = generate_password_hash(password)
    staff.failed_logins = 0
    staff.locked_until = None
    end_sessions(session, staff)


def disable_staff(session: Session, staff: Staff, *, now: datetime) -> None:
    """Refuse the account's sign-ins from now on and end its sessions (kept for the record)."""
    staff.disabled_at = staff.disabled_at or now
    end_sessions(session, staff)


def enable_staff(staff: Staff) -> None:
    """Let a disabled account sign in again (with its password; no old session comes back)."""
    staff.disabled_at = None


# --- API tokens --------------------------------------------------------------------------


def _token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def create_token(session: Session, clinic: Clinic, name: str = "") -> str:
    """Create an API token and return it; only its SHA-256 is stored, so show it once."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(clinic_id=clinic.id, name=name, token_hash=_token_hash(raw), prefix=raw[:13]))
    session.flush()
    return raw


def revoke_token(session: Session, clinic: Clinic, prefix_or_id: str, *, now: datetime) -> ApiToken:
    """Revoke one of ``clinic``'s tokens by its shown prefix or numeric id (LookupError if none)."""
    query = select(ApiToken).where(ApiToken.clinic_id == clinic.id)
    if prefix_or_id.isascii() and prefix_or_id.isdigit() and len(prefix_or_id) < 10:
        query = query.where(ApiToken.id == int(prefix_or_id))
    else:
        query = query.where(ApiToken.prefix == prefix_or_id)
    tokens = session.scalars(query).all()
    if len(tokens) != 1:
        raise LookupError(f"no single token of {clinic.slug} matches {prefix_or_id!r}")
    tokens[0].revoked_at = tokens[0].revoked_at or now
    return tokens[0]


def authenticate_token(session: Session, raw: str) -> ApiToken | None:
    """The live token for ``raw``, or None.

    Looking the token up by its hash means no secret is ever compared byte by byte, so
    response timing reveals nothing about valid tokens.
    """
    if not raw.startswith(TOKEN_PREFIX):
        return None
    return session.scalar(
        select(ApiToken).where(ApiToken.token_hash == _token_hash(raw), ApiToken.revoked_at.is_(None))
    )
