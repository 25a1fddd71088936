"""Responding to one stored text: keywords → triage (with the family's recent texts) →
check-in answer → reply and actions.

Plain functions over the models (no Flask, no transport): ``process`` decides the reply and
writes what the text sets off (opt-out, check-in answer, alerts, sensitive news, follow-up
check-ins) into the caller's session; ``inbound.py`` stores the text and commits the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from smsbot import alerts, checkins, clinics, families
from smsbot.checkins.programmes import load_programmes
from smsbot.config import Settings
from smsbot.conversation import news
from smsbot.conversation.keywords import HOW_TO_STOP, Keywords, load_keywords, squash
from smsbot.conversation.recent import Recent, recent
from smsbot.messaging.segments import count_segments
from smsbot.models import Enrollment, Event, Family, Message
from smsbot.triage import RuleSet, assess, load_rules, severity
from smsbot.triage.classifier import shipped_classifier
from smsbot.triage.engine import Decision, engine_for
from smsbot.triage.replies import reason_line, render_reply
from smsbot.vocabulary import DEFAULT_LANG, MAX_SEGMENTS, highest

FLOOD_WINDOW = timedelta(minutes=1)  # texts counted for the flood limit
CHECKIN_WORSE = "checkin-worse"  # the flag of a text made urgent by a "worse" check-in answer


@dataclass
class Outcome:
    """What we answer: ``reply`` None means an empty TwiML response (no message)."""

    reply: str | None
    level: str | None = None
    flags: tuple[str, ...] = field(default_factory=tuple)
    duplicate: bool = False
    paged: bool = False  # raised an alert for a clinic: its on-call should hear now
    queued: bool = False  # follow-ups left in the outbox (``smsbot.outbox``) for after the reply
    erased_replay: bool = False  # a replay of a text whose family was erased since: ignored
    reply_id: int | None = None  # the stored reply, when the caller sends it by REST


def prepare(settings: Settings) -> None:
    """Load and compile the rule files and the classifier the pipeline reads, once, before the first text.

    They are cached per process; under gunicorn (``preload_app``) this runs in the master,
    so every forked worker starts warm instead of each thread parsing YAML and building the
    triage engine at once on its first message, while Twilio waits.
    """
    _keywords, ruleset = rulebook(settings)
    engine_for(ruleset)
    shipped_classifier()
    load_programmes(settings.rules_path)


@lru_cache(maxsize=8)
def rulebook(settings: Settings) -> tuple[Keywords, RuleSet]:
    """The keyword list and triage rules of ``settings``' rules directory.

    Looked up once per settings: finding the directory stats the file system, and this
    runs for every message.
    """
    return load_keywords(settings.rules_path), load_rules(settings.rules_path)


_RECENT_INBOUND = select(func.count(Message.id)).where(
    Message.family_id == bindparam("family"),
    Message.direction == "in",
    Message.created_at > bindparam("since"),
)


def process(session: Session, settings: Settings, message: Message, num_media: int, now: datetime) -> Outcome:
    """Decide the reply and actions for one stored inbound message.

    ``message.family`` is the row ``_lock_family`` locked, which also recorded the contact.
    """
    family = message.family
    text = (message.body or "").strip()
    keywords = rulebook(settings)[0]

    keyword = keywords.match(text)
    if keyword is not None:
        message.kind = "keyword"
        message.lang = keyword.lang
        start = keyword.action == "start"
        earlier = recent(session, message.family_id, now, before=message.id) if start else None
        return _handle_keyword(session, settings, family, keyword.action, keyword.lang, now, earlier=earlier)

    if not text:
        lang = family.language
        name = "media" if num_media else "empty"
        return Outcome(reply=None if family.opted_out else service_reply(settings, name, lang), level="info")

    earlier = recent(session, message.family_id, now, before=message.id)
    decision, follow_up = _triage(settings, text, family, earlier, now)
    message.level, message.flags, message.lang = decision.level, list(decision.flags), decision.lang
    message.rules_version, message.model_version = decision.rules_version, decision.model_version
    note_decision(family, decision.level, decision.lang)

    answered = checkins.answer_open_checkin(session, family, text, decision.level, now=now, settings=settings)
    if answered is not None:
        message.kind, message.checkin_id = "answer", answered.checkin.id

    level = decision.level
    worse = answered is not None and answered.outcome == "worse"
    if worse and severity(level) < severity("urgent"):
        # "Worse" on a check-in means same-day care even when the words alone look mild.
        level = "urgent"
        decision = replace(decision, level=level, flags=(*decision.flags, CHECKIN_WORSE))
        message.level, message.flags = level, list(decision.flags)

    paged = raise_alerts(session, settings, family, message, reason="worse" if worse else level, now=now)
    reported = news.news_in(decision)
    changed = reported is not None and news.record(
        session, settings, family, reported, message=message, now=now
    )

    request = keywords.plain_opt_out(text)
    if request is not None and request.action == "stop":
        # STOP in plain words, honoured after the alerts above reached the clinics that
        # follow the family now.
        message.kind = "keyword"
        stop = _handle_keyword(session, settings, family, "stop", request.lang, now, plain=True)
        return Outcome(reply=stop.reply, level=level, flags=decision.flags, paged=paged)
    if not family.opted_out:
        checkins.schedule_after_decision(session, family, level, now=now, settings=settings)

    if family.opted_out:
        # They said STOP: we still triage and alert their clinic, but send nothing.
        return Outcome(reply=None, level=level, flags=decision.flags, paged=paged)
    if level != "emergency" and _flooding(session, settings, family, now):
        # Stored, triaged and alerted like any other text; only the reply is held back,
        # and never for an emergency.
        return Outcome(reply=None, level=level, flags=decision.flags, paged=paged)
    reply = _reply(
        settings,
        text,
        family,
        decision,
        earlier,
        follow_up=follow_up,
        answered=answered,
        reported=reported,
        changed=changed,
        stop_request=request is not None,
    )
    return Outcome(reply=reply, level=level, flags=decision.flags, paged=paged)


@dataclass(frozen=True)
class Decided:
    """A text answered from reads alone: its triage and its reply (None: held back)."""

    decision: Decision
    reply: str | None


def decide(
    settings: Settings, family: Family, text: str, earlier: Recent | None, *, flooding: bool, now: datetime
) -> Decided | None:
    """The triage and reply of a text whose reply depends on no write, else None.

    That is nearly every text: a symptom report or a question, with no check-in awaiting
    its answer (the caller knows). Keywords, empty texts, plain-word opt-outs and sensitive
    news change the family as they are answered: None sends them through ``process``.
    ``family`` gets the decision's language and level in memory (``note_decision``): the
    caller writes them with the follow-ups. As in ``process``, a family that opted out is
    triaged (its clinics still get the alerts) and answered with nothing.
    """
    keywords, _ruleset = rulebook(settings)
    text = text.strip()
    if not text or keywords.match(text) is not None:
        return None
    if keywords.plain_opt_out(text) is not None:
        return None
    decision, follow_up = _triage(settings, text, family, earlier, now)
    if news.news_in(decision) is not None:
        return None
    note_decision(family, decision.level, decision.lang)
    if family.opted_out:
        return Decided(decision, None)
    if decision.level != "emergency" and flooding:
        return Decided(decision, None)
    reply = _reply(settings, text, family, decision, earlier, follow_up=follow_up)
    return Decided(decision, reply)


def note_decision(family: Family, level: str, lang: str) -> None:
    """The family's language (what its latest text says) and latest level."""
    if level != "info" or lang != DEFAULT_LANG:
        family.language = lang
    family.last_level = level


def raise_alerts(
    session: Session, settings: Settings, family: Family, message: Message, *, reason: str, now: datetime
) -> bool:
    """Alerts for a red-flag text; whether a clinic is paged (its on-call should hear now)."""
    if message.level not in ("emergency", "urgent"):
        return False
    raised = alerts.raise_alert(
        session, settings, family, level=message.level, reason=reason, message=message, now=now
    )
    return any(alert.clinic_id is not None for alert in raised)


def _reply(
    settings: Settings,
    text: str,
    family: Family,
    decision: Decision,
    earlier: Recent | None,
    *,
    follow_up: bool,
    answered: checkins.Answer | None = None,
    reported: str | None = None,
    changed: bool = False,
    stop_request: bool = False,
) -> str | None:
    """The reply to a triaged text, once what it set off is known."""
    keywords, ruleset = rulebook(settings)
    level = decision.level
    if (news_reply := news.reply_name(level, reported, resumed=changed)) is not None:
        # A loss or a hospital stay is not a symptom report: never the greeting, nor jitters
        # advice. A red flag reported with it is answered at its level, with the number.
        return service_reply(settings, news_reply, decision.lang)
    if stop_request and level == "info":
        # Talks about stopping the messages without clearly asking: say how.
        return service_reply(settings, HOW_TO_STOP, decision.lang)
    if (acked := _acknowledgement(keywords, text, decision, answered)) is not None:
        return _ack_reply(settings, keywords, earlier, acked, family)
    if answered is None and level == "info" and checkins.parse_answer(text, rules_dir=settings.rules_path):
        # "1", "2" or "3" with no check-in waiting for it: say so, and ask what they see.
        return service_reply(settings, "no_checkin", _reply_lang(decision.lang, family))
    if answered is not None and answered.reply and level in ("info", "routine"):
        return answered.reply
    if follow_up and earlier is not None and level == earlier.level:
        return _still_reply(settings, ruleset, decision, earlier)
    return render_reply(
        decision, emergency_number=settings.emergency_number, rules=ruleset, baby_name=family.baby_name
    )


def _triage(
    settings: Settings, text: str, family: Family, earlier: Recent | None, now: datetime
) -> tuple[Decision, bool]:
    """The decision for ``text``, and whether it was read as a follow-up of ``earlier``.

    A text that adds detail to a report of the last half hour ("it's 100.6", "she's fine
    now") is triaged together with it, and never below the level already told. An
    acknowledgement, a question ("is this a seizure?"), a check-in answer ("2"), the same
    text again, or news (a loss, a hospital stay: never answered as a symptom follow-up) is
    read alone.
    """
    keywords, ruleset = rulebook(settings)
    age = _baby_age_days(family, now)
    alone = assess(text, baby_age_days=age, rules=ruleset)
    if (
        earlier is None
        or keywords.acknowledgement(text) is not None
        or _question(alone, ruleset)
        or _said_before(text, earlier)
        or checkins.parse_answer(text, rules_dir=settings.rules_path) is not None
        or news.news_in(alone) is not None
    ):
        return alone, False
    together = assess(earlier.with_text(text), baby_age_days=age, rules=ruleset)
    level = highest([alone.level, together.level, earlier.level])
    if level == "info":
        return alone, False
    flags = (*together.flags, *(flag for flag in alone.flags if flag not in together.flags))
    # News is told once: an earlier text's hospital stay is not news again in this one.
    flags = tuple(flag for flag in flags if flag not in news.FLAGS or flag in alone.flags)
    return replace(together, level=level, flags=flags), True


def _said_before(text: str, earlier: Recent) -> bool:
    """The same text again (sent twice, or resent for want of an answer): answered in full again."""
    return squash(text) in {squash(before) for before in earlier.texts}


def _question(decision: Decision, ruleset: RuleSet) -> bool:
    """A text that asks one of the questions ``rules/`` answers, and reports no symptom."""
    return decision.level == "info" and any(topic.id in decision.flags for topic in ruleset.topics)


def _acknowledgement(
    keywords: Keywords, text: str, decision: Decision, answered: checkins.Answer | None
) -> str | None:
    """The language of a text that only says thanks or OK (not a check-in's better/same/worse)."""
    if decision.level != "info" or (answered is not None and answered.outcome != "text"):
        return None
    return keywords.acknowledgement(text)


def _ack_reply(
    settings: Settings, keywords: Keywords, earlier: Recent | None, lang: str, family: Family
) -> str | None:
    """One short line: what to do, after an emergency or urgent reply; nothing after a second thanks."""
    if earlier is not None and earlier.texts and keywords.acknowledgement(earlier.texts[-1]) is not None:
        return None
    name = {"emergency": "ack_emergency", "urgent": "ack_urgent"}.get(earlier.level if earlier else "", "ack")
    return service_reply(settings, name, _reply_lang(lang, family))


def _still_reply(settings: Settings, ruleset: RuleSet, decision: Decision, earlier: Recent) -> str:
    """A follow-up that keeps the level: only a new red flag's line, then the same advice."""
    new = replace(decision, flags=tuple(flag for flag in decision.flags if flag not in earlier.flags))
    name = f"still_{decision.level}"
    text = service_reply(settings, name, decision.lang, reason=reason_line(new, ruleset))
    if count_segments(text) > MAX_SEGMENTS:
        text = service_reply(settings, name, decision.lang)
    return text


def _reply_lang(detected: str, family: Family) -> str:
    """A short text ("ok", "1") says little about its language: the family's, unless it says more."""
    return detected if detected != DEFAULT_LANG else family.language or DEFAULT_LANG


def _handle_keyword(
    session: Session,
    settings: Settings,
    family: Family,
    action: str,
    lang: str,
    now: datetime,
    *,
    plain: bool = False,
    earlier: Recent | None = None,
) -> Outcome:
    """STOP, START or HELP; ``plain``: a STOP in plain words, which Twilio does not answer.

    A YES from a family that never opted out and had no consent request pending answers
    something else (a check-in's "were you able to get help?"): it gets the short line an
    acknowledgement gets, not "you are subscribed again". ``earlier``: the family's recent texts.
    """
    if action != "start" and family.opted_out:
        # Opted out means no message of any kind: not even a second STOP confirmation or a
        # HELP text. (Twilio would refuse to deliver them too.) START is the way back.
        return Outcome(reply=None, level="info")
    consented: Enrollment | None = None
    resumed = family.opted_out
    if action == "stop":
        families.opt_out(session, family, now=now, source="plain_words" if plain else "keyword")
    elif action == "start":
        family.opted_out_at = None
        session.add(Event(family_id=family.id, kind="opted_in", detail={}, created_at=now))
        # A YES answers the clinic consent request it replies to (after STOP, none is pending).
        consented = clinics.answer_consent(session, family, now=now, settings=settings)
    family.language = lang
    if settings.twilio_advanced_opt_out and not plain:
        return Outcome(reply=None, level="info")  # Twilio has already answered the keyword
    if consented is not None:
        return Outcome(reply=clinics.consent_confirmation(consented, lang, settings), level="info")
    if action == "start" and not resumed:
        return Outcome(reply=_ack_reply(settings, rulebook(settings)[0], earlier, lang, family), level="info")
    return Outcome(reply=service_reply(settings, action, lang), level="info")


def _flooding(session: Session, settings: Settings, family: Family, now: datetime) -> bool:
    """More texts from this family in the last minute than anyone writes by hand."""
    recent = session.scalar(_RECENT_INBOUND, {"family": family.id, "since": now - FLOOD_WINDOW})
    return recent > settings.flood_messages_per_minute


def service_reply(settings: Settings, name: str, lang: str, **values: str) -> str:
    return rulebook(settings)[0].reply(name, lang, emergency_number=settings.emergency_number, **values)


def _baby_age_days(family: Family, now: datetime) -> int | None:
    if family.baby_birth_date is None:
        return None
    return max((now.date() - family.baby_birth_date).days, 0)
