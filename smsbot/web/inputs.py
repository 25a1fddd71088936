"""Checks at the edge shared by the webhooks, the API and the dashboard: what a request
carries is refused with a clear 4xx before it can reach ``int()`` or the database."""

from __future__ import annotations

from collections.abc import Iterable


def whole_number(raw: str, maximum: int) -> int | None:
    """``raw`` as a number from 0 to ``maximum``, else None.

    ``str.isdigit`` alone would let "²" or a 5,000-digit string through to ``int()``, which
    raises on both, and a number past the column's range would fail in the database.
    """
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(maximum)):
        return None
    value = int(raw)
    return value if value <= maximum else None


def has_nul(values: Iterable[str]) -> bool:
    """PostgreSQL refuses NUL in text, even in a search pattern."""
    return any("\x00" in value for value in values)
