"""Transports that never leave the machine: the console (default) and memory (tests)."""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from smsbot.messaging import SentRecord


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class SentMessage:
    to: str
    body: str
    sid: str
    opts: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=_utcnow)  # naive UTC, as the provider's clock


class MemoryTransport:
    """Records what would be sent in ``outbox``; thread-safe so dispatch tests can share it.

    ``clock`` stamps each message (naive UTC); tests that dispatch at a chosen ``now`` set it
    to the same clock, as a provider's clock agrees with ours.
    """

    def __init__(self) -> None:
        self.clock: Callable[[], datetime] = _utcnow
        self.outbox: list[SentMessage] = []
        self._lock = threading.Lock()

    def send(self, to: str, body: str, **opts: Any) -> str:
        # Shaped like Twilio's SIDs and unique across processes and restarts: the ids are
        # stored in ``messages.provider_sid``, which is unique.
        sid = f"SM{uuid.uuid4().hex}"
        with self._lock:
            self.outbox.append(SentMessage(to, body, sid, opts, self.clock()))
        return sid

    def find_sent(self, to: str, since: datetime) -> list[SentRecord]:
        """What the outbox holds for ``to`` since ``since``, newest first (like Twilio's list)."""
        with self._lock:
            sent = [m for m in self.outbox if m.to == to and m.created_at >= since]
        return [SentRecord(m.sid, m.body, m.created_at) for m in reversed(sent)]


class ConsoleTransport(MemoryTransport):
    """The default transport: prints outbound messages instead of sending them."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.stream = stream

    def send(self, to: str, body: str, **opts: Any) -> str:
        sid = super().send(to, body, **opts)
        stream = self.stream or sys.stdout
        print(f"--- SMS to {to} ({sid}) ---\n{body}\n", file=stream, flush=True)
        return sid
