"""The outbox: what an inbound text sets off beyond its reply, done once, after the reply.

The webhook stores each text with an outbox row in the same transaction (``conversation.
inbound``); ``drain`` does the follow-ups: the family's language and level, alerts, the
follow-up check-ins. Red flags first, at once, by the web process's courier; the rest in
short batches, and by the scheduler's ``drain_outbox`` job should a process die first.
Import from here: ``from smsbot import outbox``.
"""

from smsbot.outbox.drain import BATCH_SECONDS, DrainReport, drain, drain_all, follow_up

__all__ = ["BATCH_SECONDS", "DrainReport", "drain", "drain_all", "follow_up"]
