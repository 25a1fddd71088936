"""Sending through Twilio's REST API with the official client.

Twilio's error codes are mapped to domain meaning in one table (``TWILIO_ERRORS``): Twilio
warns that codes change, so the mapping stays data, not ``if``s spread through callers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from smsbot.messaging import SentRecord, TransportError

DEFAULT_API_URL = "https://api.twilio.com"
# How many of a recipient's latest messages ``find_sent`` reads. A family gets a handful of
# messages a day, so this reaches far further back than any claim lease.
LOOKUP_LIMIT = 100


@dataclass(frozen=True)
class ErrorKind:
    """What a Twilio error means for us: retry it, give up, or mark the family opted out;
    ``window``: WhatsApp refused a text for its 24-hour window or a template."""

    permanent: bool
    opted_out: bool
    description: str
    window: bool = False


TWILIO_ERRORS: dict[int, ErrorKind] = {
    21610: ErrorKind(True, True, "recipient replied STOP"),
    21211: ErrorKind(True, False, "invalid 'To' number"),
    21614: ErrorKind(True, False, "'To' is not a mobile number"),
    30004: ErrorKind(True, False, "message blocked"),
    30005: ErrorKind(True, False, "unknown destination number"),
    30006: ErrorKind(True, False, "landline or unreachable carrier"),
    30007: ErrorKind(True, False, "message filtered by the carrier"),
    # Only reported by status callbacks; a stale check-in is not worth resending.
    30036: ErrorKind(True, False, "validity period expired"),
    # WhatsApp: free text outside the 24-hour window, or a template it cannot use. Not the
    # family's fault: a template, or the clinic's SMS fallback, may still reach them.
    63016: ErrorKind(True, False, "outside WhatsApp's 24-hour window: an approved template is needed", True),
    63024: ErrorKind(True, False, "not a WhatsApp recipient", True),
    63027: ErrorKind(True, False, "WhatsApp template missing for this language", True),
    63028: ErrorKind(True, False, "WhatsApp template variables do not match", True),
    21655: ErrorKind(True, False, "invalid ContentSid", True),
    21656: ErrorKind(True, False, "invalid ContentVariables", True),
    20429: ErrorKind(False, False, "too many concurrent requests"),
    21611: ErrorKind(False, False, "sender queue over 10 hours"),
    30001: ErrorKind(False, False, "queue overflow"),
    30003: ErrorKind(False, False, "unreachable handset"),
    30008: ErrorKind(False, False, "unknown delivery error"),
    # A deployment fault, not the family's: keep retrying so check-ins survive the fix.
    20003: ErrorKind(False, False, "authentication failed: check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"),
}


def classify(code: int | None, status: int | None) -> ErrorKind:
    """Meaning of a Twilio error code, falling back on the HTTP status (None: no answer)."""
    if code in TWILIO_ERRORS:
        return TWILIO_ERRORS[code]
    if status is None:
        return ErrorKind(False, False, "network error")
    if status == 429 or status >= 500:
        return ErrorKind(False, False, f"Twilio unavailable (HTTP {status})")
    # Any other 4xx is a request Twilio will refuse again unchanged.
    more = f", see https://www.twilio.com/docs/errors/{code}" if code is not None else ""
    return ErrorKind(True, False, f"request rejected{more}")


def transport_error(code: int | None, status: int | None, *, cause: str = "") -> TransportError:
    """A ``TransportError`` for a Twilio answer, e.g. "Twilio 21211: invalid 'To' number (HTTP 400)".

    Twilio's own message is left out on purpose: it quotes the phone number, and this
    message ends up in logs and on the dashboard.
    """
    kind = classify(code, status)
    where = cause or f"HTTP {status}"
    label = f"Twilio {code}" if code is not None else "Twilio"
    return TransportError(
        f"{label}: {kind.description} ({where})",
        code=code,
        status=status,
        permanent=kind.permanent,
        opted_out=kind.opted_out,
        window=kind.window,
    )


@contextmanager
def _as_transport_errors() -> Iterator[None]:
    """Turn what the twilio client raises into our ``TransportError``."""
    try:
        yield
    except (TwilioRestException, TwilioServiceException) as exc:
        # Without an error JSON body (e.g. a proxy's 502) the client uses the status as code.
        code = None if exc.code == exc.status else exc.code
        raise transport_error(code, exc.status) from exc
    except TwilioException as exc:
        # A list page that fails comes as a bare TwilioException("Unable to fetch page", response).
        response = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], Response) else None
        if response is None:
            raise transport_error(None, None, cause=type(exc).__name__) from exc
        raise transport_error(_error_code(response), response.status_code) from exc
    except requests.RequestException as exc:
        raise transport_error(None, None, cause=type(exc).__name__) from exc


def _error_code(response: Response) -> int | None:
    """The ``code`` of Twilio's error JSON, if the body is one."""
    try:
        code = json.loads(response.text).get("code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, int) else None


class _SettingsCachingSession(requests.Session):
    """A Session that reads proxy and CA settings from the environment once per origin.

    requests re-reads them (every ``*_PROXY`` variable, ``NO_PROXY`` matching, a stat of
    the CA bundle) on each request: at hundreds of sends a second that was about a tenth
    of a dispatch worker's CPU. The environment does not change while a worker runs.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[Any, ...], dict[str, Any]] = {}

    def merge_environment_settings(self, url, proxies, stream, verify, cert):  # type: ignore[no-untyped-def]
        if stream is not None or verify is not None or cert is not None:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        key = (*urlsplit(url)[:2], tuple(sorted((proxies or {}).items())))
        settings = self._environment.get(key)
        if settings is None:
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            self._environment[key] = settings
        return {**settings, "proxies": dict(settings["proxies"])}


class ApiUrlHttpClient(TwilioHttpClient):
    """Sends each request to ``api_url`` instead of api.twilio.com.

    The Twilio client has no base-URL setting; swapping scheme and host here is the
    supported hook, and lets tests and benchmarks point the real client at a local fake.
    """

    def __init__(self, api_url: str, *, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.base = urlsplit(api_url)
        session = _SettingsCachingSession()
        session.adapters = self.session.adapters  # keeps the pool size Twilio's client mounted
        self.session = session

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        parts = urlsplit(url)
        path = self.base.path.rstrip("/") + parts.path
        url = urlunsplit((self.base.scheme, self.base.netloc, path, parts.query, parts.fragment))
        return super().request(method, url, *args, **kwargs)

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


class TwilioTransport:
    """Sends SMS and WhatsApp messages through Twilio.

    ``sender`` is a phone number or a Messaging Service SID (``MG…``). Each thread gets its
    own client: a requests Session is not documented as thread-safe, and a per-thread
    one still keeps its connection alive between sends, which is most of the throughput.
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        sender: str,
        *,
        api_url: str = DEFAULT_API_URL,
        status_callback: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.sender = sender
        self.api_url = api_url
        self.status_callback = status_callback
        self.timeout = timeout
        self._local = threading.local()
        self._http_clients: list[ApiUrlHttpClient] = []
        self._lock = threading.Lock()

    @property
    def client(self) -> Client:
        """This thread's Twilio client (created on first use)."""
        client = getattr(self._local, "client", None)
        if client is None:
            http_client = ApiUrlHttpClient(self.api_url, timeout=self.timeout)
            with self._lock:
                self._http_clients.append(http_client)
            client = Client(self.account_sid, self.auth_token, http_client=http_client)
            self._local.client = client
        return client

    def message_fields(self, to: str, body: str, **opts: Any) -> dict[str, Any]:
        """Keyword arguments for ``client.messages.create``."""
        fields: dict[str, Any] = {"to": to, "body": body}
        if opts.get("content_sid"):
            # An approved WhatsApp template: Twilio sends its text, filled with the variables.
            fields = {
                "to": to,
                "content_sid": opts["content_sid"],
                "content_variables": json.dumps(opts.get("content_variables") or {}, ensure_ascii=False),
            }
        if self.sender.startswith("MG"):
            fields["messaging_service_sid"] = self.sender
        elif to.startswith("whatsapp:") and not self.sender.startswith("whatsapp:"):
            # Twilio refuses a WhatsApp 'To' with a plain SMS 'From' (error 21910).
            fields["from_"] = f"whatsapp:{self.sender}"
        else:
            fields["from_"] = self.sender
        if self.status_callback:
            fields["status_callback"] = self.status_callback
        if opts.get("validity_period") is not None:
            fields["validity_period"] = int(opts["validity_period"])
        return fields

    def send(self, to: str, body: str, **opts: Any) -> str:
        """Send one message; returns its ``SM…`` SID. Options: ``validity_period`` (seconds),
        ``content_sid`` and ``content_variables`` (a WhatsApp template, sent instead of ``body``)."""
        with _as_transport_errors():
            message = self.client.messages.create(**self.message_fields(to, body, **opts))
        return str(message.sid)

    def find_sent(self, to: str, since: datetime) -> list[SentRecord]:
        """Messages Twilio accepted for ``to`` created at or after ``since`` (naive UTC), newest first.

        Filters on ``date_created`` here rather than with ``date_sent_after``: a message
        still queued at Twilio (a long code sends one segment a second; a bulk run queues
        for hours) has no ``date_sent`` yet, and that is exactly the one a stopped worker
        may have left behind.
        """
        with _as_transport_errors():
            messages = self.client.messages.list(to=to, limit=LOOKUP_LIMIT)
        found = []
        for message in messages:
            created = message.date_created
            if created is None:
                continue
            created = created.astimezone(UTC).replace(tzinfo=None)
            if created >= since:
                found.append(SentRecord(str(message.sid), message.body or "", created))
        return found

    def close(self) -> None:
        """Close every thread's connections (keeps tests free of unclosed-socket warnings)."""
        with self._lock:
            clients, self._http_clients = self._http_clients, []
        for http_client in clients:
            http_client.close()
        self._local = threading.local()
