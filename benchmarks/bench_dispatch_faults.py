"""Dispatch under faults: 50,000 due check-ins, 2 scheduler worker processes on PostgreSQL,
the real ``twilio`` client, and a fake Twilio API (its own process) that answers a share of
creates with 429 and 500. Runs until every check-in is sent, then checks exactly once.

Each worker is a separate OS process calling ``dispatch_due(utcnow())`` in a loop, as
``smsbot worker`` does; only the retry backoff is shortened (``SMSBOT_RETRY_BACKOFF_SECONDS``)
so retries come back within seconds rather than minutes. Quiet hours are off, so the run
does not depend on the time of day. Exactly once is counted at the fake (accepted creates
per recipient == 1) and in the database (every row ``sent`` with the SID the fake gave for
that recipient, and one outbound Message row holding it). Bounded: aborts after
``--timeout`` seconds. A scratch database is created on the server and dropped afterwards.

    .venv/bin/python benchmarks/bench_dispatch_faults.py [--checkins 50000] [--workers 2] \\
        [--failure-rate 0.05] [--database-url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select

from smsbot.checkins.dispatch import DispatchReport, dispatch_due
from smsbot.db import Database, upgrade
from smsbot.messaging.twilio import TwilioTransport
from smsbot.models import CheckIn, Family, Message, utcnow
from smsbot.models import Event as EventRow
from tests.checkin_fixtures import insert_due_checkins, make_settings
from tests.fake_twilio import FakeTwilio
from tests.postgres import scratch_postgres_database

SENDER = "+15550009999"
SID, TOKEN = "AC" + "f" * 32, "bench-faults-token"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
IDLE_POLL = 0.2  # seconds a worker sleeps when nothing was due (smsbot worker: 15 s)


# -- the fake Twilio API, in its own process -----------------------------------------------


def serve(conn: Connection, failure_rate: float) -> None:
    """Child process: serve until told to stop; answer "stats" with what was received."""
    with FakeTwilio(SID, TOKEN) as fake:
        if failure_rate:
            fake.set_failure_rate(failure_rate, statuses=(429, 500), seed=7)
        conn.send(fake.url)
        while (command := conn.recv()) != "stop":
            if command == "count":
                conn.send(fake.count())
            elif command == "stats":
                conn.send((fake.attempts, [(m.form["To"], m.sid) for m in fake.requests]))


@contextmanager
def fake_twilio_process(failure_rate: float) -> Iterator[tuple[str, Callable[[str], Any]]]:
    """The fake's URL and a function asking it "count" or "stats"."""
    ours, theirs = multiprocessing.Pipe()
    child = multiprocessing.get_context("spawn").Process(target=serve, args=(theirs, failure_rate))
    child.start()

    def ask(command: str) -> Any:
        ours.send(command)
        return ours.recv()

    try:
        yield ours.recv(), ask
    finally:
        ours.send("stop")
        child.join()
        ours.close()
        theirs.close()


# -- scheduler workers ----------------------------------------------------------------------


@dataclass
class WorkerConfig:
    url: str
    api_url: str
    batch_size: int
    send_threads: int
    settings: dict[str, Any] = field(default_factory=dict)


class DoomedTransport(TwilioTransport):
    """The real transport, until ``doom`` is set: then the process SIGKILLs itself right after
    its ``sends_left``-th accepted send, while its other send threads are mid-request and
    the batch is unrecorded — the moment a crash costs the most."""

    def __init__(self, *args: Any, doom: Event, sends_left: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.doom, self.sends_left = doom, sends_left
        self._count_lock = threading.Lock()

    def send(self, to: str, body: str, **opts: Any) -> str:
        sid = super().send(to, body, **opts)
        if self.doom.is_set():
            with self._count_lock:
                self.sends_left -= 1
                if self.sends_left <= 0:
                    os.kill(os.getpid(), signal.SIGKILL)
        return sid


def worker(
    config: WorkerConfig, ready: multiprocessing.Queue, go: Event, stop: Event, doom: Event, stats: str
) -> None:
    """One ``smsbot worker``: ``dispatch_due(utcnow())`` until told to stop.

    After each call it writes its running totals to ``stats`` (replaced atomically, so a
    worker killed with SIGKILL leaves its last complete totals behind).
    """
    db = Database(config.url)
    sends_left = random.Random(os.getpid()).randrange(1, config.batch_size)
    transport = DoomedTransport(SID, TOKEN, SENDER, api_url=config.api_url, doom=doom, sends_left=sends_left)
    settings = make_settings(**config.settings)
    totals = DispatchReport()
    ready.put(os.getpid())
    go.wait()
    while not stop.is_set():
        report = dispatch_due(
            db,
            transport,
            settings,
            utcnow(),
            batch_size=config.batch_size,
            send_threads=config.send_threads,
            worker_id=str(os.getpid()),
        )
        for name, value in asdict(report).items():
            setattr(totals, name, getattr(totals, name) + value)
        Path(stats + ".tmp").write_text(json.dumps(asdict(totals)))
        os.replace(stats + ".tmp", stats)
        if not report:
            stop.wait(IDLE_POLL)
    transport.close()
    db.engine.dispose()


@dataclass
class WorkerProcess:
    process: multiprocessing.process.BaseProcess
    doom: Event  # set it to have the worker SIGKILL itself in the middle of a batch


def start_workers(
    config: WorkerConfig, count: int, go: Event, stop: Event, stats_dir: Path, first: int = 0
) -> list[WorkerProcess]:
    """Start ``count`` worker processes and wait until each has connected."""
    spawn = multiprocessing.get_context("spawn")
    ready = spawn.Queue()
    workers = []
    for n in range(first, first + count):
        doom = spawn.Event()
        stats = str(stats_dir / f"worker-{n}.json")
        workers.append(
            WorkerProcess(spawn.Process(target=worker, args=(config, ready, go, stop, doom, stats)), doom)
        )
    for each in workers:
        each.process.start()
    for _ in workers:
        ready.get(timeout=60)
    return workers


def worker_totals(stats_dir: Path) -> Counter[str]:
    """Totals of every worker incarnation's last written ``DispatchReport``."""
    totals: Counter[str] = Counter()
    for path in stats_dir.glob("worker-*.json"):
        totals.update(json.loads(path.read_text()))
    return totals


# -- progress and verification ---------------------------------------------------------------


def statuses(db: Database) -> Counter[str]:
    with db.session() as session:
        return Counter(
            dict(session.execute(select(CheckIn.status, func.count()).group_by(CheckIn.status)).all())
        )


def wait_until_settled(db: Database, checkins: int, deadline: float, on_progress=None) -> bool:
    """Poll until no check-in is pending or sending (True), or the deadline passes (False)."""
    while time.monotonic() < deadline:
        counts = statuses(db)
        if on_progress is not None:
            on_progress(counts)
        if counts["pending"] + counts["sending"] == 0 and sum(counts.values()) == checkins:
            return True
        time.sleep(0.25)
    return False


@dataclass
class Verdict:
    accepted: int  # creates the fake accepted
    refused: int  # creates the fake answered with 429/500 (each one a retry later)
    recipients: int
    duplicates: int  # accepted messages beyond one per recipient
    lost: int  # check-ins not sent (or sent without the fake's SID)
    mismatched: int  # rows or Message rows whose SID is not the fake's for that recipient
    statuses: dict[str, int]


def verify(db: Database, ask: Callable[[str], Any], checkins: int) -> Verdict:
    attempts, received = ask("stats")
    per_recipient = Counter(to for to, _ in received)
    sid_of = dict(received)
    with db.session() as session:
        rows = session.execute(
            select(CheckIn.family_id, CheckIn.status, CheckIn.provider_sid, Message.provider_sid).outerjoin(
                Message, Message.checkin_id == CheckIn.id
            )
        ).all()
        phone_of = dict(session.execute(select(Family.id, Family.phone)).all())
    sent = [row for row in rows if row[1] == "sent"]
    mismatched = sum(
        1
        for family_id, _, sid, message_sid in sent
        if not (sid == message_sid == sid_of.get(phone_of[family_id]))
    )
    return Verdict(
        accepted=len(received),
        refused=attempts - len(received),
        recipients=len(per_recipient),
        duplicates=sum(n - 1 for n in per_recipient.values()),
        lost=checkins - len({row[0] for row in sent}),
        mismatched=mismatched + (len(rows) - checkins),  # a second Message row for a check-in
        statuses=dict(statuses(db)),
    )


def reconciliations(db: Database) -> tuple[int, int]:
    """(recorded from the provider, re-sent): the ``claim_reconciled`` events dispatch left."""
    with db.session() as session:
        details = session.scalars(select(EventRow.detail).where(EventRow.kind == "claim_reconciled")).all()
    found = sum(1 for detail in details if detail.get("sid"))
    return found, len(details) - found


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Run:
    """A scratch database with due check-ins, the fake Twilio API and connected workers."""

    db: Database
    ask: Callable[[str], Any]
    config: WorkerConfig
    stats_dir: Path
    go: Event
    stop: Event
    workers: list[WorkerProcess]

    def stop_workers(self) -> None:
        self.stop.set()
        for each in self.workers:
            each.process.join(timeout=30)


@contextmanager
def dispatch_run(args: argparse.Namespace, settings: dict[str, Any]) -> Iterator[Run]:
    """Everything set up (workers waiting for ``run.go``); torn down and dropped on exit."""
    with (
        scratch_postgres_database(args.database_url) as url,
        fake_twilio_process(args.failure_rate) as (api_url, ask),
        tempfile.TemporaryDirectory() as directory,
    ):
        upgrade(url)
        db = Database(url)
        insert_due_checkins(db, args.checkins, due_at=utcnow())
        spawn = multiprocessing.get_context("spawn")
        go, stop = spawn.Event(), spawn.Event()
        config = WorkerConfig(url, api_url, args.batch_size, args.send_threads, settings)
        stats_dir = Path(directory)
        run = Run(
            db, ask, config, stats_dir, go, stop, start_workers(config, args.workers, go, stop, stats_dir)
        )
        try:
            yield run
        finally:
            run.stop_workers()
            db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkins", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--failure-rate", type=float, default=0.05, help="share of creates answered 429/500")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--send-threads", type=int, default=8)
    parser.add_argument("--backoff-seconds", type=float, default=1.0, help="SMSBOT_RETRY_BACKOFF_SECONDS")
    parser.add_argument("--timeout", type=float, default=300.0, help="abort after this many seconds")
    parser.add_argument(
        "--database-url", default=DEFAULT_SERVER, help="PostgreSQL server for a scratch database"
    )
    args = parser.parse_args()

    settings = {
        "retry_backoff_seconds": args.backoff_seconds,
        "quiet_hours_start": "00:00",
        "quiet_hours_end": "00:00",
    }
    with dispatch_run(args, settings) as run:
        start = time.perf_counter()
        run.go.set()
        settled = wait_until_settled(run.db, args.checkins, time.monotonic() + args.timeout)
        elapsed = time.perf_counter() - start
        run.stop_workers()
        verdict = verify(run.db, run.ask, args.checkins)
        totals = worker_totals(run.stats_dir)

    sent = verdict.statuses.get("sent", 0)
    print(
        f"faults: {args.checkins} check-ins, {args.workers} workers, {args.failure_rate:.0%} of creates"
        f" answered 429/500{'' if settled else ' — ABORTED at the timeout'}\n"
        f"  {sent} sent in {elapsed:.1f} s = {sent / elapsed:,.0f} check-ins/s\n"
        f"  retries: {verdict.refused} creates refused by the fake, {totals['retried']} retries scheduled\n"
        f"  duplicates {verdict.duplicates}, lost {verdict.lost}, SID mismatches {verdict.mismatched};"
        f" statuses {verdict.statuses}",
        flush=True,
    )
    if not settled or verdict.duplicates or verdict.lost or verdict.mismatched:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
