"""What a family told us in the last half hour, so a follow-up is read together with it.

Parents send a report in pieces: "he feels hot", then "it's 100.6"; a temperature, then
"also he's 6 weeks"; an emergency, then "she's fine now". Each piece alone says little; read
with the texts before it, it is triaged as the one report it is (``respond.process``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from smsbot.models import Family, Message
from smsbot.vocabulary import MAX_ID, highest

CONTEXT_WINDOW = timedelta(minutes=30)  # a text this soon after another adds to it
MAX_EARLIER = 4  # earlier texts read with a new one, at most (a run-on conversation is not one report)


def _earlier(family: Any) -> Select[Any]:
    """The family's earlier inbound texts of the window, newest first: the triaged ones
    count; a keyword (STOP, START, a YES to a clinic) ends the window there."""
    return (
        select(Message.id, Message.body, Message.level, Message.flags, Message.kind)
        .where(
            Message.family_id == family,
            Message.direction == "in",
            Message.id < bindparam("before"),
            Message.created_at >= bindparam("since"),
        )
        .order_by(Message.id.desc())
        .limit(MAX_EARLIER)
    )


_EARLIER = _earlier(bindparam("family"))
# Correlated to the family row of an enclosing query (a LATERAL join): read with the family.
EARLIER_OF_FAMILY = _earlier(Family.id)
TRIAGED = ("symptom", "answer")


@dataclass(frozen=True)
class Recent:
    """The earlier texts of the window, oldest first, and the most severe level they were told."""

    texts: tuple[str, ...]
    level: str
    flags: frozenset[str]

    def with_text(self, text: str) -> str:
        """The earlier texts and ``text`` as one report, each its own sentence (a negation in
        one never reaches into the next)."""
        return " . ".join((*self.texts, text))


def recent(
    session: Session | Connection, family_id: int, now: datetime, *, before: int = MAX_ID
) -> Recent | None:
    """The family's triaged texts from the last ``CONTEXT_WINDOW`` before the text ``before``
    (default: all of them, for a text not stored yet) and after its last keyword, or None."""
    return recent_of(
        session.execute(_EARLIER, {"family": family_id, "before": before, "since": now - CONTEXT_WINDOW})
    )


def recent_of(rows: Iterable[Any]) -> Recent | None:
    """``Recent`` from the family's texts of the window, newest first (``EARLIER_OF_FAMILY``)."""
    kept = []
    for row in rows:
        if row.kind not in TRIAGED:
            # A keyword ends the report: after STOP and START, or a YES that lets a clinic
            # follow the family, what came before is not read into what comes after (a clinic
            # sees the texts of its own window only, and nothing drawn from the others).
            break
        if row.level is not None:
            kept.append(row)
    if not kept:
        return None
    kept.reverse()
    return Recent(
        texts=tuple(row.body for row in kept if row.body),
        level=highest([row.level for row in kept]),
        flags=frozenset(flag for row in kept for flag in row.flags or ()),
    )
