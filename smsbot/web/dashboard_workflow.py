"""Dashboard pages for the clinic's workflow: texting a family (the inbox), the families that
need attention, and, for clinic admins, the escalation chain and the staff accounts.

A blueprint of its own under ``/dashboard``, guarded exactly like ``dashboard.bp`` (CSRF,
signed-in staff, security headers, HTML errors). Thin views over ``smsbot.clinics.inbox``,
``clinics.attention``, ``alerts.chain_settings`` and ``clinics`` accounts.
"""

from __future__ import annotations

import secrets

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from smsbot import clinics
from smsbot.alerts import chain_settings, escalation
from smsbot.clinics import attention, inbox, queries
from smsbot.db import request_session
from smsbot.models import Staff, utcnow
from smsbot.phones import mask_phone
from smsbot.vocabulary import MAX_ID, STAFF_TEXT_MAX_CHARS
from smsbot.web import dashboard

bp = Blueprint("workflow", __name__, url_prefix="/dashboard")
bp.before_request(dashboard.require_csrf_and_staff)
bp.after_request(dashboard.security_headers)
bp.register_error_handler(HTTPException, dashboard.html_error)


def _problems(error: clinics.InvalidFieldsError | clinics.ConflictError) -> str:
    if isinstance(error, clinics.InvalidFieldsError):
        return "; ".join(problem.message for problem in error.errors)
    return str(error)


# The inbox -----------------------------------------------------------------------------


@bp.post(f"/families/<int(max={MAX_ID}):family_id>/messages")
def send_text(family_id: int) -> Response:
    """Text the parent from the family page, signed with the clinic's name; optionally
    acknowledging the family's open alerts in the same step."""
    db = request_session()
    row = queries.find_family(db, g.staff.clinic_id, family_id)
    if row is None:
        abort(404)
    back = url_for("dashboard.family", family_id=family_id, _anchor="conversation-heading")
    template = request.form.get("template") or None
    text = request.form.get("text", "")
    try:
        sent = inbox.send_staff_text(
            db,
            current_app.extensions["smsbot.settings"],
            current_app.extensions["smsbot.transport"],
            row.enrollment,
            text=None if template and not text.strip() else text,
            template=template,
            sender=g.staff.email,
            acknowledge=request.form.get("acknowledge") == "yes",
            now=utcnow(),
        )
    except (clinics.InvalidFieldsError, clinics.ConflictError) as error:
        db.rollback()
        flash(f"Not sent: {_problems(error)}.", "error")
        return redirect(back)
    if sent.error:
        flash(f"The text could not be sent ({sent.error}). Phone the parent instead.", "error")
    else:
        done = f" and acknowledged {len(sent.acknowledged)} alert(s)" if sent.acknowledged else ""
        flash(f"Text sent to {mask_phone(row.family.phone)}{done}.", "success")
    return redirect(back)


# Needs attention -----------------------------------------------------------------------


@bp.get("/attention")
def needs_attention() -> str:
    """Families nobody is reaching: unanswered check-ins, undelivered texts, STOP with an alert open."""
    rows = attention.needs_attention(request_session(), g.staff.clinic_id)
    return render_template("dashboard/attention.html", rows=rows)


# Clinic admins ---------------------------------------------------------------------------


def _require_admin() -> None:
    if not g.staff.is_admin:
        abort(403, "Only clinic admins can change this.")


@bp.get("/escalation")
def escalation_page() -> str:
    """Who is paged when an alert stays unacknowledged, and after how long."""
    _require_admin()
    db = request_session()
    clinic = g.staff.clinic
    opening, closing = escalation.clinic_hours(clinic)
    return render_template(
        "dashboard/escalation.html",
        clinic=clinic,
        contacts=chain_settings.contacts(db, clinic),
        hours=f"{opening:%H:%M}-{closing:%H:%M}",
    )


@bp.post("/escalation")
def update_escalation() -> Response:
    _require_admin()
    db = request_session()
    clinic = g.staff.clinic
    try:
        clinics.update_clinic(
            db,
            current_app.extensions["smsbot.settings"],
            clinic,
            oncall_phone=request.form.get("oncall_phone", ""),
        )
        chain_settings.set_delays(
            db,
            clinic,
            emergency_minutes=request.form.get("emergency_minutes"),
            urgent_minutes=request.form.get("urgent_minutes"),
            clinic_hours=request.form.get("clinic_hours"),
        )
    except clinics.InvalidFieldsError as error:
        db.rollback()
        flash(f"Not saved: {_problems(error)}.", "error")
        return redirect(url_for(".escalation_page"))
    db.commit()
    flash("Escalation saved.", "success")
    return redirect(url_for(".escalation_page"))


@bp.post("/escalation/contacts")
def add_contact() -> Response:
    _require_admin()
    db = request_session()
    try:
        contact = chain_settings.add_contact(
            db,
            current_app.extensions["smsbot.settings"],
            g.staff.clinic,
            name=request.form.get("name", ""),
            phone=request.form.get("phone", ""),
            delay_minutes=request.form.get("delay_minutes"),
        )
    except clinics.InvalidFieldsError as error:
        db.rollback()
        flash(f"Not added: {_problems(error)}.", "error")
        return redirect(url_for(".escalation_page"))
    db.commit()
    flash(f"{contact.name} added to the chain.", "success")
    return redirect(url_for(".escalation_page"))


@bp.post(f"/escalation/contacts/<int(max={MAX_ID}):contact_id>/remove")
def remove_contact(contact_id: int) -> Response:
    _require_admin()
    db = request_session()
    try:
        removed = chain_settings.remove_contact(db, g.staff.clinic, contact_id)
    except LookupError:
        abort(404)
    db.commit()
    flash(f"{removed.name} removed from the chain.", "success")
    return redirect(url_for(".escalation_page"))


@bp.get("/staff")
def staff_page() -> str:
    """The clinic's staff accounts: add, disable, enable, new password, role."""
    _require_admin()
    accounts = clinics.list_staff(request_session(), g.staff.clinic)
    return render_template("dashboard/staff.html", accounts=accounts, roles=clinics.ROLES)


@bp.post("/staff")
def add_staff() -> Response:
    _require_admin()
    db = request_session()
    password = secrets.token_urlsafe(12)
    try:
        added = clinics.add_staff(
            db,
            g.staff.clinic,
            email=request.form.get("email", ""),
            name=request.form.get("name", "").strip(),
            role=request.form.get("role", "nurse"),
            password=password,
        )
    except (clinics.InvalidFieldsError, clinics.ConflictError) as error:
        db.rollback()
        flash(f"Not added: {_problems(error)}.", "error")
        return redirect(url_for(".staff_page"))
    db.commit()
    flash(f"Added {added.email}. Their first password, shown once: {password}", "success")
    return redirect(url_for(".staff_page"))


def _colleague(staff_id: int) -> Staff:
    """A staff account of the admin's own clinic (404 for anyone else's)."""
    account = request_session().scalar(
        select(Staff).where(Staff.id == staff_id, Staff.clinic_id == g.staff.clinic_id)
    )
    if account is None:
        abort(404)
    return account


@bp.post(f"/staff/<int(max={MAX_ID}):staff_id>/<any(disable, enable, password, role):action>")
def change_staff(staff_id: int, action: str) -> Response:
    """Disable (ends their sessions), enable, set a new password (ends them too), or change role."""
    _require_admin()
    db = request_session()
    account = _colleague(staff_id)
    if account.id == g.staff.id and action in ("disable", "role"):
        flash("You cannot disable your own account or change your own role.", "error")
        return redirect(url_for(".staff_page"))
    message = ""
    try:
        if action == "disable":
            clinics.disable_staff(db, account, now=utcnow())
            message = f"{account.email} is disabled and signed out everywhere."
        elif action == "enable":
            clinics.enable_staff(account)
            message = f"{account.email} can sign in again."
        elif action == "password":
            password = secrets.token_urlsafe(12)
            clinics.set_password(db, account, password)
            message = f"New password for {account.email}, shown once: {password} (their sessions are ended)."
        else:
            clinics.set_role(account, request.form.get("role", ""))
            message = f"{account.email} is now {account.role}."
    except clinics.InvalidFieldsError as error:
        db.rollback()
        flash(f"Not changed: {_problems(error)}.", "error")
        return redirect(url_for(".staff_page"))
    db.commit()
    flash(message, "success")
    return redirect(url_for(".staff_page"))


@bp.app_context_processor
def _compose_limits() -> dict[str, int]:
    return {"staff_text_max": STAFF_TEXT_MAX_CHARS}
