"""What happened in one episode, read from the stored rows: the clinician's one-screen story.

Only what the episode's clinic may read (its own enrollment's texts and check-ins, its own
alerts), over the episode's span. The flags carry the reason their rule gives (from
``rules/``), so the summary says why a text was flagged, not only which rule fired.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from smsbot.clinics.queries import family_checkins, family_messages
from smsbot.conversation import CHECKIN_WORSE
from smsbot.episodes.tracking import CLOSED_BY_STAFF, is_report, refresh
from smsbot.models import Alert, CheckIn, Enrollment, Episode, Message
from smsbot.triage import RuleSet, highest

STAFF_KIND = "staff"  # an outbound text a staff member wrote to the family


@dataclass(frozen=True)
class Flag:
    """A rule that fired on a text, and why it matters (the rule's own reason)."""

    rule_id: str
    reason: str


@dataclass(frozen=True)
class Report:
    """A text from the family, triaged: when, at what level, and the red flags behind it."""

    message: Message
    flags: tuple[Flag, ...]

    @property
    def at(self) -> datetime:
        return self.message.created_at

    @property
    def level(self) -> str:
        return self.message.level or "info"


@dataclass(frozen=True)
class Entry:
    """One line of the plain-language timeline."""

    at: datetime
    tone: str  # a level, an outcome, or "note": the CSS tone it is shown in
    text: str


@dataclass(frozen=True)
class Story:
    episode: Episode
    reports: list[Report]  # the family's texts, levels over time
    replies: list[Message]  # what smsbot texted back
    staff_messages: list[Message]
    answers: list[CheckIn]  # check-ins answered within the episode
    alerts: list[Alert]
    until: datetime  # the episode's close, or now while it is open

    @property
    def highest_level(self) -> str:
        return highest([report.level for report in self.reports])

    @property
    def timeline(self) -> list[Entry]:
        return timeline(self)


def flags_of(flags: list[str], rules: RuleSet) -> tuple[Flag, ...]:
    """Each flag with the reason for it, in the order triage gave them."""
    by_id = {rule.id: rule for rule in rules.rules}
    found = []
    for flag in flags:
        if flag == CHECKIN_WORSE:
            found.append(Flag(flag, "The parent answered a check-in with “worse”."))
        elif flag.startswith("model:"):
            _, level, probability = flag.split(":", 2)
            found.append(
                Flag(flag, f"The learned second opinion raised the text to {level} ({probability}).")
            )
        elif (rule := by_id.get(flag)) is not None:  # not an FAQ topic (those name no rule)
            reason = rule.reason.get("en") or next(iter(rule.reason.values()), None)
            found.append(Flag(flag, reason or f"Matched the {rule.level} rule {flag}."))
    return tuple(found)


def story_of(session: Session, episode: Episode, rules: RuleSet, *, now: datetime) -> Story:
    """Everything the episode's clinic may read between its opening and its close (or now)."""
    enrollment = episode.enrollment
    until = episode.closed_at or now
    messages = session.scalars(
        family_messages(enrollment)
        .where(Message.created_at >= episode.opened_at, Message.created_at <= until)
        .order_by(Message.created_at, Message.id)
    ).all()
    answers = session.scalars(
        family_checkins(enrollment)
        .where(CheckIn.answered_at >= episode.opened_at, CheckIn.answered_at <= until)
        .order_by(CheckIn.answered_at, CheckIn.id)
    ).all()
    alerts = session.scalars(
        select(Alert)
        .where(
            Alert.clinic_id == episode.clinic_id,
            Alert.family_id == episode.family_id,
            Alert.created_at >= episode.opened_at,
            Alert.created_at <= until,
        )
        .order_by(Alert.created_at, Alert.id)
    ).all()
    return Story(
        episode=episode,
        reports=[
            Report(m, flags_of(m.flags or [], rules)) for m in messages if m.direction == "in" and m.level
        ],
        replies=[m for m in messages if m.direction == "out" and m.kind != STAFF_KIND],
        staff_messages=[m for m in messages if m.direction == "out" and m.kind == STAFF_KIND],
        answers=list(answers),
        alerts=list(alerts),
        until=until,
    )


def stories_of(session: Session, enrollment: Enrollment, rules: RuleSet, *, now: datetime) -> list[Story]:
    """The enrollment's episodes brought up to date (``refresh``), oldest first, with their stories."""
    return [story_of(session, episode, rules, now=now) for episode in refresh(session, enrollment, now=now)]


def covering(stories: list[Story], moment: datetime) -> Story | None:
    """The story of the episode under way at ``moment`` (an alert's), if any."""
    for story in stories:
        if story.episode.opened_at <= moment <= story.until:
            return story
    return None


def timeline(story: Story) -> list[Entry]:
    """The episode in plain words, oldest first: what the parent said, what was done."""
    entries = []
    for report in story.reports:
        if is_report(report.message):
            said = f"The family texted; triage read it as {report.level}."
            if report.flags:
                said += " " + " ".join(flag.reason for flag in report.flags)
        else:
            said = "The family texted (no symptom reported)."
        entries.append(Entry(report.at, report.level, said))
    for reply in story.replies:
        entries.append(Entry(reply.created_at, "note", f"smsbot replied ({reply.kind}, {reply.status})."))
    for message in story.staff_messages:
        entries.append(Entry(message.created_at, "note", "Staff texted the family."))
    for checkin in story.answers:
        at = checkin.answered_at or checkin.due_at  # answered_at is set: selected by it
        entries.append(Entry(at, checkin.outcome or "note", f"Check-in answered: {checkin.outcome}."))
    for alert in story.alerts:
        why = alert.level if alert.reason == alert.level else f"{alert.level}: {alert.reason}"
        entries.append(Entry(alert.created_at, alert.level, f"The clinic was alerted ({why})."))
        if alert.acknowledged_at is not None:
            note = f": {alert.ack_note}" if alert.ack_note else "."
            entries.append(
                Entry(alert.acknowledged_at, "note", f"{alert.acknowledged_by} acknowledged the alert{note}")
            )
    episode = story.episode
    if episode.closed_at is not None:
        if episode.close_reason == CLOSED_BY_STAFF:
            closed = f"{episode.closed_by} closed the episode."
        else:
            closed = "The episode closed: no text from the family for the clinic's quiet days."
        entries.append(Entry(episode.closed_at, "note", closed))
    return sorted(entries, key=lambda entry: entry.at)
