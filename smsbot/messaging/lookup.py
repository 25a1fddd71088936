"""Asking the provider what it really took, when a send's outcome is unknown.

A send that got no answer (a timeout, a dropped connection), a server error from behind
Twilio's edge, or a worker that stopped between the send and the write that records it all
leave one question: did the provider take the message? Before sending again, the sender
asks for the recipient's messages since the send and takes the one with the same text that
no other row of ours holds. Check-ins (``checkins.reconcile``) and consent texts
(``clinics.consent``) settle their unknown sends this way.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Iterable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from smsbot.messaging import SentLookup, SentRecord, Transport, TransportError
from smsbot.models import Message

logger = logging.getLogger(__name__)

# Our clock and the provider's disagree a little, and Twilio stamps whole seconds: look
# this much further back than the send for what it left at the provider.
LOOKUP_SKEW = timedelta(minutes=1)


def can_look(transport: Transport) -> bool:
    """Whether the provider can be asked what was really sent (``SentLookup``)."""
    return isinstance(transport, SentLookup)


def outcome_unknown(error: TransportError) -> bool:
    """No answer at all (a timeout, a dropped connection) or a server error (a gateway that
    timed out behind Twilio's edge): the message may have been taken. A 429 or a 4xx was not."""
    return not error.permanent and (error.status is None or error.status >= 500)


def find_sent(transport: SentLookup, to: str, since: datetime) -> list[SentRecord] | TransportError:
    """What the provider holds for ``to`` since ``since``, or the error (returned, not raised,
    so one failed lookup never stops a batch)."""
    try:
        return transport.find_sent(to, since)
    except TransportError as exc:
        return exc
    except Exception as exc:
        logger.exception("transport lookup raised an unexpected error")
        return TransportError(f"{type(exc).__name__}: {exc}")


def recorded_sids(session: Session, family_ids: Iterable[int]) -> set[str]:
    """Provider ids our rows already hold for these families: a message recorded for another
    row (an earlier text with the same words) is not the one being looked for."""
    return set(
        session.scalars(
            select(Message.provider_sid).where(
                Message.family_id.in_(set(family_ids)), Message.provider_sid.is_not(None)
            )
        )
    )


def match_sent(
    found: Iterable[SentRecord], texts: Container[str], recorded: Container[str]
) -> SentRecord | None:
    """The newest message found with one of ``texts`` that none of our rows holds yet."""
    return next((m for m in found if m.body in texts and m.sid not in recorded), None)
