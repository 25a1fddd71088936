"""The conversation: what happens to each text a parent sends, and what we answer.

``inbound``: a text is stored once and processed once, a provider's retry gets the same
reply, and a failed run is recorded for recovery; ``at_once``: most texts answered from one
read and stored with one write, their follow-ups left in the outbox (``smsbot.outbox``).
``respond``: keywords → check-in answer → triage → reply and actions. ``keywords``:
STOP/START/HELP, plain-word opt-outs and the service replies (``rules/keywords.yaml``).
``news``: a loss or a hospital stay holds the family's automated messages. ``sweeper``:
texts a failed request left unprocessed are triaged, alerted and answered in the end.
Import from here: ``from smsbot import conversation``.
"""

from smsbot.conversation.inbound import Inbound, receive
from smsbot.conversation.respond import CHECKIN_WORSE, Outcome, prepare

__all__ = ["CHECKIN_WORSE", "Inbound", "Outcome", "prepare", "receive"]
