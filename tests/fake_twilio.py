"""A local stand-in for Twilio's Messages REST API, for tests and benchmarks.

It speaks the 2010-04-01 wire format (form fields in, Message JSON and error JSON out), so
the real ``twilio`` client can talk to it through ``TwilioTransport(api_url=fake.url)``.
Importable without pytest: benchmarks add ``tests/`` to ``sys.path``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import re
import secrets
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from smsbot.messaging.segments import count_segments

MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json$")
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
ERROR_CODES = {401: 20003, 404: 20404, 429: 20429, 500: 20500, 503: 20503}
ERROR_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    20503: "Service Unavailable",
    21211: "The 'To' number is not a valid phone number.",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    21910: "Invalid From and To pair. From and To should be of the same channel",
    21655: "The ContentSid is Invalid.",
    21656: "The ContentVariables Parameter is invalid.",
    63016: "Failed to send freeform message because you are outside the allowed window.",
}
CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")


@dataclass(frozen=True)
class ReceivedMessage:
    """One accepted create request: the form fields exactly as sent, and our answer."""

    sid: str
    form: dict[str, str]
    resource: dict[str, Any]


class TwilioFailure(Exception):
    """Raised inside the handler to answer with Twilio's error JSON."""

    def __init__(self, status: int, code: int | None = None) -> None:
        super().__init__(status, code)
        self.status = status
        self.code = code if code is not None else ERROR_CODES.get(status, status)

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": ERROR_MESSAGES.get(self.code, "Error"),
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


class FakeTwilio:
    """Threaded fake of ``/2010-04-01/Accounts/{sid}/Messages.json`` on 127.0.0.1.

    Use as a context manager. Fault injection: ``fail_number`` (a recipient always gets an
    error), ``fail_next`` (the next N creates fail), ``fail_after_accepting`` (the next N
    creates are stored, then answered with an error), ``set_failure_rate`` (seeded random
    failures for load tests), ``delay`` (seconds before answering, for timeouts) and
    ``close_whatsapp_session`` (free text to a WhatsApp number is refused with 63016, as
    WhatsApp refuses it 24 hours after the user's last message; templates still go).
    ``clock`` (aware UTC) stamps ``date_created``: tests that dispatch at a chosen ``now``
    set it to agree with theirs, as Twilio's clock agrees with a real worker's.
    """

    def __init__(self, account_sid: str | None = None, auth_token: str | None = None) -> None:
        self.account_sid = account_sid or "AC" + secrets.token_hex(16)
        self.auth_token = auth_token or secrets.token_hex(16)
        self.delay = 0.0
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.attempts = 0  # every create request, accepted or not
        self._messages: list[ReceivedMessage] = []
        self._by_to: dict[str, list[ReceivedMessage]] = {}  # so a list filtered on To stays cheap
        self._number_failures: dict[str, tuple[int, int]] = {}  # number → (status, code)
        self._closed_sessions: set[str] = set()  # whatsapp:+… numbers outside the 24-hour window
        self._scripted: list[TwilioFailure] = []
        self._after_accepting: list[TwilioFailure] = []
        self._failure_rate = 0.0
        self._failure_statuses: tuple[int, ...] = ()
        self._random = random.Random(0)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server(self)
        # A short poll keeps stop() (and so every test's teardown) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="fake-twilio", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeTwilio:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection, waiting for handler threads to end."""
        self._stopping.set()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.close_connections()
        self._server.server_close()

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- fault injection -------------------------------------------------------------

    def fail_number(self, number: str, *, code: int, status: int = 400) -> None:
        """Answer every create to ``number`` with Twilio error ``code``."""
        with self._lock:
            self._number_failures[number] = (status, code)

    def close_whatsapp_session(self, number: str) -> None:
        """Refuse free text to ``whatsapp:<number>`` with 63016; templates (ContentSid) still go.

        Twilio reports 63016 in the status callback; the fake answers it at once, which is
        what the sender sees in the end.
        """
        with self._lock:
            self._closed_sessions.add(number)

    def fail_next(self, count: int, *, status: int = 500, code: int | None = None) -> None:
        """Fail the next ``count`` create requests (e.g. 429 → code 20429)."""
        with self._lock:
            self._scripted.extend(TwilioFailure(status, code) for _ in range(count))

    def fail_after_accepting(self, count: int, *, status: int = 502) -> None:
        """Store the next ``count`` creates, then answer each with HTTP ``status`` anyway."""
        with self._lock:
            self._after_accepting.extend(TwilioFailure(status) for _ in range(count))

    def set_failure_rate(self, rate: float, *, statuses: tuple[int, ...] = (429, 500), seed: int = 0) -> None:
        """Fail a seeded random ``rate`` of creates with one of ``statuses``."""
        with self._lock:
            self._failure_rate = rate
            self._failure_statuses = statuses
            self._random = random.Random(seed)

    # -- what was received -------------------------------------------------------------

    @property
    def requests(self) -> list[ReceivedMessage]:
        with self._lock:
            return list(self._messages)

    def count(self) -> int:
        with self._lock:
            return len(self._messages)

    def sent_to(self, number: str) -> list[ReceivedMessage]:
        return [m for m in self.requests if m.form["To"] == number]

    # -- request handling (called from handler threads) ---------------------------------

    def create(self, account_sid: str, form: dict[str, str]) -> ReceivedMessage:
        with self._lock:
            self.attempts += 1
            if self._scripted:
                raise self._scripted.pop(0)
            if self._failure_rate and self._random.random() < self._failure_rate:
                raise TwilioFailure(self._random.choice(self._failure_statuses))
            if form.get("To") in self._number_failures:
                raise TwilioFailure(*self._number_failures[form["To"]])
            if form.get("To") in self._closed_sessions and not form.get("ContentSid"):
                raise TwilioFailure(400, 63016)
        validate(form)
        if self.delay:
            self._stopping.wait(self.delay)
        sid = "SM" + secrets.token_hex(16)
        message = ReceivedMessage(sid, form, resource(account_sid, sid, form, created=self.clock()))
        with self._lock:
            self._messages.append(message)
            self._by_to.setdefault(form["To"], []).append(message)
            if self._after_accepting:
                raise self._after_accepting.pop(0)
        return message

    def page(self, account_sid: str, query: dict[str, str]) -> dict[str, Any]:
        """Twilio's list shape; filters on ``To`` and ``From``, pages with ``PageSize``/``Page``."""
        with self._lock:
            candidates = list(self._by_to.get(query["To"], ()) if "To" in query else self._messages)
        wanted = [
            m.resource
            for m in reversed(candidates)  # Twilio lists newest first
            if m.form.get("From") == query.get("From", m.form.get("From"))
        ]
        size, number = int(query.get("PageSize", 50)), int(query.get("Page", 0))
        chunk = wanted[number * size : (number + 1) * size]
        base = f"/2010-04-01/Accounts/{account_sid}/Messages.json"
        filters = {k: v for k, v in query.items() if k in ("To", "From")}

        def uri(page: int) -> str:
            return f"{base}?{urlencode({**filters, 'PageSize': size, 'Page': page})}"

        more = (number + 1) * size < len(wanted)
        return {
            "messages": chunk,
            "page": number,
            "page_size": size,
            "start": number * size,
            "end": number * size + max(len(chunk) - 1, 0),
            "uri": uri(number),
            "first_page_uri": uri(0),
            "next_page_uri": uri(number + 1) if more else None,
            "previous_page_uri": uri(number - 1) if number else None,
        }


def validate(form: dict[str, str]) -> None:
    """Twilio's synchronous checks on a create request, in Twilio's order."""
    to, sender = form.get("To", ""), form.get("From", "")
    if not to:
        raise TwilioFailure(400, 21604)
    if not sender and not form.get("MessagingServiceSid"):
        raise TwilioFailure(400, 21603)
    if form.get("ContentSid"):
        if not CONTENT_SID.match(form["ContentSid"]):
            raise TwilioFailure(400, 21655)
        if not to.startswith("whatsapp:"):
            raise TwilioFailure(400, 21910)  # the fake knows WhatsApp templates only
        try:
            json.loads(form.get("ContentVariables") or "{}")
        except ValueError:
            raise TwilioFailure(400, 21656) from None
    elif not form.get("Body"):
        raise TwilioFailure(400, 21602)
    if len(form.get("Body", "")) > 1600:
        raise TwilioFailure(400, 21617)
    if not E164.match(to.removeprefix("whatsapp:")):
        raise TwilioFailure(400, 21211)
    if sender and to.startswith("whatsapp:") != sender.startswith("whatsapp:"):
        raise TwilioFailure(400, 21910)


def resource(
    account_sid: str, sid: str, form: dict[str, str], *, created: datetime | None = None
) -> dict[str, Any]:
    """The Message JSON Twilio answers a create with (numbers are strings, as Twilio sends)."""
    now = format_datetime(created or datetime.now(UTC))
    uri = f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}"
    service = form.get("MessagingServiceSid")
    # A template's text is Twilio's to fill; the fake shows which one, with its variables.
    body = form.get("Body") or f"[{form.get('ContentSid')}] {form.get('ContentVariables', '{}')}"
    return {
        "account_sid": account_sid,
        "api_version": "2010-04-01",
        "body": body,
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": form.get("From"),
        "messaging_service_sid": service,
        "num_media": "0",
        "num_segments": str(count_segments(body)),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        # Twilio answers "accepted" while a Messaging Service still has to pick the sender.
        "status": "accepted" if service and not form.get("From") else "queued",
        "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
        "to": form["To"],
        "uri": f"{uri}.json",
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Twilio's API does
    # Headers and body in one buffered write, no Nagle: otherwise each answer stalls ~40 ms
    # on the client's delayed ACK and a load test measures the stall, not the code.
    wbufsize = -1
    disable_nagle_algorithm = True
    server: _Server

    def do_POST(self) -> None:
        self.dispatch(lambda sid, query, form: self.server.fake.create(sid, form).resource, 201)

    def do_GET(self) -> None:
        self.dispatch(lambda sid, query, form: self.server.fake.page(sid, query), 200)

    def dispatch(self, action: Callable[[str, dict[str, str], dict[str, str]], Any], ok_status: int) -> None:
        parts = urlsplit(self.path)
        match = MESSAGES_PATH.match(parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        form = self.read_form()  # always drained, so the keep-alive connection stays in step
        if form is None:
            # The client went away mid-request (e.g. a worker killed with SIGKILL): Twilio
            # never acts on half a request, so neither do we.
            self.close_connection = True
            return
        try:
            if not self.authorized():
                raise TwilioFailure(401)
            if not match or match["sid"] != self.server.fake.account_sid:
                raise TwilioFailure(404)
            self.answer(ok_status, action(match["sid"], query, form))
        except TwilioFailure as failure:
            self.answer(failure.status, failure.body())

    def authorized(self) -> bool:
        fake = self.server.fake
        expected = base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()
        return self.headers.get("Authorization") == f"Basic {expected}"

    def read_form(self) -> dict[str, str] | None:
        """The form fields, or None when the body ended short of its Content-Length."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if len(raw) < length:
            return None
        return {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}

    def answer(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Twilio-Request-Id", "RQ" + secrets.token_hex(16))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="Twilio API"')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a load test would otherwise print a line per request."""


class _Server(ThreadingHTTPServer):
    """Tracks open connections so ``stop`` can close keep-alive ones and join every thread."""

    daemon_threads = False
    block_on_close = True
    # The default backlog of 5 refuses connections when several dispatchers open their
    # keep-alive connections at once; real Twilio never does that.
    request_queue_size = 256

    def __init__(self, fake: FakeTwilio) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        # An idle keep-alive connection blocks its handler thread in a read; shutting the
        # socket down ends that read, so server_close() can join the thread.
        with self.connections_lock:
            for connection in self.connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients that hang up (timeouts, stop()); loud about anything else."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)
