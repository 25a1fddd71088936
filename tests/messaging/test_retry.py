"""Backoff: one rule, two policies that differ on purpose (check-ins jittered, alerts exact)."""

from __future__ import annotations

import random
from datetime import timedelta

from smsbot.messaging.retry import ALERT_RETRY, CHECKIN_RETRY


def test_backoff_is_capped_at_an_hour():
    assert CHECKIN_RETRY.delay(30) <= timedelta(hours=1, minutes=12)
    assert ALERT_RETRY.delay(30) == timedelta(hours=1)


def test_alert_retries_double_from_thirty_seconds_on_an_exact_schedule():
    assert [ALERT_RETRY.delay(n) for n in range(1, 6)] == [
        timedelta(seconds=30),
        timedelta(minutes=1),
        timedelta(minutes=2),
        timedelta(minutes=4),
        timedelta(minutes=8),
    ]


def test_checkin_retries_spread_within_a_fifth_of_the_doubled_delay():
    rng = random.Random(7)
    delays = [CHECKIN_RETRY.delay(3, rng) for _ in range(200)]
    assert all(timedelta(minutes=3.2) <= d <= timedelta(minutes=4.8) for d in delays)
    assert len(set(delays)) > 1  # a batch that failed together does not retry together


def test_an_operator_sets_where_checkin_retries_start():
    policy = CHECKIN_RETRY.starting_at(timedelta(seconds=10))
    assert timedelta(seconds=16) <= policy.delay(2, random.Random(1)) <= timedelta(seconds=24)
