"""Sending messages: one small interface, one error type, several providers."""

from __future__ import annotations

from typing import Any, Protocol


class TransportError(RuntimeError):
    """A send failed. ``permanent`` errors must not be retried (e.g. invalid number)."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        permanent: bool = False,
        opted_out: bool = False,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.permanent = permanent
        self.opted_out = opted_out
        self.status = status


class Transport(Protocol):
    """Sends one message; returns the provider's message id (e.g. a Twilio ``SM…`` SID)."""

    def send(self, to: str, body: str, **opts: Any) -> str: ...
