"""Transports that never leave the machine: the console (default) and memory (tests)."""

from __future__ import annotations

import itertools
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass
class SentMessage:
    to: str
    body: str
    sid: str
    opts: dict[str, Any] = field(default_factory=dict)


class MemoryTransport:
    """Records what would be sent in ``outbox``; thread-safe so dispatch tests can share it."""

    def __init__(self) -> None:
        self.outbox: list[SentMessage] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def send(self, to: str, body: str, **opts: Any) -> str:
        with self._lock:
            sid = f"SMlocal{next(self._ids):027d}"
            self.outbox.append(SentMessage(to, body, sid, opts))
        return sid


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
