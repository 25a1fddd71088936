"""Checks at the edge shared by the webhooks, the API and the dashboard: what a request
carries is refused with a clear 4xx before it can reach ``int()`` or the database."""

from __future__ import annotations

from collections.abc import Iterable

CUT_MARKER = " […] "  # shows staff reading the stored text where its middle was cut


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


def fit_to_limit(text: str, limit: int) -> str:
    """``text``, or, if longer than ``limit``, its start and its end around ``CUT_MARKER``.

    The end is kept because a parent's worry often comes last ("…and now his lips are
    blue"): the cut text is still triaged on what matters.
    """
    if len(text) <= limit:
        return text
    keep = limit - len(CUT_MARKER)
    return text[: keep // 2] + CUT_MARKER + text[len(text) - (keep - keep // 2) :]
