"""How long to wait before trying a send again: one backoff rule, two policies.

Both double from a base up to a cap. They differ on purpose, and their names say how:
check-ins fail in crowds (a Twilio outage fails a whole batch), so their retries are spread
out with jitter and their base is an operator's setting; an alert is one delivery to one
clinic, retried soon and on an exact schedule.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import timedelta


@dataclass(frozen=True)
class RetryPolicy:
    """Retry number ``n`` (1-based) waits ``base · 2^(n-1)``, at most ``cap``, ± ``jitter``."""

    base: timedelta
    cap: timedelta = timedelta(hours=1)
    jitter: float = 0.0  # 0.2: anywhere from 80 % to 120 % of the delay

    def delay(self, attempts: int, rng: random.Random | None = None) -> timedelta:
        """The wait before retry number ``attempts``."""
        delay = min(self.base * 2 ** (attempts - 1), self.cap)
        if not self.jitter:
            return delay
        return delay * (rng or random).uniform(1 - self.jitter, 1 + self.jitter)

    def starting_at(self, base: timedelta) -> RetryPolicy:
        """The same policy from another first delay (an operator's setting)."""
        return replace(self, base=base)


# An alert delivery: 30 s, 1, 2, 4, 8 min.
ALERT_RETRY = RetryPolicy(base=timedelta(seconds=30))
# A check-in: 1 min (SMSBOT_RETRY_BACKOFF_SECONDS), doubling, with ±20 % jitter so the
# retries of a batch that failed together do not stampede the provider together.
CHECKIN_RETRY = RetryPolicy(base=timedelta(minutes=1), jitter=0.2)


def operator_retry(backoff_seconds: float) -> RetryPolicy:
    """The check-ins' policy from the operator's first delay: check-ins and consent texts share it."""
    return CHECKIN_RETRY.starting_at(timedelta(seconds=backoff_seconds))
