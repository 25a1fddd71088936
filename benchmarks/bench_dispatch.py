"""Check-ins/second through ``dispatch_due``: database claims + the real twilio client + a fake API.

For each database (SQLite always; PostgreSQL with ``--database-url``, on a scratch database
created and dropped on that server) and each worker count, it inserts ``--checkins`` due
check-ins, starts that many worker processes calling ``dispatch_due`` at once, and reports
the rate plus duplicates (sends the fake accepted beyond one per check-in) and losses
(check-ins not marked sent). The fake Twilio API runs in its own process, as Twilio would.

    .venv/bin/python benchmarks/bench_dispatch.py [--checkins 20000] [--workers 1 2] \\
        [--database-url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from multiprocessing.synchronize import Event
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_fake_twilio import SENDER, SID, TOKEN, fake_in_process
from sqlalchemy import func, select

from smsbot.checkins.dispatch import dispatch_due
from smsbot.db import Database, upgrade
from smsbot.messaging.twilio import TwilioTransport
from smsbot.models import CheckIn
from tests.checkin_fixtures import insert_due_checkins, make_settings
from tests.postgres import scratch_postgres_database

NOW = datetime(2026, 11, 28, 15)  # 10:00 in New York, where the benchmark's families live


def worker(url: str, api_url: str, batch_size: int, go: Event, done: multiprocessing.Queue) -> None:
    """One ``smsbot worker`` process: a single dispatch_due call drains everything it can claim."""
    db = Database(url)
    transport = TwilioTransport(SID, TOKEN, SENDER, api_url=api_url)
    settings = make_settings()
    go.wait()
    report = dispatch_due(db, transport, settings, NOW, batch_size=batch_size)
    transport.close()
    db.engine.dispose()
    done.put(report.sent)


@contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as directory:
        yield f"sqlite:///{directory}/bench.db"


def run(url: str, api_url: str, checkins: int, workers: int, batch_size: int) -> float:
    """Dispatch ``checkins`` due rows with ``workers`` processes; returns the wall time in seconds."""
    upgrade(url)
    insert_due_checkins(Database(url), checkins, due_at=NOW)
    spawn = multiprocessing.get_context("spawn")
    go, done = spawn.Event(), spawn.Queue()
    processes = [
        spawn.Process(target=worker, args=(url, api_url, batch_size, go, done)) for _ in range(workers)
    ]
    for process in processes:
        process.start()
    time.sleep(3)  # let the workers import and connect before the clock starts
    start = time.perf_counter()
    go.set()
    for _ in processes:
        done.get()
    elapsed = time.perf_counter() - start
    for process in processes:
        process.join()
    return elapsed


def statuses(url: str) -> Counter[str]:
    """Check-ins per status: ``sent``, or ``pending`` when a transient error queued a retry."""
    db = Database(url)
    with db.session() as session:
        counts = Counter(
            dict(session.execute(select(CheckIn.status, func.count()).group_by(CheckIn.status)).all())
        )
    db.engine.dispose()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkins", type=int, default=20_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--database-url", help="a PostgreSQL server (a scratch database is created on it)")
    args = parser.parse_args()
    backends = [("sqlite", sqlite_database)]
    if args.database_url:
        backends.append(("postgresql", lambda: scratch_postgres_database(args.database_url)))
    with fake_in_process() as (api_url, accepted):
        for name, database in backends:
            for workers in args.workers:
                before = accepted()
                with database() as url:
                    elapsed = run(url, api_url, args.checkins, workers, args.batch_size)
                    counts = statuses(url)
                sent, retrying = counts["sent"], counts["pending"]
                duplicates, lost = accepted() - before - sent, args.checkins - sent - retrying
                print(
                    f"{name:10} {workers} worker(s): {args.checkins} check-ins in {elapsed:5.1f} s"
                    f" = {sent / elapsed:6,.0f} sent/s; retry queued {retrying}, duplicates {duplicates},"
                    f" lost {lost}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
