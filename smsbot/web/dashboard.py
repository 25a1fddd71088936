"""The clinic dashboard (``/dashboard``): server-rendered pages for nurses and coordinators.

Thin views over ``clinics.queries`` (every read scoped to the signed-in staff member's
clinic) and ``staff_auth``. Only this blueprint is CSRF-protected: the Twilio webhooks
and the token-authenticated API have their own authentication and no browser session.
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from smsbot import audit, clinics, episodes
from smsbot.alerts import acknowledge as acknowledge_alert
from smsbot.alerts import timeline
from smsbot.checkins.programmes import load_programmes
from smsbot.clinics import inbox, queries
from smsbot.clinics.texts import ClinicTexts, load_clinic_texts
from smsbot.conversation import CHECKIN_WORSE, news
from smsbot.db import request_session
from smsbot.families import lock_family
from smsbot.models import Enrollment, utcnow
from smsbot.phones import display_phone, mask_phone
from smsbot.triage import load_rules
from smsbot.vocabulary import LANGUAGE_NAMES, MAX_ID, NOTE_MAX_CHARS
from smsbot.web import charts
from smsbot.web.enroll_form import EnrollFormError, enroll_from_form
from smsbot.web.inputs import has_nul
from smsbot.web.staff_auth import LOCKOUT, MAX_FAILED_LOGINS, authenticate, session_claims, signed_in_staff

log = logging.getLogger(__name__)
bp = Blueprint(
    "dashboard", __name__, url_prefix="/dashboard", template_folder="templates", static_folder="static"
)
csrf = CSRFProtect()
T = TypeVar("T")

PUBLIC_ENDPOINTS = {"dashboard.login", "dashboard.static"}
FIELD_LABELS = {
    "phone": "Parent's mobile number",
    "language": "Language for texts",
    "baby_name": "Baby's name",
    "baby_birth_date": "Baby's birth date",
    "programme": "Check-in programme",
}
# Patient details must not linger in shared browser caches or be framed by another site.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"
    ),
}


def init_app(app: Flask) -> None:
    """Register the dashboard: session cookie flags, CSRF for this blueprint only, the views."""
    settings = app.extensions["smsbot.settings"]
    if not app.config.get("SECRET_KEY"):
        # Fine for trying smsbot out; with several workers each would sign with its own key.
        app.config["SECRET_KEY"] = secrets.token_hex(32)
        log.warning("SMSBOT_SECRET_KEY is not set: dashboard sign-ins end when this process stops")
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),  # one shift
        WTF_CSRF_CHECK_DEFAULT=False,  # checked by this blueprint's before_request, nowhere else
        WTF_CSRF_TIME_LIMIT=None,  # a queue left open all shift must still acknowledge
    )
    csrf.init_app(app)
    app.register_blueprint(bp)


@bp.before_request
def require_csrf_and_staff() -> Response | None:
    """Every dashboard request: a CSRF check on POSTs, and a signed-in staff member in ``g.staff``."""
    if has_nul(request.args.values()) or has_nul(request.form.values()):
        abort(400, "A search or form value contains a NUL character.")
    csrf.protect()
    staff = signed_in_staff(request_session(), session)
    if staff is not None:
        g.staff = staff
        g.clinic_tz = _zone(staff.clinic.timezone)
        return None
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    target = request.full_path if request.query_string else request.path
    return redirect(url_for("dashboard.login", next=target if request.method == "GET" else None))


@bp.after_request
def security_headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


@bp.errorhandler(HTTPException)
def html_error(error: HTTPException) -> tuple[str, int]:
    status = error.code or 500
    if isinstance(error, CSRFError):
        message = (
            "This form has expired or did not come from the dashboard. "
            "Go back, reload the page and try again."
        )
    elif status == 404:
        message = "There is nothing here, or it belongs to another clinic."
    elif status >= 500:
        message = "Something went wrong on our side. Try again in a moment."
    else:
        message = error.description or error.name
    return render_template("dashboard/error.html", status=status, title=error.name, message=message), status


@bp.app_template_filter("clinic_time")
def clinic_time(value: datetime | None, fmt: str = "%d %b %Y %H:%M") -> str:
    """A stored naive-UTC time shown in the clinic's own time zone."""
    if value is None:
        return "—"
    zone = g.get("clinic_tz") or ZoneInfo("UTC")
    return value.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone).strftime(fmt)


bp.add_app_template_filter(mask_phone, "mask_phone")
bp.add_app_template_filter(display_phone, "display_phone")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(current_app.extensions["smsbot.settings"].default_timezone)


def _found(row: T | None) -> T:
    """404 for what is not the signed-in clinic's: another clinic's ids look like missing ones."""
    if row is None:
        abort(404)
    return row


def _safe_next(target: str | None) -> str:
    """Only follow ``next`` within the dashboard: never an open redirect to another site."""
    if target and target.startswith("/dashboard") and "//" not in target and "\\" not in target:
        return target
    return url_for(".alerts")


# Sign-in ----------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str:
    """Sign in with email and password; 5 wrong tries lock the account for 15 minutes."""
    if request.method == "GET":
        if "staff" in g:
            return redirect(url_for(".alerts"))
        return render_template("dashboard/login.html", email="")
    email = request.form.get("email", "")
    db, now = request_session(), utcnow()
    staff = authenticate(db, email, request.form.get("password", ""), now=now)
    if staff is None:
        audit.record(db, audit.LOGIN_FAILED, actor=email.strip(), now=now)
        db.commit()
        flash(
            f"Wrong email or password. After {MAX_FAILED_LOGINS} wrong tries an account is locked "
            f"for {LOCKOUT.seconds // 60} minutes.",
            "error",
        )
        return render_template("dashboard/login.html", email=email)
    audit.record(db, audit.LOGIN, actor=f"staff:{staff.email}", now=now, clinic_id=staff.clinic_id)
    db.commit()
    session.clear()  # a fresh session (and CSRF token) for the signed-in user: no fixation
    session.update(session_claims(staff))
    session.permanent = True
    return redirect(_safe_next(request.args.get("next")))


@bp.post("/logout")
def logout() -> Response:
    """Sign out on the server too: a copy of this cookie, or one on another device, stops working."""
    db = request_session()
    clinics.end_sessions(db, g.staff)
    db.commit()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for(".login"))


# Alerts -----------------------------------------------------------------------------------


@bp.get("/")
def alerts() -> str:
    """The landing page: who needs a call now."""
    queue = queries.open_alerts(request_session(), g.staff.clinic_id)
    return render_template("dashboard/alerts.html", alerts=queue, max_note=NOTE_MAX_CHARS)


@bp.get("/alerts/history")
def alert_history() -> str:
    history = queries.acknowledged_alerts(request_session(), g.staff.clinic_id)
    return render_template("dashboard/history.html", alerts=history)


@bp.get(f"/alerts/<int(max={MAX_ID}):alert_id>")
def alert(alert_id: int) -> str:
    """One alert, opened from the on-call SMS or webhook link: who to call, what they said, why."""
    db = request_session()
    row = _found(queries.find_alert_row(db, g.staff.clinic_id, alert_id))
    _record_view(row.alert.family_id, page="alert", alert_id=alert_id)  # it shows the number to call
    message = row.alert.message
    story = None
    if row.enrollment is not None:
        story = episodes.covering(_stories(row.enrollment), row.alert.created_at)
    return render_template(
        "dashboard/alert.html",
        row=row,
        story=story,
        reasons=_rule_reasons(message.flags if message is not None else [], row.alert.level),
        deliveries=queries.alert_deliveries(db, row.alert),
        timeline=timeline.entries(db, row.alert.id),
        max_note=NOTE_MAX_CHARS,
    )


def _clinic_texts() -> ClinicTexts:
    return load_clinic_texts(current_app.extensions["smsbot.settings"].rules_path)


def _rule_reasons(flags: list[str], level: str) -> list[tuple[str, str]]:
    """(rule id, why it matters) for each triage rule that put the text at the alert's level."""
    rules = {rule.id: rule for rule in load_rules(current_app.extensions["smsbot.settings"].rules_path).rules}
    reasons = []
    for flag in flags:
        if flag == CHECKIN_WORSE:
            reasons.append((flag, "The parent answered a check-in with “worse”."))
        elif (rule := rules.get(flag)) is not None and rule.level == level:
            reasons.append((flag, rule.reason.get("en") or f"Matched the {level} rule {flag}."))
    return reasons


@bp.post(f"/alerts/<int(max={MAX_ID}):alert_id>/acknowledge")
def acknowledge(alert_id: int) -> Response:
    """Acknowledge with a note saying what was done: the history is the clinic's record.

    Back to the queue, or to the alert's own page when it was acknowledged there.
    """
    db = request_session()
    alert = _found(queries.find_alert_row(db, g.staff.clinic_id, alert_id)).alert
    from_page = request.form.get("from") == "alert"
    back = url_for(".alert", alert_id=alert_id) if from_page else url_for(".alerts")
    note = request.form.get("note", "").strip()
    if not note or len(note) > NOTE_MAX_CHARS:
        flash(f"Write what was done (up to {NOTE_MAX_CHARS} characters) to acknowledge the alert.", "error")
        return redirect(back if from_page else url_for(".alerts", _anchor=f"alert-{alert_id}"))
    if acknowledge_alert(db, alert, by=g.staff.email, note=note, now=utcnow()):
        flash(f"Alert for {mask_phone(alert.family.phone)} acknowledged.", "success")
    else:
        db.refresh(alert)  # acknowledged by someone else meanwhile: say who
        flash(f"That alert was already acknowledged by {alert.acknowledged_by}.", "info")
    return redirect(back)


# Families ---------------------------------------------------------------------------------


@bp.get("/families")
def families() -> str:
    query = request.args.get("q", "")[:100]
    page = queries.search_families(
        request_session(), g.staff.clinic_id, query, request.args.get("page", 1, type=int)
    )
    return render_template("dashboard/families.html", page=page, query=query, languages=LANGUAGE_NAMES)


@bp.route("/families/new", methods=["GET", "POST"])
def new_family() -> Response | str | tuple[str, int]:
    """Enroll a family: the parent gets a text asking them to reply YES."""
    settings = current_app.extensions["smsbot.settings"]
    programmes = load_programmes(settings.rules_path)
    choices = sorted(programmes.programmes)
    if request.method == "GET":
        return _enroll_page({"programme": programmes.triggers["enrollment"]}, {}, choices)
    db = request_session()
    try:
        enrollment, created = enroll_from_form(
            db,
            g.staff.clinic,
            request.form,
            settings=settings,
            transport=current_app.extensions["smsbot.transport"],
            now=utcnow(),
        )
    except EnrollFormError as error:
        db.rollback()
        return _enroll_page(request.form, error.errors, choices), 400
    db.commit()
    phone = mask_phone(enrollment.family.phone)
    if created:
        flash(f"Enrolled {phone}: waiting for the parent to reply YES.", "success")
    else:
        flash(f"{phone} was already enrolled here: their details are updated.", "info")
    return redirect(url_for(".family", family_id=enrollment.family_id))


def _enroll_page(form: Mapping[str, str], errors: dict[str, str], programmes: list[str]) -> str:
    return render_template(
        "dashboard/enroll.html",
        form=form,
        errors=errors,
        labels=FIELD_LABELS,
        languages=LANGUAGE_NAMES,
        programmes=programmes,
    )


@bp.get(f"/families/<int(max={MAX_ID}):family_id>")
def family(family_id: int) -> str:
    """One family: the conversation, check-ins and how the answers have moved."""
    row = _found(queries.find_family(request_session(), g.staff.clinic_id, family_id))
    _record_view(row.family.id)
    return _family_page(row, revealed=False)


@bp.post(f"/families/<int(max={MAX_ID}):family_id>/phone")
def reveal_phone(family_id: int) -> str:
    """The family page with the full phone number shown: each reveal is in the audit."""
    row = _found(queries.find_family(request_session(), g.staff.clinic_id, family_id))
    _record(audit.PHONE_REVEAL, row.family.id)
    return _family_page(row, revealed=True)


@bp.get(f"/families/<int(max={MAX_ID}):family_id>/access")
def family_access(family_id: int) -> str:
    """Who saw this family's data at this clinic, and when: for the clinic's admins."""
    if not audit.can_read_audit(g.staff):
        abort(403)
    db = request_session()
    row = _found(queries.find_family(db, g.staff.clinic_id, family_id))
    entries = audit.family_entries(db, g.staff.clinic_id, row.family.id)
    return render_template("dashboard/access.html", row=row, entries=entries, actions=audit.ACTIONS)


def _record(action: str, family_id: int, **detail: object) -> None:
    """One audit line for what the signed-in staff member did with the family's data."""
    db = request_session()
    actor = f"staff:{g.staff.email}"
    audit.record(
        db, action, actor=actor, now=utcnow(), clinic_id=g.staff.clinic_id, family_id=family_id, **detail
    )
    db.commit()


def _record_view(family_id: int, page: str = "family", **detail: object) -> None:
    _record(audit.FAMILY_VIEW, family_id, page=page, **detail)


def _family_page(row: queries.FamilyRow, *, revealed: bool) -> str:
    db = request_session()
    upcoming, past = queries.upcoming_and_past_checkins(db, row.enrollment)
    answers = charts.answers_of(past)
    chart = charts.answers_chart(answers, label=f"Check-in answers for {mask_phone(row.family.phone)}")
    return render_template(
        "dashboard/family.html",
        row=row,
        revealed=revealed,
        can_read_audit=audit.can_read_audit(g.staff),
        stories=list(reversed(_stories(row.enrollment))),
        messages=queries.timeline(db, row.enrollment),
        upcoming=upcoming,
        past=past,
        chart=chart,
        answers=answers,
        tally=Counter(answer.outcome for answer in answers),
        languages=LANGUAGE_NAMES,
        quick_replies=[(name, label) for name, (label, _texts) in _clinic_texts().quick_replies.items()],
        open_alerts=inbox.open_alerts(db, row.enrollment),
    )


def _locked_family(family_id: int) -> queries.FamilyRow:
    """The clinic's family, its row locked first (``families.lock_family``), as a change needs."""
    db = request_session()
    row = _found(queries.find_family(db, g.staff.clinic_id, family_id))
    _found(lock_family(db, family_id))  # erased while this request waited for the lock
    db.refresh(row.enrollment)
    return row


@bp.post(f"/families/<int(max={MAX_ID}):family_id>/unenroll")
def unenroll(family_id: int) -> Response:
    """End the clinic's follow-up; the family can still text the bot for guidance."""
    db = request_session()
    row = _locked_family(family_id)
    if clinics.unenroll(db, row.enrollment, now=utcnow()):
        db.commit()
        flash(f"{mask_phone(row.family.phone)} is unenrolled; pending check-ins are cancelled.", "success")
    return redirect(url_for(".family", family_id=family_id))


@bp.post(f"/families/<int(max={MAX_ID}):family_id>/resume")
def resume(family_id: int) -> Response:
    """Resume automated messages held by the parent's sensitive news (the baby is home, or the
    news was a misreading): consented programmes start again from today."""
    db = request_session()
    row = _locked_family(family_id)
    settings = current_app.extensions["smsbot.settings"]
    if news.resume(db, settings, row.family, now=utcnow(), by=f"staff:{g.staff.email}"):
        db.commit()
        flash(f"Automated messages resumed for {mask_phone(row.family.phone)}.", "success")
    return redirect(url_for(".family", family_id=family_id))


# Episodes ---------------------------------------------------------------------------------


def _stories(enrollment: Enrollment) -> list[episodes.Story]:
    """The enrollment's episodes brought up to date, oldest first (a quiet close may be due)."""
    db = request_session()
    rules = load_rules(current_app.extensions["smsbot.settings"].rules_path)
    stories = episodes.stories_of(db, enrollment, rules, now=utcnow())
    db.commit()
    return stories


def _episode_story(family_id: int, episode_id: int) -> tuple[queries.FamilyRow, episodes.Story]:
    row = _found(queries.find_family(request_session(), g.staff.clinic_id, family_id))
    stories = [story for story in _stories(row.enrollment) if story.episode.id == episode_id]
    return row, _found(stories[0] if stories else None)


@bp.get(f"/families/<int(max={MAX_ID}):family_id>/episodes/<int(max={MAX_ID}):episode_id>")
def episode(family_id: int, episode_id: int) -> str:
    """One episode on one printable page: the levels over time, red flags and why, the alerts
    and who acknowledged them, and the timeline in plain words."""
    row, story = _episode_story(family_id, episode_id)
    _record_view(row.family.id, page="episode", episode_id=episode_id)
    chart = charts.levels_chart(
        [(report.at, report.level) for report in story.reports],
        label=f"Triage levels of the family's texts in this episode, {mask_phone(row.family.phone)}",
    )
    return render_template("dashboard/episode.html", row=row, story=story, chart=chart)


@bp.post(f"/families/<int(max={MAX_ID}):family_id>/episodes/<int(max={MAX_ID}):episode_id>/close")
def close_episode(family_id: int, episode_id: int) -> Response:
    """Close the episode: the family's next report opens a new one."""
    _, story = _episode_story(family_id, episode_id)
    db = request_session()
    if episodes.close_by_staff(db, story.episode, by=f"staff:{g.staff.email}", now=utcnow()):
        db.commit()
        flash("Episode closed. The family's next report opens a new one.", "success")
    return redirect(url_for(".episode", family_id=family_id, episode_id=episode_id))


# Overview ---------------------------------------------------------------------------------


@bp.get("/overview")
def overview() -> str:
    counts = queries.overview(request_session(), g.staff.clinic_id, now=utcnow())
    level_chart = charts.bar_chart(
        [charts.Bar(level.capitalize(), n, level) for level, n in counts.messages_by_level.items()],
        label="Messages from families in the last 7 days, by level",
    )
    checkin_chart = charts.bar_chart(
        [charts.Bar(name.capitalize(), n, name) for name, n in counts.checkins.items()],
        label="Check-ins in the last 7 days",
    )
    return render_template(
        "dashboard/overview.html", counts=counts, level_chart=level_chart, checkin_chart=checkin_chart
    )
