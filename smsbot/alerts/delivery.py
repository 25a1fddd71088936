"""Delivering alerts: the on-call SMS and the signed webhook, until each gets through.

Deliveries are rows, so a crash never loses one: they are sent by ``deliver_pending_alerts``
(a scheduler job every few seconds, plus an immediate attempt by the ``AlertCourier`` right
after the inbound message commits), retried with ``ALERT_RETRY`` backoff and given up after
``MAX_ATTEMPTS``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import exists, inspect, or_, select, update
from sqlalchemy.orm import Session

from smsbot.alerts import timeline
from smsbot.clinics.texts import load_clinic_texts
from smsbot.config import ALERT_LINKS_NEED_PUBLIC_URL, ConfigError, Settings
from smsbot.db import Database
from smsbot.messaging import Transport, TransportError
from smsbot.messaging.retry import ALERT_RETRY
from smsbot.metrics import ALERT_DELIVERIES
from smsbot.models import Alert, AlertDelivery, Clinic, Enrollment, EscalationContact, utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6  # with ALERT_RETRY: 30 s, 1, 2, 4, 8 min, about a quarter of an hour in all
# A claimed delivery whose worker died is retried after this long (counted as an attempt).
CLAIM_TIMEOUT = timedelta(minutes=2)
WEBHOOK_TIMEOUT_SECONDS = 10
BATCH_SIZE = 50
SIGNATURE_HEADER = "X-Smsbot-Signature"
TIMESTAMP_HEADER = "X-Smsbot-Timestamp"


def alert_link(settings: Settings, alert_id: int) -> str:
    """The dashboard page of an alert, as an absolute URL the on-call nurse can open."""
    return f"{settings.public_url.rstrip('/')}/dashboard/alerts/{alert_id}"


def require_public_url(db: Database, settings: Settings) -> None:
    """Refuse to start when a clinic gets alerts but their links could not open.

    The on-call SMS and the webhook carry the alert's dashboard link, which is absolute
    only with SMSBOT_PUBLIC_URL. Raises ConfigError naming the clinic; a database not
    migrated yet has no clinics.
    """
    if settings.public_url or not inspect(db.engine).has_table(Clinic.__tablename__):
        return
    with db.session() as session:
        slug = session.scalar(
            select(Clinic.slug)
            .where(
                or_(
                    Clinic.oncall_phone.is_not(None),
                    Clinic.webhook_url.is_not(None),
                    exists().where(EscalationContact.clinic_id == Clinic.id),
                )
            )
            .order_by(Clinic.slug)
            .limit(1)
        )
    if slug is not None:
        where = f"clinic {slug!r} has an on-call phone, backup contacts or an alert webhook"
        raise ConfigError(f"{where}: {ALERT_LINKS_NEED_PUBLIC_URL}")


class DeliveryError(RuntimeError):
    """One delivery attempt failed; ``permanent`` ones are not retried."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class DeliveryJob:
    """Everything one attempt needs, read before the (slow) network call."""

    delivery_id: int
    alert_id: int
    step: int
    channel: str
    target: str
    secret: str
    payload: dict[str, Any]
    sms_body: str


def webhook_signature(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of the raw body>``: receivers recompute it to trust the POST."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def deliver_pending_alerts(
    db: Database, transport: Transport, settings: Settings, now: datetime | None = None
) -> dict[str, int]:
    """Send every due alert delivery once; return counts of ``sent``, ``retry`` and ``failed``.

    Safe to run in several workers at once: each delivery is claimed by a conditional
    UPDATE before it is sent, so only one worker sends it.
    """
    now = now or utcnow()
    counts = {"sent": 0, "retry": 0, "failed": 0}
    with db.session() as session:
        due = session.scalars(
            select(AlertDelivery.id)
            .where(AlertDelivery.status == "pending", AlertDelivery.next_attempt_at <= now)
            .order_by(AlertDelivery.next_attempt_at, AlertDelivery.id)
            .limit(BATCH_SIZE)
        ).all()
    for delivery_id in due:
        job = _claim(db, settings, delivery_id, now)
        if job is None:
            continue
        try:
            _send(job, transport)
        except DeliveryError as error:
            result = _record_failure(db, job, error, now)
            if result is None:
                continue  # erased with its family meanwhile: nothing to retry
        else:
            _record_success(db, job, now)
            result = "sent"
        counts[result] += 1
        ALERT_DELIVERIES.labels(job.channel, result).inc()
    return counts


class AlertCourier:
    """One thread per process that delivers alerts the moment they are raised.

    ``wake()`` after committing an inbound message that raised an alert: the on-call nurse
    hears within seconds and the web request never waits on a clinic's webhook. The
    scheduler job remains the safety net for retries. The thread starts on first use, so
    it is created after gunicorn forks its workers, never before.

    ``follow_ups``, if given, is run first on each wake: the work that raises alerts
    (``smsbot.outbox``), returning whether it did. ``wake(urgent=False)`` lets it gather
    for ``batch_seconds`` first, so one transaction does the follow-ups of many texts; an
    urgent wake (a red flag) cuts that short.
    """

    def __init__(
        self,
        db: Database,
        transport: Transport,
        settings: Settings,
        *,
        follow_ups: Callable[[], bool] | None = None,
        batch_seconds: float = 0.0,
    ) -> None:
        self.db, self.transport, self.settings = db, transport, settings
        self.follow_ups, self.batch_seconds = follow_ups, batch_seconds
        self._wanted = threading.Event()
        self._urgent = threading.Event()
        self._state = threading.Condition()
        self._pending = False  # asked for and not yet taken up
        self._working = False
        self._deliver = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    def wake(self, *, urgent: bool = True) -> None:
        with self._state:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="smsbot-alerts", daemon=True)
                self._thread.start()
            self._pending = True
            self._deliver |= urgent
        if urgent:
            self._urgent.set()
        self._wanted.set()

    def settle(self, timeout: float = 10.0) -> bool:
        """Do the work asked for so far now (no gathering) and wait until it is done; whether it was."""
        self._urgent.set()
        with self._state:
            return self._state.wait_for(lambda: not (self._pending or self._working), timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the deliveries asked for so far and end the thread."""
        self._stopping = True
        self._urgent.set()
        self._wanted.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            if self.batch_seconds:
                self._urgent.wait(self.batch_seconds)
            self._wanted.clear()
            self._urgent.clear()
            with self._state:
                pending, self._pending = self._pending, False
                deliver, self._deliver = self._deliver, False
                self._working = pending
            if pending:
                try:
                    if self.follow_ups is not None:
                        deliver |= _follow_up_logging_errors(self.follow_ups)
                    if deliver:
                        _deliver_logging_errors(self.db, self.transport, self.settings)
                finally:
                    with self._state:
                        self._working = False
                        self._state.notify_all()
            if self._stopping:
                return


def _follow_up_logging_errors(follow_ups: Callable[[], bool]) -> bool:
    try:
        return follow_ups()
    except Exception:
        log.exception("inbound follow-ups failed; the scheduler will do them")
        return True  # an alert may have been raised before the failure


def _deliver_logging_errors(db: Database, transport: Transport, settings: Settings) -> None:
    try:
        deliver_pending_alerts(db, transport, settings)
    except Exception:
        log.exception("immediate alert delivery failed; the scheduler will retry")


def _claim(db: Database, settings: Settings, delivery_id: int, now: datetime) -> DeliveryJob | None:
    with db.session() as session:
        claimed = session.execute(
            update(AlertDelivery)
            .where(
                AlertDelivery.id == delivery_id,
                AlertDelivery.status == "pending",
                AlertDelivery.next_attempt_at <= now,
            )
            .values(next_attempt_at=now + CLAIM_TIMEOUT, attempts=AlertDelivery.attempts + 1)
        )
        if claimed.rowcount != 1:
            return None  # another worker got it
        delivery = session.get(AlertDelivery, delivery_id)
        alert = session.get(Alert, delivery.alert_id) if delivery is not None else None
        if alert is None:
            return None  # the family was erased meanwhile: nothing left to deliver
        return _job(session, settings, delivery, alert, now)


def _job(
    session: Session, settings: Settings, delivery: AlertDelivery, alert: Alert, now: datetime
) -> DeliveryJob:
    clinic = alert.clinic
    enrollment_id = session.scalar(
        select(Enrollment.id).where(
            Enrollment.clinic_id == clinic.id, Enrollment.family_id == alert.family_id
        )
    )
    link = alert_link(settings, alert.id)
    texts = load_clinic_texts(settings.rules_path)
    sms_target = delivery.target or clinic.oncall_phone  # a backup's phone, else the on-call's
    return DeliveryJob(
        delivery_id=delivery.id,
        alert_id=alert.id,
        step=delivery.step,
        channel=delivery.channel,
        target=(sms_target if delivery.channel == "sms" else clinic.webhook_url) or "",
        secret=clinic.webhook_secret or "",
        payload={
            "alert_id": alert.id,
            "clinic": clinic.slug,
            "level": alert.level,
            "reason": alert.reason,
            "family_id": enrollment_id,
            "created_at": alert.created_at.isoformat() + "Z",
            "dashboard_url": link,
            "escalation_step": delivery.step,  # 0: the on-call phone's page, then each backup's
            "timestamp": int(now.replace(tzinfo=UTC).timestamp()),  # signed, unlike the header
        },
        sms_body=texts.render("oncall_alert", "en", level=alert.level, clinic=clinic.name, link=link),
    )


def _send(job: DeliveryJob, transport: Transport) -> None:
    if not job.target:
        raise DeliveryError(f"the clinic has no {job.channel} target any more", permanent=True)
    if job.channel == "sms":
        try:
            transport.send(job.target, job.sms_body)
        except TransportError as error:
            raise DeliveryError(str(error), permanent=error.permanent or error.opted_out) from error
    else:
        post_webhook(job.target, job.secret, job.payload)


def post_webhook(url: str, secret: str, payload: dict[str, Any]) -> None:
    """POST ``payload`` as signed JSON; any non-2xx answer or network error is a DeliveryError."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "smsbot-alerts",
            SIGNATURE_HEADER: webhook_signature(secret, body),
            TIMESTAMP_HEADER: str(payload["timestamp"]),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        error.close()
        raise DeliveryError(f"webhook answered HTTP {error.code}") from None
    except (urllib.error.URLError, OSError) as error:
        raise DeliveryError(f"webhook unreachable: {error}") from None
    if not 200 <= status < 300:
        raise DeliveryError(f"webhook answered HTTP {status}")


def _locked_delivery(session: Session, delivery_id: int) -> AlertDelivery | None:
    """The delivery, read locked so it cannot vanish with its family before it is written;
    None when it already has."""
    return session.scalar(select(AlertDelivery).where(AlertDelivery.id == delivery_id).with_for_update())


def _record_success(db: Database, job: DeliveryJob, now: datetime) -> None:
    """Mark the page sent; a row erased with its family meanwhile is skipped."""
    with db.session() as session:
        delivery = _locked_delivery(session, job.delivery_id)
        if delivery is None:
            return
        delivery.status, delivery.last_error = "sent", None
        timeline.record(
            session,
            job.alert_id,
            timeline.DELIVERED,
            now,
            channel=job.channel,
            step=job.step,
            attempt=delivery.attempts,
        )


def _record_failure(db: Database, job: DeliveryJob, error: DeliveryError, now: datetime) -> str | None:
    """Store the error and schedule the retry (or give up); return ``retry`` or ``failed``,
    or None when the row was erased with its family meanwhile."""
    with db.session() as session:
        delivery = _locked_delivery(session, job.delivery_id)
        if delivery is None:
            return None
        delivery.last_error = str(error)[:255]
        giving_up = error.permanent or delivery.attempts >= MAX_ATTEMPTS
        timeline.record(
            session,
            job.alert_id,
            timeline.DELIVERY_FAILED,
            now,
            channel=job.channel,
            step=job.step,
            attempt=delivery.attempts,
            error=delivery.last_error,
            retrying=not giving_up,
        )
        if giving_up:
            delivery.status = "failed"
            log.warning(
                "alert delivery %s gave up after %d attempts: %s", job.delivery_id, delivery.attempts, error
            )
            return "failed"
        delivery.next_attempt_at = now + ALERT_RETRY.delay(delivery.attempts)
        return "retry"
