"""Check-ins: the scheduled texts that ask a family how their baby is doing, and their answers.

``programmes``: what ``rules/checkins.yaml`` says to send and when. ``schedule``: starting
and cancelling programmes, the open check-in and its answer. ``clock``: the family's time
zone and quiet hours. The worker's side sends them: ``dispatch`` (due check-ins, exactly
once), ``claims`` (the rows a run claims and records) and ``reconcile`` (a stopped worker's
batch); import those from their modules: they honour a provider's opt-out through
``smsbot.families``, which cancels check-ins through this package.
Import from here: ``from smsbot import checkins``.
"""

from smsbot.checkins.programmes import Programmes, load_programmes
from smsbot.checkins.schedule import (
    Answer,
    answer_open_checkin,
    cancel_pending,
    mark_undelivered,
    parse_answer,
    schedule_after_decision,
    schedule_programme,
    start_enrollment,
)

__all__ = [
    "Answer",
    "Programmes",
    "answer_open_checkin",
    "cancel_pending",
    "load_programmes",
    "mark_undelivered",
    "parse_answer",
    "schedule_after_decision",
    "schedule_programme",
    "start_enrollment",
]
