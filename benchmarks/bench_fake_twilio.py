"""Sends/second through TwilioTransport (the real twilio client) to the local fake Twilio API.

Shows whether the client side can carry the ≥ 500 check-ins/s dispatch target before any
database work is added. The fake runs either in this process (as in the tests: both ends
then share one GIL, so the figure is a floor) or in a child process (closer to real Twilio,
which costs us nothing locally).

    .venv/bin/python benchmarks/bench_fake_twilio.py [--messages 5000] [--threads 1 4]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fake_twilio import FakeTwilio

from smsbot.messaging.twilio import TwilioTransport

SENDER = "+15550009999"
SID, TOKEN = "AC" + "b" * 32, "bench-token"


def serve(conn: Connection) -> None:
    """Child process: serve, answering "count" requests, until told to stop."""
    with FakeTwilio(SID, TOKEN) as fake:
        conn.send(fake.url)
        while conn.recv() == "count":
            conn.send(fake.count())


@contextmanager
def fake_in_thread() -> Iterator[tuple[str, Callable[[], int]]]:
    with FakeTwilio(SID, TOKEN) as fake:
        yield fake.url, fake.count


@contextmanager
def fake_in_process() -> Iterator[tuple[str, Callable[[], int]]]:
    ours, theirs = multiprocessing.Pipe()
    child = multiprocessing.get_context("spawn").Process(target=serve, args=(theirs,))
    child.start()

    def count() -> int:
        ours.send("count")
        return ours.recv()

    try:
        yield ours.recv(), count
    finally:
        ours.send("stop")
        child.join()
        ours.close()
        theirs.close()


def run(url: str, messages: int, threads: int) -> float:
    """Send ``messages`` spread over ``threads``; returns sends per second."""
    transport = TwilioTransport(SID, TOKEN, SENDER, api_url=url)
    numbers = [f"+1555{n:07d}" for n in range(messages)]
    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            for _ in pool.map(lambda to: transport.send(to, "How is Ana's leg today?"), numbers):
                pass
        return messages / (time.perf_counter() - start)
    finally:
        transport.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--fake", choices=["thread", "process"], nargs="+", default=["thread", "process"])
    args = parser.parse_args()
    for where in args.fake:
        with (fake_in_thread if where == "thread" else fake_in_process)() as (url, count):
            for threads in args.threads:
                rate = run(url, args.messages, threads)
                print(f"fake in {where:7}: {args.messages} sends, {threads} thread(s): {rate:,.0f} sends/s")
            expected, accepted = args.messages * len(args.threads), count()
            if accepted != expected:
                raise SystemExit(f"the fake accepted {accepted} of {expected} messages")


if __name__ == "__main__":
    main()
