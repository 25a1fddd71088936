"""Crash: kill -9 a scheduler worker in the middle of dispatch, restart it, and check that
nothing was lost and nothing sent twice.

Two worker processes (``dispatch_due(utcnow())`` in a loop, as ``smsbot worker``) dispatch
``--checkins`` due check-ins on a scratch PostgreSQL database through the real ``twilio``
client to a fake Twilio API in its own process. Each time the fake has accepted another
share of the messages, one worker (in turn) gets SIGKILL while it is sending a batch, and
is started again at once. Its claimed rows stay ``sending`` until their lease
(``SMSBOT_CLAIM_LEASE_SECONDS``, short here) runs out; then a live worker asks the fake
what it really accepted and records those, re-sending only the rest. Checked at the end:
accepted creates per recipient == 1, every row ``sent`` with the fake's SID. Bounded by
``--timeout``.

    .venv/bin/python benchmarks/bench_crash.py [--checkins 20000] [--kills 3] [--lease-seconds 5] \\
        [--failure-rate 0] [--database-url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_dispatch_faults import (
    DEFAULT_SERVER,
    WorkerConfig,
    fake_twilio_process,
    reconciliations,
    start_workers,
    statuses,
    temporary_directory,
    verify,
    wait_until_settled,
)

from smsbot.db import Database, upgrade
from smsbot.models import utcnow
from tests.checkin_fixtures import insert_due_checkins
from tests.postgres import scratch_postgres_database


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkins", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--lease-seconds", type=float, default=5.0, help="SMSBOT_CLAIM_LEASE_SECONDS")
    parser.add_argument("--failure-rate", type=float, default=0.0, help="share of creates answered 429/500")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--send-threads", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=300.0, help="abort after this many seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--database-url", default=DEFAULT_SERVER, help="PostgreSQL server for a scratch database"
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)

    settings = {
        "claim_lease_seconds": args.lease_seconds,
        "retry_backoff_seconds": 1.0,
        "quiet_hours_start": "00:00",  # no quiet hours: the run must not depend on the time of day
        "quiet_hours_end": "00:00",
    }
    kills: list[str] = []
    with (
        scratch_postgres_database(args.database_url) as url,
        fake_twilio_process(args.failure_rate) as (api_url, ask),
        temporary_directory() as stats_dir,
    ):
        upgrade(url)
        db = Database(url)
        insert_due_checkins(db, args.checkins, due_at=utcnow())
        spawn = multiprocessing.get_context("spawn")
        go, stop = spawn.Event(), spawn.Event()
        config = WorkerConfig(url, api_url, args.batch_size, args.send_threads, settings)
        processes = start_workers(config, args.workers, go, stop, stats_dir)
        incarnations = len(processes)
        deadline = time.monotonic() + args.timeout
        start = time.perf_counter()
        go.set()
        # Kill points spread over the first 3/4 of the run, so the last dead batch is
        # reconciled while the others still work rather than in a tail of its own.
        thresholds = [int(args.checkins * 0.75 * (k + 1) / (args.kills + 1)) for k in range(args.kills)]
        for number, threshold in enumerate(thresholds):
            threshold += rng.randrange(args.batch_size)  # not always at a batch boundary
            while ask("count") < threshold:
                if time.monotonic() > deadline:
                    raise SystemExit("timed out before every kill happened")
                time.sleep(0.01)
            victim = processes[number % len(processes)]
            os.kill(victim.pid, signal.SIGKILL)
            victim.join()
            in_flight = statuses(db)["sending"]
            kills.append(
                f"kill {number + 1} at {time.perf_counter() - start:5.1f} s: pid {victim.pid} after"
                f" {threshold} accepted; {in_flight} rows 'sending' (both workers) right after"
            )
            # Restart it at once (go is already set, so it starts dispatching when ready).
            processes[number % len(processes)] = start_workers(
                config, 1, go, stop, stats_dir, first=incarnations
            )[0]
            incarnations += 1
        settled = wait_until_settled(db, args.checkins, deadline)
        elapsed = time.perf_counter() - start
        stop.set()
        for process in processes:
            process.join(timeout=30)
        verdict = verify(db, ask, args.checkins)
        found, resent = reconciliations(db)
        db.engine.dispose()

    sent = verdict.statuses.get("sent", 0)
    print(
        f"crash: {args.checkins} check-ins, {args.workers} workers, {len(kills)} kill -9 + restart,"
        f" lease {args.lease_seconds:g} s, {args.failure_rate:.0%} of creates answered 429/500"
        f"{'' if settled else ' — ABORTED at the timeout'}\n  "
        + "\n  ".join(kills)
        + f"\n  {sent} sent in {elapsed:.1f} s = {sent / elapsed:,.0f} check-ins/s (restarts included)\n"
        f"  dead workers' claims: {found} found at the fake and recorded, {resent} re-sent\n"
        f"  duplicates {verdict.duplicates}, lost {verdict.lost}, SID mismatches {verdict.mismatched};"
        f" refused creates {verdict.refused}; statuses {verdict.statuses}",
        flush=True,
    )
    if not settled or verdict.duplicates or verdict.lost or verdict.mismatched:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
