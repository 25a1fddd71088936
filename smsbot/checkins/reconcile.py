"""Finishing a stopped worker's batch: what reached the provider is recorded as sent, what
did not goes back to pending, so nothing is lost or sent twice.

A row still ``sending`` after its lease belongs to a worker that died between its claim and
its commit, or to a send that got no answer at all (a timeout): the message may or may not
have reached the provider, so the provider is asked before it is sent again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

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
from smsbot.messaging import SentLookup, TransportError
from smsbot.messaging.lookup import LOOKUP_SKEW, find_sent, match_sent, recorded_sids
from smsbot.models import CheckIn


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
            run.pool.map(lambda c: find_sent(transport, c.family.address, c.due_at - LOOKUP_SKEW), checkins)
        )
    else:
        lookups = [None] * len(checkins)
    recorded = recorded_sids(session, {c.family_id for c in checkins})
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
        match = match_sent(found or (), texts, recorded)
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
