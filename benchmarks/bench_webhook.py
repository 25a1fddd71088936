"""Webhook load: signed ``POST /twilio/sms`` against gunicorn, beside a bare Flask floor.

In one run (loopback only, every phase bounded by ``--duration``):

1. floors: ``benchmarks/bare_twiml.py`` (fixed TwiML, no database) under gunicorn with the same
   settings as smsbot, at saturation (wrk, closed loop); then the same app storing each
   MessageSid with one autocommitted INSERT on PostgreSQL (the least a webhook that must not
   lose a message can do), so the cost of durability is measured apart from smsbot's own;
2. smsbot under gunicorn on PostgreSQL (a scratch database created on ``--database-url``'s
   server, migrated with ``smsbot db upgrade``, dropped afterwards; console transport, no
   scheduler), at saturation (wrk), then open loop at a fixed ``--rate`` messages/s;
3. optionally (``--sqlite``) the same two smsbot phases on SQLite with one worker.

Every request is a distinct message (its own MessageSid) from a pool signed beforehand like
Twilio does (``RequestValidator.compute_signature``): texts from ``corpus/dev_cases.yaml``,
from ``--phones`` distinct numbers. wrk (Debian package ``wrk``) cycles the pre-signed bodies
through a Lua script; the fixed-rate phase is a Python open-loop generator whose latency is
measured from each request's *scheduled* time, so a stalled server cannot hide its queue
(no coordinated omission). Afterwards it checks that every request got 200 and that the
inbound rows are exactly the MessageSids sent, each once.

The load generator shares the machine's cores with gunicorn and PostgreSQL: the figures are
for everything on one box, which is why wrk (C, two threads) drives the saturation phases.

    .venv/bin/python benchmarks/bench_webhook.py [--duration 15] [--rate 200] [--workers 2] \\
        [--threads 2] [--connections 16] [--database-url postgresql://postgres@127.0.0.1:5432/test] \\
        [--sqlite] [--crash]

Each smsbot phase also reports how soon the texts' follow-ups (the outbox) were done.
``--crash`` runs instead: a ``--rate`` burst of emergency texts from ``--phones`` numbers
against gunicorn and a ``smsbot worker``; a third in, kill -9 of a web worker (gunicorn
starts another), two thirds in, kill -9 of the scheduler worker (started again at once);
the unanswered requests are sent again as Twilio would; then every stored text must have
been processed and its follow-up done exactly once (one entry naming it on its alert's
timeline: 0 is lost, 2 or more duplicated).

Results go to ``benchmarks/results/webhook-<time>.json`` (gitignored) and a table on stdout.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

from smsbot.db import normalise_url  # noqa: E402
from tests.postgres import scratch_postgres_database  # noqa: E402

TOKEN = "bench-auth-token"
PUBLIC_URL = "https://smsbot.example.org"
PATH = "/twilio/sms"
VENV_BIN = Path(sys.executable).parent
RESULTS = ROOT / "benchmarks" / "results"

# wrk runs this in each of its threads: thread k sends pool lines k, k+T, k+2T, … so no two
# requests share a MessageSid unless a thread runs out of lines (reported as "wrapped").
WRK_SCRIPT = r"""
local threads = {}
local next_id = 0
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
function init(args)
  local nthreads = tonumber(args[2])
  bodies, sigs = {}, {}
  local i = 0
  for line in io.lines(args[1]) do
    if i % nthreads == tid then
      local tab = line:find("\t", 1, true)
      sigs[#sigs + 1] = line:sub(1, tab - 1)
      bodies[#bodies + 1] = line:sub(tab + 1)
    end
    i = i + 1
  end
  issued, bad = 0, 0
end
function request()
  issued = issued + 1
  local k = (issued - 1) % #bodies + 1
  return wrk.format("POST", "/twilio/sms", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Twilio-Signature"] = sigs[k],
  }, bodies[k])
end
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
function done(summary, latency, requests)
  local issued_by = {}
  local bad_total = 0
  for _, t in ipairs(threads) do
    issued_by[#issued_by + 1] = tostring(t:get("issued"))
    bad_total = bad_total + t:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "non_200": %d, "connect_errors": %d, "read_errors": %d, "write_errors": %d, ' ..
    '"timeouts": %d, "issued_by_thread": [%s]}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, bad_total, e.connect, e.read, e.write, e.timeout,
    table.concat(issued_by, ", ")))
end
"""


@dataclass(frozen=True)
class Signed:
    sid: str
    body: str  # urlencoded form
    signature: str


def load_texts() -> list[str]:
    cases = yaml.safe_load((ROOT / "corpus" / "dev_cases.yaml").read_text())
    return [case["text"] for case in cases]


def signed_pool(prefix: str, count: int, texts: list[str], phones: int) -> list[Signed]:
    """``count`` distinct messages, signed as Twilio would sign them for PUBLIC_URL + PATH."""
    validator = RequestValidator(TOKEN)
    pool = []
    for i in range(count):
        sid = f"SM{prefix}{i:08d}"
        form = {
            "MessageSid": sid,
            "SmsMessageSid": sid,
            "AccountSid": "ACbench0000000000000000000000000",
            "From": f"+1555{2000000 + i % phones:07d}",
            "To": "+15550009999",
            "Body": texts[i % len(texts)],
            "NumMedia": "0",
        }
        signature = validator.compute_signature(PUBLIC_URL + PATH, form)
        pool.append(Signed(sid, urlencode(form), signature))
    return pool


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Server:
    port: int
    pid: int

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        return [int(pid) for pid in children]


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU each process has used so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return used


def database_pids(url: str) -> list[int]:
    """The PostgreSQL backends serving ``url``'s database (none for SQLite)."""
    if not url.startswith("postgresql"):
        return []
    engine = create_engine(normalise_url(url))
    with engine.connect() as connection:
        pids = connection.scalars(
            text(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).all()
    engine.dispose()
    return list(pids)


@contextmanager
def measured(server: Server, url: str | None, result: dict) -> Iterator[None]:
    """Add the phase's CPU per request (gunicorn workers, database backends) and load average."""
    workers = server.worker_pids()
    before_app = cpu_seconds(workers)
    before_db = cpu_seconds(database_pids(url)) if url else {}
    result["loadavg_before"] = os.getloadavg()[0]
    yield
    result["loadavg_after"] = os.getloadavg()[0]
    after_app = cpu_seconds(workers)
    requests = max(result["requests"], 1)
    result["app_cpu_ms_per_request"] = (
        1000 * sum(v - before_app.get(k, 0) for k, v in after_app.items()) / requests
    )
    if url:
        after_db = cpu_seconds(database_pids(url))
        used = sum(v - before_db.get(k, 0) for k, v in after_db.items())
        result["db_cpu_ms_per_request"] = 1000 * used / requests


FOLLOW_UP_POLL_SECONDS = 0.05
FOLLOW_UP_SETTLE_SECONDS = 60.0


@contextmanager
def follow_up_watch(url: str, result: dict) -> Iterator[None]:
    """The delay from storing a text to its follow-ups being done, from the outbox's side.

    Every ``FOLLOW_UP_POLL_SECONDS`` the age of the oldest row still in the outbox is read;
    after the phase, the watch goes on until the outbox is empty. The largest age seen is
    the worst delay (to within one poll); ``follow_up_backlog`` is the most rows pending at once.
    """
    engine = create_engine(normalise_url(url))
    stop = threading.Event()
    worst = {"age": 0.0, "backlog": 0}

    def sample() -> int:
        with engine.connect() as connection:
            oldest, pending = connection.execute(text("SELECT min(created_at), count(*) FROM outbox")).one()
        if oldest is not None:
            worst["age"] = max(
                worst["age"], (datetime.now(UTC).replace(tzinfo=None) - oldest).total_seconds()
            )
        worst["backlog"] = max(worst["backlog"], pending)
        return int(pending)

    def poll() -> None:
        while not stop.wait(FOLLOW_UP_POLL_SECONDS):
            sample()

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        yield
    finally:
        stop.set()
        poller.join()
        deadline = time.monotonic() + FOLLOW_UP_SETTLE_SECONDS
        while (left := sample()) and time.monotonic() < deadline:
            time.sleep(FOLLOW_UP_POLL_SECONDS)
        engine.dispose()
        result["follow_up_max_delay_s"] = worst["age"] + FOLLOW_UP_POLL_SECONDS
        result["follow_up_backlog"] = worst["backlog"]
        result["follow_ups_left"] = left


@contextmanager
def gunicorn(app: str, env: dict[str, str], workers: int, threads: int, log: Path) -> Iterator[Server]:
    """Start ``app`` under gunicorn with smsbot's config; yield its port once it answers."""
    port = free_port()
    full_env = {
        **os.environ,
        **env,
        "SMSBOT_BIND": f"127.0.0.1:{port}",
        "SMSBOT_WEB_WORKERS": str(workers),
        "SMSBOT_WEB_THREADS": str(threads),
    }
    args = [
        str(VENV_BIN / "gunicorn"),
        "-c",
        "python:smsbot.web.gunicorn_conf",
        "--chdir",
        str(ROOT / "benchmarks"),
        app,
    ]
    with log.open("ab") as log_file:
        process = subprocess.Popen(args, env=full_env, stdout=log_file, stderr=log_file, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn {app} did not start; see {log}")
            time.sleep(0.2)
        time.sleep(1)  # every worker up
        yield Server(port, process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_wrk(port: int, pool: list[Signed], duration: float, connections: int, threads: int) -> dict:
    """Closed-loop saturation with wrk; returns its figures plus the SIDs it sent."""
    with tempfile.TemporaryDirectory() as directory:
        script, bodies = Path(directory) / "signed.lua", Path(directory) / "bodies.tsv"
        script.write_text(WRK_SCRIPT)
        bodies.write_text("".join(f"{item.signature}\t{item.body}\n" for item in pool))
        out = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{int(duration)}s",
                "--timeout",
                "10s",
                "-s",
                str(script),
                f"http://127.0.0.1:{port}{PATH}",
                "--",
                str(bodies),
                str(threads),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=duration + 60,
        )
    line = next(line for line in out.stdout.splitlines() if line.startswith("WRKJSON "))
    result = json.loads(line.removeprefix("WRKJSON "))
    sent: list[str] = []
    wrapped = False
    for tid, issued in enumerate(result.pop("issued_by_thread")):
        mine = pool[tid::threads]
        wrapped |= issued > len(mine)
        # wrk calls request() once on its first thread to check the script, and never sends it.
        sent.extend(item.sid for item in mine[1 if tid == 0 else 0 : issued])
    return {
        "throughput_rps": result["requests"] / (result["duration_us"] / 1e6),
        "p50_ms": result["p50_us"] / 1000,
        "p90_ms": result["p90_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "max_ms": result["max_us"] / 1000,
        "requests": result["requests"],
        "non_200": result["non_200"],
        "socket_errors": sum(
            result[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
        ),
        "wrapped": wrapped,
        "sent_sids": sent,
    }


def run_fixed_rate(
    port: int, pool: list[Signed], rate: float, duration: float, senders: int = 32, give_up: float = 30.0
) -> dict:
    """Open loop: request i is due at start + i/rate; latency counts from that due time.

    A request still waiting ``give_up`` seconds after its due time is not sent (counted as
    skipped), so an overloaded server cannot stretch the phase without bound.
    """
    count = min(int(rate * duration), len(pool))
    due: queue.Queue[tuple[int, float] | None] = queue.Queue()
    latencies = [0.0] * count
    codes = [0] * count
    statuses: Counter[int] = Counter()
    skipped: set[int] = set()
    lock = threading.Lock()

    def sender() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        while (job := due.get()) is not None:
            index, scheduled = job
            item = pool[index]
            if time.perf_counter() - scheduled > give_up:
                latencies[index] = time.perf_counter() - scheduled
                with lock:
                    statuses[-1] += 1
                    skipped.add(index)
                continue
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": item.signature,
            }
            try:
                connection.request("POST", PATH, item.body, headers)
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
                status = 0
            latencies[index] = time.perf_counter() - scheduled
            codes[index] = status
            with lock:
                statuses[status] += 1

    workers = [threading.Thread(target=sender, daemon=True) for _ in range(senders)]
    for worker in workers:
        worker.start()
    start = time.perf_counter() + 0.1
    for index in range(count):
        scheduled = start + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        due.put((index, scheduled))
    for _ in workers:
        due.put(None)
    for worker in workers:
        worker.join(timeout=60)
    ordered = sorted(latencies)
    return {
        "rate_rps": rate,
        "achieved_rps": count / (time.perf_counter() - start),
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p90_ms": ordered[int(len(ordered) * 0.90)] * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99)] * 1000,
        "max_ms": ordered[-1] * 1000,
        "requests": count,
        "non_200": count - statuses[200],
        "skipped": len(skipped),
        "sent_sids": [item.sid for index, item in enumerate(pool[:count]) if index not in skipped],
        "failed": [pool[index] for index in range(count) if codes[index] != 200],
    }


def verify(url: str, sent: list[str]) -> dict:
    """The inbound rows must be exactly the distinct SIDs sent, each stored once and processed
    (none left ``failed`` or ``processing``)."""
    time.sleep(1)  # requests still in flight when wrk stopped
    engine = create_engine(normalise_url(url))
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT provider_sid, status FROM messages WHERE direction = 'in'")
        ).all()
        replies = connection.scalar(text("SELECT count(*) FROM messages WHERE direction = 'out'"))
    engine.dispose()
    stored = Counter(sid for sid, _status in rows)
    distinct_sent = set(sent)
    return {
        "distinct_sids_sent": len(distinct_sent),
        "inbound_rows": len(rows),
        "duplicate_rows": sum(n - 1 for n in stored.values() if n > 1),
        "missing": len(distinct_sent - stored.keys()),
        "unexpected": len(stored.keys() - distinct_sent),
        "inbound_status": dict(Counter(status for _sid, status in rows)),
        "replies": replies,
        "ok": len(rows) == len(distinct_sent)
        and stored.keys() == distinct_sent
        and all(status == "processed" for _sid, status in rows),
    }


def smsbot_env(url: str) -> dict[str, str]:
    return {
        "SMSBOT_DATABASE_URL": url,
        "SMSBOT_TRANSPORT": "console",
        "SMSBOT_RUN_SCHEDULER": "false",
        "SMSBOT_PUBLIC_URL": PUBLIC_URL,
        "TWILIO_AUTH_TOKEN": TOKEN,
    }


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [str(VENV_BIN / "smsbot"), "db", "upgrade"], env={**os.environ, **env}, check=True, cwd=ROOT
    )


# Every follow-up of an emergency text leaves one entry on its alert's timeline naming the
# text (raised, or a new text on the open alert): so each can be counted, lost or twice.
CRASH_TEXT = "his lips are blue and his arms keep jerking"
FOLLOW_UP_TRACES = """
SELECT m.id, m.status, (
    SELECT count(*) FROM alert_events e
    WHERE e.kind IN ('raised', 'new_text') AND (e.detail ->> 'message_id')::int = m.id
) AS traces
FROM messages m WHERE m.direction = 'in'
"""


@contextmanager
def scheduler_worker(env: dict[str, str], log: Path) -> Iterator[list[subprocess.Popen]]:
    """``smsbot worker`` (the scheduler alone, with ``drain_outbox``); the list holds the live one."""
    with log.open("ab") as log_file:
        live = [
            subprocess.Popen(
                [str(VENV_BIN / "smsbot"), "worker"],
                env={**os.environ, **env},
                stdout=log_file,
                stderr=log_file,
                cwd=ROOT,
            )
        ]
    try:
        yield live
    finally:
        live[0].terminate()
        live[0].wait(timeout=15)


def crash_run(server_url: str, args: argparse.Namespace, log: Path) -> dict:
    """kill -9 of a web worker, then of the scheduler worker, during a ``--rate`` burst of
    emergency texts; restart; Twilio's retry of what went unanswered; then count each
    stored text's follow-ups (lost: none, duplicated: more than one)."""
    result: dict = {"requests": 0}
    with scratch_postgres_database(server_url) as url:
        env = {**smsbot_env(url), "SMSBOT_SWEEP_AFTER_SECONDS": "3"}
        migrate(env)
        pool = signed_pool(
            f"{uuid.uuid4().hex[:6]}K", int(args.rate * args.duration), [CRASH_TEXT], args.phones
        )
        with (
            scheduler_worker(env, log) as worker,
            gunicorn("smsbot:create_app()", env, args.workers, args.threads, log) as server,
        ):

            def kill_web_worker() -> None:
                os.kill(server.worker_pids()[0], signal.SIGKILL)  # gunicorn starts another
                result["killed_web_worker"] = True

            def kill_scheduler() -> None:
                worker[0].kill()
                worker[0].wait()
                with log.open("ab") as log_file:
                    worker[0] = subprocess.Popen(
                        [str(VENV_BIN / "smsbot"), "worker"],
                        env={**os.environ, **env},
                        stdout=log_file,
                        stderr=log_file,
                        cwd=ROOT,
                    )
                result["killed_scheduler"] = True

            print(
                f"[crash] {args.rate:.0f} emergency texts/s for {args.duration:.0f} s, kill -9 …", flush=True
            )
            timers = [
                threading.Timer(args.duration / 3, kill_web_worker),
                threading.Timer(2 * args.duration / 3, kill_scheduler),
            ]
            with follow_up_watch(url, result):
                for timer in timers:
                    timer.start()
                burst = run_fixed_rate(server.port, pool, args.rate, args.duration)
                for timer in timers:
                    timer.join()
                time.sleep(1)
                # Twilio retries a webhook that got no answer: the same SIDs, once more.
                retry = run_fixed_rate(server.port, burst["failed"], args.rate, args.duration)
            result.update(
                requests=burst["requests"],
                p99_ms=burst["p99_ms"],
                unanswered=len(burst["failed"]),
                unanswered_after_retry=len(retry["failed"]),
            )
            deadline = time.monotonic() + FOLLOW_UP_SETTLE_SECONDS
            engine = create_engine(normalise_url(url))
            while True:  # texts a killed request left half-done: the sweeper's
                with engine.connect() as connection:
                    traces = connection.execute(text(FOLLOW_UP_TRACES)).all()
                if all(status == "processed" for _id, status, _n in traces) or time.monotonic() > deadline:
                    break
                time.sleep(1)
            engine.dispose()
    stored = len(traces)
    result.update(
        stored=stored,
        not_stored=len({item.sid for item in pool[: burst["requests"]]}) - stored,
        unprocessed=sum(1 for _id, status, _n in traces if status != "processed"),
        lost=sum(1 for _id, _status, n in traces if n == 0),
        duplicated=sum(n - 1 for _id, _status, n in traces if n > 1),
    )
    return result


def bench_smsbot(
    url: str, args: argparse.Namespace, texts: list[str], workers: int, label: str, log: Path
) -> dict:
    env = smsbot_env(url)
    migrate(env)
    run_id = uuid.uuid4().hex[:6]
    saturation_pool = signed_pool(f"{run_id}S", args.pool, texts, args.phones)
    fixed_pool = signed_pool(f"{run_id}F", int(args.rate * args.duration), texts, args.phones)
    saturation: dict = {"requests": 0}
    fixed: dict = {"requests": 0}
    with gunicorn("smsbot:create_app()", env, workers, args.threads, log) as server:
        print(f"[{label}] saturation, {args.duration:.0f} s …", flush=True)
        with follow_up_watch(url, saturation), measured(server, url, saturation):
            saturation.update(
                run_wrk(server.port, saturation_pool, args.duration, args.connections, args.wrk_threads)
            )
        time.sleep(2)
        print(f"[{label}] fixed {args.rate:.0f} msg/s, {args.duration:.0f} s …", flush=True)
        with follow_up_watch(url, fixed), measured(server, url, fixed):
            fixed.update(run_fixed_rate(server.port, fixed_pool, args.rate, args.duration))
    fixed.pop("failed")
    checks = verify(url, saturation.pop("sent_sids") + fixed.pop("sent_sids"))
    return {
        "workers": workers,
        "threads": args.threads,
        "saturation": saturation,
        "fixed_rate": fixed,
        "verify": checks,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per phase")
    parser.add_argument("--rate", type=float, default=200.0, help="messages/s in the fixed-rate phase")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("SMSBOT_WEB_THREADS", "2")))
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--phones", type=int, default=200)
    parser.add_argument("--pool", type=int, default=60000, help="distinct signed messages for saturation")
    parser.add_argument("--sqlite", action="store_true", help="also run smsbot on SQLite with 1 worker")
    parser.add_argument("--skip-floor", action="store_true")
    parser.add_argument(
        "--crash",
        action="store_true",
        help="instead: kill -9 a web worker and the scheduler worker during a burst; count lost "
        "and duplicated follow-ups",
    )
    args = parser.parse_args()
    if args.crash:
        return main_crash(args)
    if shutil.which("wrk") is None:
        parser.error("needs wrk: apt-get install wrk")

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    log = RESULTS / f"webhook-{stamp}.log"
    texts = load_texts()
    results: dict = {
        "when": stamp,
        "cpus": os.cpu_count(),
        "duration_s": args.duration,
        "connections": args.connections,
        "wrk_threads": args.wrk_threads,
        "phones": args.phones,
        "note": "load generator, gunicorn and PostgreSQL share the same cores",
    }

    if not args.skip_floor:
        floor_pool = signed_pool("FLOOR", 5000, texts, args.phones)
        floor: dict = {"requests": 0}
        with gunicorn("bare_twiml:create_app()", {}, args.workers, args.threads, log) as server:
            print(f"[floor] bare Flask TwiML, {args.duration:.0f} s …", flush=True)
            with measured(server, None, floor):
                floor.update(
                    run_wrk(server.port, floor_pool, args.duration, args.connections, args.wrk_threads)
                )
        floor.pop("sent_sids")
        results["floor"] = {"workers": args.workers, "threads": args.threads, "saturation": floor}

    with scratch_postgres_database(args.database_url) as url:
        if not args.skip_floor:
            durable: dict = {"requests": 0}
            env = {"BARE_DATABASE_URL": url.replace("postgresql+psycopg://", "postgresql://")}
            with gunicorn("bare_twiml:create_app()", env, args.workers, args.threads, log) as server:
                print(f"[floor] bare Flask + one INSERT and commit, {args.duration:.0f} s …", flush=True)
                with measured(server, url, durable):
                    durable.update(
                        run_wrk(server.port, floor_pool, args.duration, args.connections, args.wrk_threads)
                    )
            durable.pop("sent_sids")
            results["durable_floor"] = {"workers": args.workers, "saturation": durable}
        results["postgres"] = bench_smsbot(url, args, texts, args.workers, "postgres", log)
    if args.sqlite:
        with tempfile.TemporaryDirectory() as directory:
            results["sqlite"] = bench_smsbot(f"sqlite:///{directory}/bench.db", args, texts, 1, "sqlite", log)

    if "floor" in results:
        floor_rps = results["floor"]["saturation"]["throughput_rps"]
        durable_rps = results["durable_floor"]["saturation"]["throughput_rps"]
        results["durable_floor"]["ratio_to_floor"] = durable_rps / floor_rps
        for name in ("postgres", "sqlite"):
            if name in results:
                rps = results[name]["saturation"]["throughput_rps"]
                results[name]["ratio_to_floor"] = rps / floor_rps
                results[name]["ratio_to_durable_floor"] = rps / durable_rps

    out = RESULTS / f"webhook-{stamp}.json"
    out.write_text(json.dumps(results, indent=2))
    print_table(results, args)
    print(f"\nresults: {out}\nserver log: {log}")
    failed = [
        name
        for name in ("postgres", "sqlite")
        if name in results
        and not (
            results[name]["verify"]["ok"]
            and results[name]["saturation"]["non_200"] == 0
            and results[name]["fixed_rate"]["non_200"] == 0
            and results[name]["saturation"]["socket_errors"] == 0
            and not results[name]["saturation"]["wrapped"]
            and results[name]["saturation"]["follow_ups_left"] == 0
            and results[name]["fixed_rate"]["follow_ups_left"] == 0
        )
    ]
    if failed:
        print(f"VERIFICATION FAILED: {', '.join(failed)}")
    return 1 if failed else 0


def main_crash(args: argparse.Namespace) -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    log = RESULTS / f"webhook-crash-{stamp}.log"
    result = crash_run(args.database_url, args, log)
    result["loadavg"] = os.getloadavg()[0]
    out = RESULTS / f"webhook-crash-{stamp}.json"
    out.write_text(json.dumps(result, indent=2))
    print(
        f"\n{result['requests']} texts sent, {result['unanswered']} unanswered through the kills "
        f"({result['unanswered_after_retry']} after Twilio's retry), {result['stored']} stored, "
        f"{result['unprocessed']} unprocessed\nfollow-ups: {result['lost']} lost, "
        f"{result['duplicated']} duplicated; done within {result['follow_up_max_delay_s']:.2f} s "
        f"(backlog {result['follow_up_backlog']}); load {result['loadavg']:.1f}\nresults: {out}"
    )
    ok = result["lost"] == 0 and result["duplicated"] == 0 and result["unprocessed"] == 0
    ok = ok and result["unanswered_after_retry"] == 0 and result["not_stored"] == 0
    if not ok:
        print("CRASH CHECK FAILED")
    return 0 if ok else 1


def print_table(results: dict, args: argparse.Namespace) -> None:
    print()
    print(
        f"{'target':<22}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>8}  "
        f"{'@' + str(int(args.rate)) + '/s p50':>11}{'p99':>8}{'cpu ms/req':>12}{'load':>6}  verify"
    )
    if "floor" in results:
        for name, title in (("floor", "bare Flask"), ("durable_floor", "bare + INSERT")):
            sat = results[name]["saturation"]
            label = f"{title} ({results[name]['workers']}w)"
            ratio = f"{results[name].get('ratio_to_floor', 1.0):.2f}"
            print(
                f"{label:<22}{sat['throughput_rps']:>9.0f}{sat['p50_ms']:>9.1f}{sat['p99_ms']:>9.1f}"
                f"{ratio:>8}  {'':>11}{'':>8}{cpu(sat):>12}{sat['loadavg_after']:>6.1f}"
            )
    for name in ("postgres", "sqlite"):
        if name not in results:
            continue
        entry = results[name]
        sat, fixed, checks = entry["saturation"], entry["fixed_rate"], entry["verify"]
        ratio = f"{entry['ratio_to_floor']:.2f}" if "ratio_to_floor" in entry else "-"
        non_200 = sat["non_200"] + fixed["non_200"] + sat["socket_errors"]
        verdict = (
            f"{checks['inbound_rows']} rows / {checks['distinct_sids_sent']} sids, "
            f"{checks['duplicate_rows']} dup, {non_200} non-200, {checks['inbound_status']}"
        )
        label = f"smsbot {name} ({entry['workers']}w)"
        print(
            f"{label:<22}{sat['throughput_rps']:>9.0f}{sat['p50_ms']:>9.1f}{sat['p99_ms']:>9.1f}{ratio:>8}  "
            f"{fixed['p50_ms']:>11.1f}{fixed['p99_ms']:>8.1f}{cpu(sat):>12}{sat['loadavg_after']:>6.1f}"
            f"  {verdict}"
        )
        if "ratio_to_durable_floor" in entry:
            print(f"{'':<22}{entry['ratio_to_durable_floor']:>35.2f} of the durable floor")
        print(
            f"{'':<22}follow-ups done within {fixed['follow_up_max_delay_s']:.2f} s at "
            f"{args.rate:.0f}/s (backlog {fixed['follow_up_backlog']}), "
            f"{sat['follow_up_max_delay_s']:.2f} s at saturation (backlog {sat['follow_up_backlog']}); "
            f"left undone: {sat['follow_ups_left'] + fixed['follow_ups_left']}"
        )


def cpu(phase: dict) -> str:
    """CPU ms per request at saturation: app (gunicorn workers) + database backends."""
    app = phase["app_cpu_ms_per_request"]
    db = phase.get("db_cpu_ms_per_request")
    return f"{app:.2f}" if db is None else f"{app:.1f}+{db:.1f}"


if __name__ == "__main__":
    sys.exit(main())
