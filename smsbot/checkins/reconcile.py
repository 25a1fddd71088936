"""Finishing a stopped worker's batch: what reached the provider is recorded as sent, what
did not goes back to pending, so nothing is lost or sent twice.

A row still ``sending`` after its lease belongs to a worker that died between its claim and
its commit, or to a send that got no answer at all (a timeout): the message may or may not
have reached the provider, so the provider is asked before it is sent again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from smsbot.checkins.claims import (
    MAX_ATTEMPTS,
    DispatchRun,
    add_event,
    claim,
    insert_messages,
    load_claimed,
    record_sent,
    set_status,
)
from smsbot.db import Database
from smsbot.messaging import SentLookup, SentRecord, TransportError
from smsbot.models import CheckIn, Message

logger = logging.getLogger(__name__)

# Our clock and the provider's disagree a little, and Twilio stamps whole seconds: look
# this much further back than the check-in's due time for what a stopped worker sent.
LOOKUP_SKEW = timedelta(minutes=1)


def reconcile_stale_claims(db: Database, run: DispatchRun, now: datetime, *, batch_size: int = 100) -> None:
    """Claim again every row whose lease ran out at ``now`` and settle it with the provider.

    Each such row is claimed atomically, so two reconcilers never share one; then, if the
    transport can look (``SentLookup``), the provider is asked for a message to the family
    with the same text since the check-in was due that no other row of ours holds. Found:
    recorded with that SID. Not found: re-pended. A lookup that failed for now leaves the
    row for the next run; a transport that cannot look, or a lookup refused for good,
    re-pends it (a rare duplicate beats a lost check-in).
    """
    lease = timedelta(seconds=run.settings.claim_lease_seconds)
    while ids := claim(db, now, batch_size, now + lease, stale=True):
        with db.session() as session:
            _reconcile_batch(session, ids, run, now)


def _reconcile_batch(session: Session, ids: list[int], run: DispatchRun, now: datetime) -> None:
    checkins = load_claimed(session, ids)
    transport = run.transport
    if isinstance(transport, SentLookup):
        lookups = list(
            run.pool.map(lambda c: _find_sent(transport, c.family.address, c.due_at - LOOKUP_SKEW), checkins)
        )
    else:
        lookups = [None] * len(checkins)
    # A message already recorded for another of our rows (an earlier check-in with the same
    # text) is not this check-in's.
    recorded = set(
        session.scalars(
            select(Message.provider_sid).where(
                Message.family_id.in_({c.family_id for c in checkins}), Message.provider_sid.is_not(None)
            )
        )
    )
    messages = []
    for checkin, found in zip(checkins, lookups, strict=True):
        if isinstance(found, TransportError):
            if not found.permanent:
                # Keep the claim (it has a fresh lease): the next run after it asks again.
                checkin.last_error = f"lease expired; provider lookup failed: {found}"[:255]
                continue
            # The provider refuses to ever answer (e.g. credentials without read access to
            # Messages): as if the transport could not look, rather than waiting forever.
            found = None
        checkin.claimed_until = None
        texts = _texts_sent(checkin, run)
        match = next((m for m in found or () if m.body in texts and m.sid not in recorded), None)
        if match is not None:
            recorded.add(match.sid)
            ended = texts[match.body]
            messages.append(
                record_sent(session, checkin, match.body, match.sid, now, ended=ended, report=run.report)
            )
            run.report.reconciled += 1
            add_event(session, checkin.family, "claim_reconciled", now, checkin_id=checkin.id, sid=match.sid)
            continue
        checkin.attempts += 1
        if found is None:
            note = "lease expired: a worker stopped mid-send; re-sent (possibly twice)"
        else:
            note = "not at the provider after a lost claim or an unanswered send; re-sent"
        # A check-in that keeps killing its worker must not do so forever.
        set_status(checkin, "failed" if checkin.attempts >= MAX_ATTEMPTS else "pending", note)
        run.report.recovered += 1
        add_event(session, checkin.family, "claim_reconciled", now, checkin_id=checkin.id, sid=None)
    if messages:
        insert_messages(session, messages)


def _texts_sent(checkin: CheckIn, run: DispatchRun) -> dict[str, bool]:
    """The texts a worker could have sent for ``checkin`` → whether it was the gentle last message."""
    programmes, family = run.programmes, checkin.family
    texts = {run.render(programmes.texts["last_message"], family): True}
    programme = programmes.programmes.get(checkin.programme)
    step = programme.step(checkin.step) if programme is not None else None
    if step is not None:
        texts[run.render(programmes.checkin_text(step), family)] = False
    return texts


def _find_sent(transport: SentLookup, to: str, since: datetime) -> list[SentRecord] | TransportError:
    """What the provider holds for ``to`` since ``since``, or the error (returned, not raised,
    so one failed lookup never stops the batch)."""
    try:
        return transport.find_sent(to, since)
    except TransportError as exc:
        return exc
    except Exception as exc:
        logger.exception("transport lookup raised an unexpected error")
        return TransportError(f"{type(exc).__name__}: {exc}")
