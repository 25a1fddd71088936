"""Sending messages: one small interface, one error type, several providers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


class TransportError(RuntimeError):
    """A send failed. ``permanent`` errors must not be retried (e.g. invalid number);
    ``window``: WhatsApp refused it for its 24-hour window or a template (SMS may still reach)."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        permanent: bool = False,
        opted_out: bool = False,
        status: int | None = None,
        window: bool = False,
    ) -> None:
        super().__init__(message)
        self.window = window
        self.code = code
        self.permanent = permanent
        self.opted_out = opted_out
        self.status = status


@dataclass(frozen=True)
class SentRecord:
    """A message the provider holds for a recipient: its id, text and creation time (naive UTC)."""

    sid: str
    body: str
    date_created: datetime


class Transport(Protocol):
    """Sends one message; returns the provider's message id (e.g. a Twilio ``SM…`` SID).

    A transport may also implement ``SentLookup``: dispatch then asks the provider what a
    worker that died mid-send really sent, instead of sending it again (see
    ``dispatch.reconcile_stale_claims``).
    """

    def send(self, to: str, body: str, **opts: Any) -> str: ...


@runtime_checkable
class SentLookup(Protocol):
    """Optional: the messages the provider accepted for ``to`` since ``since`` (naive UTC).

    Raises ``TransportError`` when the provider cannot be asked right now.
    """

    def find_sent(self, to: str, since: datetime) -> list[SentRecord]: ...
