"""Scheduling check-in programmes, answers and cancellation (no sending here)."""

from __future__ import annotations

import re
import threading
from datetime import date, datetime, timedelta

import pytest
import yaml
from sqlalchemy import event, update

from smsbot.checkins.programmes import FILENAME, check_file, load_programmes
from smsbot.checkins.schedule import (
    answer_open_checkin,
    cancel_pending,
    open_checkin,
    parse_answer,
    record_answer,
    schedule_after_decision,
    schedule_programme,
    start_enrollment,
)
from smsbot.models import CheckIn, Family
from tests.checkin_fixtures import (
    RULES_DIR,
    add_checkin,
    add_enrollment,
    add_family,
    all_checkins,
    checkin_database,
    make_settings,
)

db = pytest.fixture(checkin_database, name="db")


@pytest.fixture
def settings():
    return make_settings()


def pending_due_times(db) -> list[datetime]:
    return [c.due_at for c in all_checkins(db) if c.status == "pending"]


@pytest.mark.parametrize(
    ("zone", "utc_hour"),
    [("America/New_York", 15), ("America/Los_Angeles", 18), ("Europe/Madrid", 9)],
)
def test_routine_report_schedules_checkins_at_10_local_time(db, settings, zone, utc_hour):
    with db.session() as session:
        family = add_family(session, timezone=zone)
        schedule_after_decision(
            session, family, "routine", now=datetime(2026, 11, 27, 12, 0), settings=settings
        )

    day = date(2026, 11, 27)
    assert pending_due_times(db) == [
        datetime.combine(day + timedelta(days=n), datetime.min.time()).replace(hour=utc_hour)
        for n in (1, 3, 7)
    ]


@pytest.mark.parametrize(
    ("zone", "report", "expected"),
    [
        # New York leaves daylight saving on 1 Nov 2026: 10:00 is 14:00 UTC, then 15:00 UTC.
        ("America/New_York", datetime(2026, 10, 30, 16), [(10, 31, 14), (11, 2, 15), (11, 6, 15)]),
        # Madrid leaves it on 25 Oct 2026: 08:00 UTC, then 09:00 UTC.
        ("Europe/Madrid", datetime(2026, 10, 23, 12), [(10, 24, 8), (10, 26, 9), (10, 30, 9)]),
        # Spring forward in New York (8 Mar 2026): 15:00 UTC, then 14:00 UTC.
        ("America/New_York", datetime(2026, 3, 6, 16), [(3, 7, 15), (3, 9, 14), (3, 13, 14)]),
    ],
)
def test_daily_checkins_keep_the_local_hour_across_daylight_saving_changes(
    db, settings, zone, report, expected
):
    with db.session() as session:
        family = add_family(session, timezone=zone)
        schedule_after_decision(session, family, "routine", now=report, settings=settings)

    assert pending_due_times(db) == [datetime(report.year, month, day, hour) for month, day, hour in expected]


def test_hour_steps_are_elapsed_time_and_wait_for_the_morning(db, settings):
    with db.session() as session:
        family = add_family(session)  # New York, EST in November
        # 19:30 local: +2 h would be 21:30, in quiet hours → 09:00 next morning.
        schedule_after_decision(
            session, family, "urgent", now=datetime(2026, 11, 27, 0, 30), settings=settings
        )

    assert pending_due_times(db) == [
        datetime(2026, 11, 27, 14, 0),  # 09:00 EST
        datetime(2026, 11, 28, 0, 30),  # +24 h: 19:30 local, allowed
        datetime(2026, 11, 30, 0, 30),  # +72 h
    ]


def test_a_checkin_deferred_over_the_night_clocks_go_back_waits_for_9_local(db, settings):
    with db.session() as session:
        family = add_family(session)
        # 19:30 EDT on 31 Oct 2026; +2 h is 21:30, quiet; New York falls back at 02:00.
        run = schedule_after_decision(
            session, family, "urgent", now=datetime(2026, 10, 31, 23, 30), settings=settings
        )

    assert run[0].due_at == datetime(2026, 11, 1, 14)  # 09:00 EST, not 08:00


def test_time_zone_falls_back_to_the_clinic_then_the_deployment_default(db):
    settings = make_settings(default_timezone="Europe/Madrid")
    now = datetime(2026, 11, 27, 12)
    with db.session() as session:
        at_clinic = add_family(session, timezone=None)
        enrollment = add_enrollment(session, at_clinic, timezone="America/Los_Angeles")
        clinic_run = schedule_programme(
            session, at_clinic, "clinic_followup", start=now, enrollment=enrollment, settings=settings
        )
        alone = add_family(session, phone="+15550100002", timezone=None)
        default_run = schedule_programme(session, alone, "after_routine", start=now, settings=settings)

    assert clinic_run[0].due_at == datetime(2026, 11, 28, 18)  # 10:00 in Los Angeles
    assert default_run[0].due_at == datetime(2026, 11, 28, 9)  # 10:00 in Madrid


def test_scheduling_the_same_report_twice_creates_nothing_new(db, settings):
    now = datetime(2026, 11, 27, 15)
    with db.session() as session:
        family = add_family(session)
        first = schedule_after_decision(session, family, "routine", now=now, settings=settings)
        second = schedule_after_decision(
            session, family, "routine", now=now + timedelta(hours=1), settings=settings
        )

    assert [c.id for c in second] == [c.id for c in first]
    assert len(all_checkins(db)) == 3


def test_a_new_report_replaces_pending_followups_instead_of_piling_up(db, settings):
    monday = datetime(2026, 11, 23, 15)
    with db.session() as session:
        family = add_family(session)
        schedule_after_decision(session, family, "routine", now=monday, settings=settings)
        schedule_after_decision(session, family, "routine", now=monday + timedelta(days=2), settings=settings)

    statuses = [(c.status, c.due_at.day) for c in all_checkins(db)]
    assert statuses == [
        ("cancelled", 24),
        ("cancelled", 26),
        ("cancelled", 30),
        ("pending", 26),  # the new day 1 falls on the old day 3: same time, new report
        ("pending", 28),
        ("pending", 2),
    ]
    assert all_checkins(db)[0].last_error == "replaced by a newer report"


def test_a_report_never_cancels_a_checkin_that_a_dispatcher_sends_meanwhile(db, settings):
    now = datetime(2026, 11, 27, 15)
    with db.session() as session:
        family = add_family(session)
        add_checkin(session, family, due_at=now, dedupe_key="earlier-report")

    def dispatcher_sends() -> None:
        with db.session() as other:
            other.execute(
                update(CheckIn)
                .where(CheckIn.dedupe_key == "earlier-report", CheckIn.status == "pending")
                .values(status="sent", sent_at=now, provider_sid="SMsent")
            )

    dispatcher = threading.Thread(target=dispatcher_sends)
    webhook_statements = []

    def between_statements(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        # The dispatcher claims and sends between the webhook's first and second check-in
        # statements (it waits, at most 2 s, if the webhook holds a lock on the row).
        if threading.current_thread() is not dispatcher and "checkins" in statement:
            webhook_statements.append(statement)
            if len(webhook_statements) == 2:
                dispatcher.start()
                dispatcher.join(timeout=2)

    webhook = db.sessionmaker(autoflush=False)  # as the inbound pipeline's session
    event.listen(db.engine, "before_cursor_execute", between_statements)
    try:
        schedule_after_decision(
            webhook, webhook.get(Family, family.id), "routine", now=now, settings=settings
        )
        webhook.commit()
    finally:
        event.remove(db.engine, "before_cursor_execute", between_statements)
        webhook.close()
        dispatcher.join()

    [row] = [c for c in all_checkins(db) if c.dedupe_key == "earlier-report"]
    # Either the report replaced it before it went out, or it went out and stays sent.
    assert (row.status, row.provider_sid) in {("cancelled", None), ("sent", "SMsent")}
    assert len(webhook_statements) >= 2


def test_info_schedules_nothing_and_emergency_checks_back_within_the_hour(db, settings):
    now = datetime(2026, 11, 27, 15)
    with db.session() as session:
        family = add_family(session)
        assert schedule_after_decision(session, family, "info", now=now, settings=settings) == []
        emergency = schedule_after_decision(session, family, "emergency", now=now, settings=settings)

    assert [(c.programme, c.due_at - now) for c in emergency] == [
        ("after_emergency", timedelta(hours=1)),
        ("after_emergency", timedelta(hours=24)),
    ]


def test_birth_date_programme_skips_the_days_already_past(db, settings):
    with db.session() as session:
        family = add_family(session, baby_birth_date=date(2026, 9, 20))
        enrollment = add_enrollment(session, family)
        run = schedule_programme(
            session,
            family,
            "clinic_by_age",
            start=datetime(2026, 11, 27, 15),
            enrollment=enrollment,
            settings=settings,
        )

    # Day 60 of life (19 Nov) is past; days 90 and 120 remain, at 10:00 New York time.
    assert [(c.step, c.due_at) for c in run] == [
        (2, datetime(2026, 12, 19, 15)),
        (3, datetime(2027, 1, 18, 15)),
    ]


def test_stop_cancels_every_pending_checkin_and_unenroll_only_that_clinics(db, settings):
    now = datetime(2026, 11, 27, 15)
    with db.session() as session:
        family = add_family(session)
        enrollment = add_enrollment(session, family)
        schedule_programme(
            session, family, "clinic_followup", start=now, enrollment=enrollment, settings=settings
        )
        schedule_after_decision(session, family, "routine", now=now, settings=settings)
        assert cancel_pending(session, family, enrollment=enrollment, reason="unenrolled") == 5
        assert cancel_pending(session, family, reason="STOP") == 3

    assert {c.status for c in all_checkins(db)} == {"cancelled"}
    assert [c.last_error for c in all_checkins(db)].count("STOP") == 3


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        ("1", "better"),
        ("2.", "same"),
        (" Better!", "better"),
        ("peor", "worse"),
        ("3 worse", "worse"),
        ("IGUAL 👍", "same"),
        ("está mejor", "better"),
        ("not better", None),
        ("3 better", None),
        ("he is better but shakes when crying", None),
        ("", None),
    ],
)
def test_parse_answer_accepts_only_whole_short_answers(text, outcome):
    assert parse_answer(text, rules_dir=RULES_DIR) == outcome


def test_an_answer_is_recorded_on_the_open_checkin(db, settings):
    now = datetime(2026, 11, 27, 15)
    with db.session() as session:
        family = add_family(session)
        first, second, _ = schedule_after_decision(session, family, "routine", now=now, settings=settings)
        first.status, first.sent_at = "sent", now + timedelta(days=1)
        second.status, second.sent_at = "sent", now + timedelta(days=3)
        assert open_checkin(session, family, now + timedelta(days=6)) is None  # 72 h later: too old
        checkin = open_checkin(session, family, now + timedelta(days=3, hours=2))
        assert checkin is second
        record_answer(session, checkin, "better", now=now + timedelta(days=3, hours=2))
        assert open_checkin(session, family, now + timedelta(days=3, hours=3)) is None

    answered = all_checkins(db)[1]
    assert (answered.status, answered.outcome, answered.answered_at) == (
        "answered",
        "better",
        now + timedelta(days=3, hours=2),
    )


def test_shipped_checkins_file_is_valid_and_every_programme_is_reachable():
    data = yaml.safe_load((RULES_DIR / FILENAME).read_text(encoding="utf-8"))
    assert check_file(RULES_DIR / FILENAME, data) == []
    programmes = load_programmes(RULES_DIR)
    assert set(programmes.triggers.values()) < set(programmes.programmes)


def test_invalid_checkins_file_names_the_file_line_programme_field_and_reason():
    data = yaml.safe_load((RULES_DIR / FILENAME).read_text(encoding="utf-8"))
    data["programmes"][0]["steps"][0]["text"] = {"en": "How is {babe}?"}
    data["programmes"][1]["steps"][0]["hours"] = True  # a bare "yes" in YAML
    data["programmes"][2]["colour"] = "blue"

    errors = [str(error) for error in check_file(RULES_DIR / FILENAME, data)]

    assert [re.sub(r":\d+:", ":N:", error) for error in errors] == [
        f"{RULES_DIR / FILENAME}:N: after_routine: steps.0.text.en: unknown placeholder {{babe}}",
        f"{RULES_DIR / FILENAME}:N: after_routine: steps.0.text.es: required",
        f"{RULES_DIR / FILENAME}:N: after_urgent: steps.0.hours: must be a number",
        f"{RULES_DIR / FILENAME}:N: after_emergency: colour: unknown field",
    ]


def test_checkins_file_problems_that_need_the_whole_file_name_the_field():
    data = yaml.safe_load((RULES_DIR / FILENAME).read_text(encoding="utf-8"))
    data["triggers"]["urgent"] = "after_urgnet"
    data["answers"]["worse"].append("Better!")
    data["programmes"].append({**data["programmes"][0]})

    errors = [str(error) for error in check_file(RULES_DIR / FILENAME, data)]

    assert [re.sub(r":\d+:", ":N:", error) for error in errors] == [
        f"{RULES_DIR / FILENAME}:N: after_routine: duplicate programme id",
        f"{RULES_DIR / FILENAME}:N: triggers.urgent: unknown programme 'after_urgnet'",
        f"{RULES_DIR / FILENAME}:N: answers.worse: 'Better!' is also listed under better",
    ]


def test_steps_out_of_order_are_named_by_their_number():
    data = yaml.safe_load((RULES_DIR / FILENAME).read_text(encoding="utf-8"))
    data["programmes"][0]["steps"][1]["day"] = 0  # before step 1

    [error] = check_file(RULES_DIR / FILENAME, data)

    assert (error.rule_id, error.reason) == ("after_routine", "step 2: must come after the step before it")


def test_checkin_rows_start_pending_with_a_readable_dedupe_key(db, settings):
    with db.session() as session:
        family = add_family(session)
        schedule_after_decision(session, family, "routine", now=datetime(2026, 11, 27, 15), settings=settings)

    first: CheckIn = all_checkins(db)[0]
    assert (first.status, first.attempts, first.dedupe_key) == (
        "pending",
        0,
        "1:after_routine:0:20261128T1500:1",
    )


def send_first_checkin(session, family, settings) -> CheckIn:
    """Schedule the routine programme and mark its first check-in sent at its due time."""
    first = schedule_after_decision(
        session, family, "routine", now=datetime(2026, 11, 27, 15), settings=settings
    )[0]
    first.status, first.sent_at = "sent", first.due_at
    return first


@pytest.mark.parametrize(
    ("text", "level", "outcome", "reply_start"),
    [
        ("2", "info", "same", "Thank you. Keep observing"),
        ("Better!", "info", "better", "Thank you, glad to hear it. Keep watching Ana"),
        ("3 worse", "info", "worse", "Please call your baby's doctor today"),
        ("he turned blue this morning", "emergency", "worse", "Please call your baby's doctor today"),
        ("she shakes a bit when crying", "routine", "text", None),
    ],
)
def test_a_reply_to_an_open_checkin_is_recorded_with_its_outcome(
    db, settings, text, level, outcome, reply_start
):
    with db.session() as session:
        family = add_family(session)
        first = send_first_checkin(session, family, settings)
        answer = answer_open_checkin(
            session, family, text, level, now=first.due_at + timedelta(hours=1), settings=settings
        )

    assert answer is not None and answer.checkin.id == first.id
    assert (answer.outcome, first.status, first.outcome) == (outcome, "answered", outcome)
    assert answer.reply == reply_start or answer.reply.startswith(reply_start)


def test_a_message_without_an_open_checkin_is_not_an_answer(db, settings):
    with db.session() as session:
        family = add_family(session)
        assert (
            answer_open_checkin(
                session, family, "2", "info", now=datetime(2026, 11, 27, 16), settings=settings
            )
            is None
        )


def test_a_consented_enrollment_starts_the_clinic_programme_from_consent(db, settings):
    consented = datetime(2026, 11, 27, 15)
    with db.session() as session:
        enrollment = add_enrollment(session, add_family(session), status="active")
        enrollment.programme = None  # no choice made by the clinic: the default from checkins.yaml
        run = start_enrollment(session, enrollment, now=consented, settings=settings)

    assert {c.programme for c in run} == {"clinic_followup"}
    assert [(c.due_at - consented).days for c in run] == [1, 3, 7, 14, 28]
    assert all(c.enrollment_id == enrollment.id for c in run)
