"""Sensitive news from a parent: a baby admitted to hospital, or a baby who has died.

Triage recognises it (``rules/news.yaml``: info-level rules that never change a level, so a
red flag in the same text is still triaged at its own level); this module decides what it
does to the family's automated messages and tells the family's clinics. A loss ends them; a
hospital stay pauses them until the parent texts that the baby is home, or staff resume
them from the API or the dashboard. Either way the clinics get a notice in their alerts
queue, never a page.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from smsbot import alerts, checkins
from smsbot.config import Settings
from smsbot.models import Enrollment, Event, Family, Message
from smsbot.phones import mask_phone
from smsbot.triage import Decision

log = logging.getLogger(__name__)

LOSS, HOSPITAL, HOME = "loss", "hospital", "home"
# The triage rule ids (rules/news.yaml) and the news each stands for, most serious first.
FLAGS = {"news-loss": LOSS, "news-hospital": HOSPITAL, "news-home": HOME}
# The parent's reply for each, in rules/keywords.yaml.
REPLIES = {LOSS: "news_loss", HOSPITAL: "news_hospital", HOME: "news_home"}
_WHY = {LOSS: "ended: the family told us their baby died", HOSPITAL: "paused: the baby is in hospital"}
# Levels at which the news is what the reply is about. A red flag reported with it (urgent or
# emergency) is answered at its own level instead, with the emergency number.
QUIET_LEVELS = ("info", "routine")


def news_in(decision: Decision) -> str | None:
    """The news a triaged text carries: a loss outranks a hospital stay, which outranks a homecoming."""
    found = {FLAGS[flag] for flag in decision.flags if flag in FLAGS}
    return next((news for news in FLAGS.values() if news in found), None)


def reply_name(level: str, reported: str | None, *, resumed: bool = False) -> str | None:
    """The keywords.yaml reply for a text carrying ``reported`` news, triaged at ``level``.

    None when the text's own triage reply stands: no news, a red flag, or a homecoming that
    resumed nothing (``resumed``: the text lifted a hospital pause).
    """
    if reported is None or level not in QUIET_LEVELS or (reported == HOME and not resumed):
        return None
    return REPLIES[reported]


def record(
    session: Session, settings: Settings, family: Family, news: str, *, message: Message, now: datetime
) -> bool:
    """Apply the parent's ``news`` to the family's automated messages; True if they changed.

    A change is told to the family's clinics. Repeating the news ("still in the NICU"), a
    hospital stay after a loss, or a homecoming when nothing was paused changes nothing.
    """
    if news == HOME:
        if family.followup_hold != HOSPITAL:
            return False
        resume(session, settings, family, now=now, by="parent")
    elif family.followup_hold in (news, LOSS):
        return False
    else:
        hold(session, family, news, now=now)
    alerts.notify(session, settings, family, reason=news, message=message, now=now)
    return True


def hold(session: Session, family: Family, news: str, *, now: datetime) -> int:
    """Stop the family's automated messages for ``news``; the number of check-ins cancelled.

    Pending check-ins are cancelled now; while the hold lasts nothing new is scheduled
    (``checkins.schedule_programme``) and dispatch cancels anything it finds due.
    """
    family.followup_hold, family.followup_hold_since = news, now
    cancelled = checkins.cancel_pending(session, family, reason=_WHY[news])
    session.add(
        Event(
            family_id=family.id,
            kind="followup_held",
            detail={"news": news, "cancelled": cancelled},
            created_at=now,
        )
    )
    log.info(
        "family %s: automated messages held (%s), %d check-ins cancelled",
        mask_phone(family.phone),
        news,
        cancelled,
    )
    return cancelled


def resume(session: Session, settings: Settings, family: Family, *, now: datetime, by: str) -> bool:
    """Lift the family's hold: each consented enrollment's programme starts again from ``now``.

    (Steps anchored at the baby's birth date keep their dates; those already past are left
    out.) ``by`` is who resumed: the parent, or a staff member or API token. False if
    nothing was held.
    """
    held = family.followup_hold
    if held is None:
        return False
    family.followup_hold = family.followup_hold_since = None
    active = session.scalars(
        select(Enrollment).where(Enrollment.family_id == family.id, Enrollment.status == "active")
    ).all()
    for enrollment in active:
        checkins.start_enrollment(session, enrollment, now=now, settings=settings)
    session.add(
        Event(family_id=family.id, kind="followup_resumed", detail={"was": held, "by": by}, created_at=now)
    )
    log.info("family %s: automated messages resumed after %s", mask_phone(family.phone), held)
    return True
