"""SMS segment counting (GSM-7 vs UCS-2), so replies stay within their budget.

One character outside GSM-7 (an emoji, a curly quote, "á") switches the whole message to
UCS-2 and cuts each segment from 160 to 70 characters.
"""

from __future__ import annotations

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = set("^{}\\[~]|€\f")  # each costs two septets
GSM7 = frozenset(GSM7_BASIC | GSM7_EXTENDED)


def is_gsm7(text: str) -> bool:
    return GSM7.issuperset(text)


def count_segments(text: str) -> int:
    """Number of SMS segments Twilio will bill for ``text``."""
    if not text:
        return 1
    if is_gsm7(text):
        septets = len(text) + sum(map(text.count, GSM7_EXTENDED))
        return 1 if septets <= 160 else -(-septets // 153)
    # UCS-2 counts UTF-16 code units: an emoji outside the BMP takes two.
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)
