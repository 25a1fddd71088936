"""Prometheus metrics. Counters live in the process that observes them; under gunicorn set
``PROMETHEUS_MULTIPROC_DIR`` so ``/metrics`` aggregates every web worker. A ``smsbot worker``
(check-ins, dispatch lag) serves its own on an internal port (``serve``)."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

INBOUND = Counter("smsbot_inbound_messages_total", "Inbound messages by triage level", ["level"])
REPLIES = Counter("smsbot_replies_total", "Replies returned to Twilio by level", ["level"])
CHECKINS = Counter("smsbot_checkins_total", "Check-in dispatch results", ["result"])
# failed: processing a text raised (the request's or the sweeper's run); error_reply /
# error_reply_withheld: the "sorry" reply sent, or not (opted out, opting out, or the
# database could not tell); retried: a provider retry processed a text not processed before;
# swept: the sweeper triaged one; swept_reply_sent / swept_reply_failed: its reply by REST;
# gave_up: a text that failed every attempt (its clinic is alerted to read it).
INBOUND_RECOVERY = Counter(
    "smsbot_inbound_recovery_total", "Inbound texts whose processing failed, and their recovery", ["event"]
)
ALERT_DELIVERIES = Counter("smsbot_alert_deliveries_total", "Clinic alert deliveries", ["channel", "result"])
# cause: raised (the first page), unacknowledged (the delay ran out), new_text (a new emergency text)
ALERT_PAGES = Counter("smsbot_alert_pages_total", "Pages of a clinic's escalation chain", ["level", "cause"])
TIME_TO_ACKNOWLEDGE = Histogram(
    "smsbot_alert_time_to_acknowledge_seconds",
    "From an alert being raised to a human acknowledging it, by level",
    ["level"],
    buckets=(60, 300, 600, 1200, 1800, 3600, 2 * 3600, 4 * 3600, 12 * 3600, 24 * 3600),
)
WEBHOOK_LATENCY = Histogram(
    "smsbot_webhook_seconds",
    "Time to answer a Twilio webhook",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
DISPATCH_LAG = Histogram(
    "smsbot_dispatch_lag_seconds",
    "How late a check-in went out after it was due",
    buckets=(1, 5, 15, 30, 60, 300, 900, 3600, 4 * 3600, 12 * 3600),
)


def _registry() -> CollectorRegistry:
    """This process's metrics, or every worker's in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def render() -> tuple[bytes, str]:
    """The exposition text for ``/metrics``."""
    return generate_latest(_registry()), CONTENT_TYPE_LATEST


def serve(port: int, host: str) -> None:
    """Expose this process's metrics on ``host:port`` from a background thread (no token: keep
    it internal). In multiprocess mode they are already in the shared directory that the web
    ``/metrics`` adds up, and serving them here too would count them twice."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        raise RuntimeError(
            "PROMETHEUS_MULTIPROC_DIR is set: this process's metrics are served by the web "
            "/metrics already; unset it for this process to serve them on their own port"
        )
    start_http_server(port, addr=host)
