"""Crash: kill -9 a scheduler worker in the middle of dispatch, restart it, and check that
nothing was lost and nothing sent twice.

Two worker processes (``dispatch_due(utcnow())`` in a loop, as ``smsbot worker``) dispatch
``--checkins`` due check-ins on a scratch PostgreSQL database through the real ``twilio``
client to a fake Twilio API in its own process. Each time the fake has accepted another
share of the messages, one worker (in turn) gets SIGKILL while it is sending a batch, and
is started again at once. ``--kill-mode mid-batch`` (default): the victim kills itself
right after an accepted send, its other send threads mid-request and the batch
unrecorded; ``external``: SIGKILL from outside whenever the threshold is crossed.

The dead worker's claimed rows stay ``sending`` until their lease
(``SMSBOT_CLAIM_LEASE_SECONDS``, short here) runs out; then a live worker asks the fake
what it really accepted, records those, and re-sends only the rest (reported per kill as
found + re-sent). Checked at the end: accepted creates per recipient == 1, every row
``sent`` with the fake's SID. Bounded by ``--timeout``.

    .venv/bin/python benchmarks/bench_crash.py [--checkins 20000] [--kills 3] [--lease-seconds 10] \\
        [--kill-mode mid-batch|external] [--failure-rate 0] \\
        [--database-url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_dispatch_faults import (
    DEFAULT_SERVER,
    dispatch_run,
    reconciliations,
    start_workers,
    verify,
    wait_until_settled,
)
from sqlalchemy import select

from smsbot.db import Database
from smsbot.models import CheckIn, utcnow
from smsbot.models import Event as EventRow


def left_sending(db: Database, claimed_before: datetime) -> set[int]:
    """Check-ins still ``sending`` on a claim made before ``claimed_before`` + the lease."""
    with db.session() as session:
        return set(
            session.scalars(
                select(CheckIn.id).where(CheckIn.status == "sending", CheckIn.claimed_until <= claimed_before)
            )
        )


def reconciled(db: Database, checkin_ids: set[int]) -> tuple[int, int]:
    """(found at the provider, re-sent) among ``checkin_ids``, from dispatch's events."""
    with db.session() as session:
        details = session.scalars(select(EventRow.detail).where(EventRow.kind == "claim_reconciled")).all()
    mine = [detail for detail in details if detail["checkin_id"] in checkin_ids]
    found = sum(1 for detail in mine if detail["sid"])
    return found, len(mine) - found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkins", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--lease-seconds", type=float, default=10.0, help="SMSBOT_CLAIM_LEASE_SECONDS")
    parser.add_argument("--failure-rate", type=float, default=0.0, help="share of creates answered 429/500")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--send-threads", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=300.0, help="abort after this many seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--kill-mode",
        choices=["mid-batch", "external"],
        default="mid-batch",
        help="mid-batch: the victim SIGKILLs itself right after an accepted send, other sends in"
        " flight; external: SIGKILL from this process at whatever moment the threshold is crossed",
    )
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
    dead_batches: list[set[int]] = []
    with dispatch_run(args, settings) as run:
        db, workers = run.db, run.workers  # restarted workers replace dead ones in run.workers
        incarnations = len(workers)
        deadline = time.monotonic() + args.timeout
        start = time.perf_counter()
        run.go.set()
        # Kill points spread over the first 3/4 of the run, so the last dead batch is
        # reconciled while the others still work rather than in a tail of its own.
        thresholds = [int(args.checkins * 0.75 * (k + 1) / (args.kills + 1)) for k in range(args.kills)]
        for number, threshold in enumerate(thresholds):
            threshold += rng.randrange(args.batch_size)  # not always at a batch boundary
            while run.ask("count") < threshold:
                if time.monotonic() > deadline:
                    raise SystemExit("timed out before every kill happened")
                time.sleep(0.01)
            victim = workers[number % len(workers)]
            if args.kill_mode == "external":
                os.kill(victim.process.pid, signal.SIGKILL)
            else:
                victim.doom.set()  # it SIGKILLs itself a few sends into its current batch
            victim.process.join()
            killed_at = utcnow()
            at = time.perf_counter() - start
            # Restart it at once (go is already set, so it starts dispatching when ready).
            workers[number % len(workers)] = start_workers(
                run.config, 1, run.go, run.stop, run.stats_dir, first=incarnations
            )[0]
            incarnations += 1
            # By now (a restart takes a second or two) the live worker has recorded the
            # batches it had claimed before the kill: what is left is the dead worker's.
            dead = left_sending(db, killed_at + timedelta(seconds=args.lease_seconds))
            dead -= set().union(*dead_batches)  # an earlier dead batch whose lease still runs
            dead_batches.append(dead)
            kills.append(
                f"kill {number + 1} ({victim.process.exitcode}) at {at:5.1f} s, {threshold} accepted so far:"
                f" the dead worker left {len(dead)} check-ins 'sending'"
            )
        settled = wait_until_settled(db, args.checkins, deadline)
        elapsed = time.perf_counter() - start
        run.stop_workers()
        verdict = verify(db, run.ask, args.checkins)
        found, resent = reconciliations(db)
        per_kill = [reconciled(db, dead) for dead in dead_batches]

    sent = verdict.statuses.get("sent", 0)
    print(
        f"crash: {args.checkins} check-ins, {args.workers} workers, {len(kills)} kill -9 + restart,"
        f" lease {args.lease_seconds:g} s, {args.failure_rate:.0%} of creates answered 429/500"
        f"{'' if settled else ' — ABORTED at the timeout'}\n  "
        + "\n  ".join(kills)
        + f"\n  {sent} sent in {elapsed:.1f} s = {sent / elapsed:,.0f} check-ins/s (restarts included)\n"
        f"  dead workers' claims: {found} found at the fake and recorded, {resent} re-sent"
        f" (per kill, found+re-sent: {', '.join(f'{a}+{b}' for a, b in per_kill)})\n"
        f"  duplicates {verdict.duplicates}, lost {verdict.lost}, SID mismatches {verdict.mismatched};"
        f" refused creates {verdict.refused}; statuses {verdict.statuses}",
        flush=True,
    )
    if not settled or verdict.duplicates or verdict.lost or verdict.mismatched:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
