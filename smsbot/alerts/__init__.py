"""Clinic alerts: raised when a family reports a red flag, delivered until a clinic hears.

``raising``: one deduplicated Alert per clinic following the family, its delivery rows, and
notices that are never paged. ``delivery``: the on-call SMS and the signed webhook, retried
with backoff, and the courier that sends them the moment they are raised.
Import from here: ``from smsbot import alerts``.
"""

from smsbot.alerts.delivery import MAX_ATTEMPTS, AlertCourier, deliver_pending_alerts, require_public_url
from smsbot.alerts.raising import DEDUPE_WINDOW, UNDELIVERED_LEVEL, alert_undelivered, notify, raise_alert

__all__ = [
    "DEDUPE_WINDOW",
    "MAX_ATTEMPTS",
    "UNDELIVERED_LEVEL",
    "AlertCourier",
    "alert_undelivered",
    "deliver_pending_alerts",
    "notify",
    "raise_alert",
    "require_public_url",
]
