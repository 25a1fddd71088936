"""Gunicorn settings for production: ``smsbot serve --prod`` or
``gunicorn -c python:smsbot.web.gunicorn_conf 'smsbot:create_app()'``.

Web workers only answer HTTP; check-ins run in separate ``smsbot worker`` processes.
Every value can be overridden with gunicorn's own ``GUNICORN_CMD_ARGS``.
"""

from __future__ import annotations

import gc
import os

bind = os.environ.get("SMSBOT_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("SMSBOT_WEB_WORKERS", "2"))
# Two threads per worker overlap one request's database waits with another's Python; more
# only queue on the GIL (benchmarks/bench_webhook.py, p99 at 200 msg/s: 198 ms with 8, under 100 with 2).
threads = int(os.environ.get("SMSBOT_WEB_THREADS", "2"))
worker_class = "gthread"
# Twilio gives a webhook 15 s in all; never let a request hang longer than that.
timeout = 15
graceful_timeout = 10
keepalive = 5
# Load the app once in the master so a bad setting fails before any worker forks.
preload_app = True
accesslog = None  # the app logs each webhook itself, without bodies or full numbers
errorlog = "-"
forwarded_allow_ips = os.environ.get("SMSBOT_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")


def when_ready(_server) -> None:  # type: ignore[no-untyped-def]
    """Hide the preloaded app (rules, triage engine: some 260,000 objects) from the garbage
    collector before workers fork: a full collection of them takes over 100 ms, a pause that
    otherwise lands on whichever webhook triggers it. They live as long as the process."""
    gc.freeze()


def post_fork(_server, worker) -> None:  # type: ignore[no-untyped-def]
    """Give each worker its own connection pool.

    The app (and its engine) was built in the master; a connection the master had opened
    would otherwise be shared by every forked worker, and their queries would interleave.
    """
    database = worker.app.wsgi().extensions.get("smsbot.db")
    if database is not None:
        database.engine.dispose(close=False)


def on_starting(server) -> None:  # type: ignore[no-untyped-def]
    """JSON logs for the app, as ``smsbot serve`` sets them up (workers inherit them); one
    line of warning when the API's rate limits would silently be per worker."""
    import logging

    from smsbot.logs import configure_logging

    configure_logging()
    if server.cfg.workers > 1 and not os.environ.get("SMSBOT_REDIS_URL"):
        logging.getLogger("smsbot.web.limits").warning(
            "%d web workers without SMSBOT_REDIS_URL: each keeps its own API rate limits "
            "(a client gets %d times the budget); set SMSBOT_REDIS_URL to share them",
            server.cfg.workers,
            server.cfg.workers,
        )


def child_exit(_server, worker) -> None:  # type: ignore[no-untyped-def]
    """Drop a dead worker's metric files so /metrics does not count it forever."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
