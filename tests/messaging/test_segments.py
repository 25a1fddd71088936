"""Segment counts match what Twilio bills (check values from Twilio's documentation)."""

from __future__ import annotations

import pytest

from smsbot.messaging.segments import count_segments


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("☕" * 70, 1),
        ("☕" * 71, 2),
        ("😀" * 35, 1),  # an emoji is two UTF-16 units
        ("😀" * 36, 2),
        ("é" * 160, 1),  # é, ñ, ü are in GSM-7
        ("á" + "a" * 69, 1),  # á is not: the whole message becomes UCS-2
        ("á" + "a" * 70, 2),
        ("€" * 80, 1),  # € costs two septets
        ("€" * 81, 2),
        ("€" + "a" * 159, 2),
    ],
)
def test_it_counts_segments_like_twilio(text, segments):
    assert count_segments(text) == segments
