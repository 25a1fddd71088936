"""Errors shared by the clinic services, in the terms the API error shape and CSV report use."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One invalid input field, in the terms the API error shape and the CSV report use."""

    field: str
    code: str
    message: str


class InvalidFieldsError(ValueError):
    """Input failed validation; ``errors`` lists every problem, not just the first."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


class ConflictError(ValueError):
    """The request is valid but clashes with the current state (duplicate slug, other programme)."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
