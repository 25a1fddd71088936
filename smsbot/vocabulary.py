"""The words every part of smsbot shares, defined once: triage levels, languages, limits.

Rule files, the triage engine, check-ins, the API and the dashboard all import them from
here, so adding a language or changing a budget is one edit.
"""

from __future__ import annotations

# Triage levels, least to most severe: the highest wins, and a later, milder rule never lowers it.
LEVELS = ("info", "routine", "urgent", "emergency")

# Languages we text in, and the one used when a family's language has no text.
LANGS = ("en", "es")
DEFAULT_LANG = "en"
LANGUAGE_NAMES = {"en": "English", "es": "Español"}  # as staff screens show them

CHANNELS = ("sms", "whatsapp")  # how a family texts us
# The longest text each channel carries (Twilio joins SMS segments up to 1,600 characters;
# WhatsApp allows 4,096). A longer one is stored cut in the middle, never refused.
BODY_LIMITS = {"sms": 1600, "whatsapp": 4096}

# A parent's answer to a check-in, best first.
OUTCOMES = ("better", "same", "worse")

# A reply or a check-in costs at most this many SMS segments (each one is billed).
MAX_SEGMENTS = 2
# An emergency number a deployment may configure, and the longest one, which budgets assume.
DIALABLE = r"[0-9+*#]{2,16}"
LONGEST_NUMBER = "+" + "9" * 15

MAX_ID = 2**31 - 1  # ids are 32-bit: a larger one cannot exist, and SQLite cannot even bind it
NOTE_MAX_CHARS = 2000  # a staff note on an acknowledged alert
STAFF_TEXT_MAX_CHARS = 480  # a text staff write to a family (before the clinic's signature)


def severity(level: str) -> int:
    """Position of ``level`` in LEVELS (info=0 … emergency=3), for comparing levels."""
    return LEVELS.index(level)


def highest(levels: list[str]) -> str:
    """The most severe of ``levels`` ("info" when empty)."""
    return max(levels, key=severity, default=LEVELS[0])
