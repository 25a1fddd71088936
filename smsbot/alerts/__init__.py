"""Clinic alerts: raised when a family reports a red flag, delivered until a clinic hears.

``raising``: one deduplicated Alert per clinic following the family, and notices that are
never paged. ``escalation``: the clinic's chain (on-call phone, then backups) paged until a
human acknowledges. ``delivery``: each page's SMS and signed webhook, retried with backoff,
and the courier that sends them the moment they are raised. ``timeline``: every page,
delivery and acknowledgement of an alert.
Import from here: ``from smsbot import alerts``.
"""

from smsbot.alerts.delivery import MAX_ATTEMPTS, AlertCourier, deliver_pending_alerts, require_public_url
from smsbot.alerts.escalation import acknowledge, escalate_due
from smsbot.alerts.raising import DEDUPE_WINDOW, UNDELIVERED_LEVEL, alert_undelivered, notify, raise_alert

__all__ = [
    "DEDUPE_WINDOW",
    "MAX_ATTEMPTS",
    "UNDELIVERED_LEVEL",
    "AlertCourier",
    "acknowledge",
    "alert_undelivered",
    "deliver_pending_alerts",
    "escalate_due",
    "notify",
    "raise_alert",
    "require_public_url",
]
