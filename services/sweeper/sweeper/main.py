"""The sweeper's loop: re-enqueue jobs whose worker vanished (lease expired) or whose message
was lost, retry due webhook deliveries (`webhook_retries`), apply retention, serve /metrics.

Run one or more (`voxflow-sweeper`, `python -m sweeper`, or `voxflow sweeper`); their SQL
locks with SKIP LOCKED, so replicas never handle the same job twice in one pass.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import timedelta
from types import FrameType
from wsgiref.simple_server import WSGIServer

import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from sweeper import retention, webhook_retries
from sweeper.platform_metrics import PlatformCollector
from sweeper.settings import SweeperSettings
from voxflow.db import make_engine, make_sessionmaker, session_scope
from voxflow.embedded import redis_client_url
from voxflow.jobs import idempotency_keys, service
from voxflow.logs import configure_logging
from voxflow.observability import exposition, metrics
from voxflow.observability.tracing import setup_tracing, shutdown_tracing
from voxflow.settings import JobSettings
from voxflow.storage import make_storage

log = logging.getLogger(__name__)


HOUSEKEEPING_BATCH = 500


def housekeep(sessions: sessionmaker[Session], settings: SweeperSettings) -> None:
    """Retention of old audio and expiry of idempotency keys, one bounded batch each."""
    with session_scope(sessions) as session:
        gone = idempotency_keys.purge_expired(session)
    if gone:
        log.info("housekeeping: %d expired idempotency key(s) removed", gone)
    if settings.audio_retention_days is None:
        return
    with session_scope(sessions) as session:
        retention.expire_audio(
            session, make_storage(settings), timedelta(days=settings.audio_retention_days),
            limit=HOUSEKEEPING_BATCH,
        )  # fmt: skip


def sweep_once(sessions: sessionmaker[Session], settings: JobSettings) -> service.SweepReport:
    """Run one pass and commit it (messages go out after the commit)."""
    republish_after = timedelta(seconds=settings.requeue_after_seconds)
    with session_scope(sessions) as session:
        report = service.sweep(session, republish_after=republish_after)
    # Committed: count what was done (a failed commit counts nothing).
    metrics.SWEEPER_REQUEUED.labels(reason="lease_expired").inc(len(report.requeued))
    metrics.SWEEPER_REQUEUED.labels(reason="message_lost").inc(len(report.republished))
    metrics.SWEEPER_FAILED.inc(len(report.failed))
    if report.requeued or report.failed or report.republished:
        log.info(
            "sweep: %d requeued after lost leases, %d failed (attempts), %d republished",
            len(report.requeued), len(report.failed), len(report.republished),
        )  # fmt: skip
    # Webhooks in a transaction of their own: a problem there never undoes the job sweep.
    with session_scope(sessions) as session:
        report.webhooks = webhook_retries.republish_due(session, older_than=republish_after)
    if report.webhooks:
        log.info(
            "sweep: %d webhook deliveries due, published: %s",
            len(report.webhooks), " ".join(str(d) for d in report.webhooks),
        )  # fmt: skip
    return report


def serve_metrics(settings: SweeperSettings, engine: Engine) -> WSGIServer | None:
    """The sweeper's /metrics: its counters, and the queue and job gauges of the platform."""
    if not settings.metrics_port:
        return None
    broker = None
    if settings.redis_url:
        broker = redis.Redis.from_url(redis_client_url(settings.redis_url), socket_timeout=5)
    collector = PlatformCollector(engine, broker)
    return exposition.serve(settings.metrics_port, settings.metrics_host, collector)


def run_forever(settings: SweeperSettings | None = None) -> None:
    """Sweep every `sweep_interval_seconds` until SIGTERM or SIGINT."""
    configure_logging("sweeper")
    settings = settings or SweeperSettings()
    if not settings.database_url:
        raise RuntimeError("VOXFLOW_DATABASE_URL is not set")
    setup_tracing("sweeper")  # each re-enqueue is a span in its job's trace
    engine = make_engine(settings.database_url, pool_size=1)
    sessions = make_sessionmaker(engine)
    server = serve_metrics(settings, engine)
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("sweeper running every %.1fs", settings.sweep_interval_seconds)
    while not stop.is_set():
        try:
            sweep_once(sessions, settings)
            housekeep(sessions, settings)
        except Exception:
            log.exception("sweep failed; retrying next interval")
        stop.wait(settings.sweep_interval_seconds)
    if server is not None:
        server.shutdown()
    engine.dispose()
    shutdown_tracing()


def main() -> None:
    """`voxflow-sweeper` and `python -m sweeper`: the loop, or a one-line reason it cannot run."""
    settings = SweeperSettings()
    if not settings.database_url:
        sys.exit("voxflow-sweeper: set VOXFLOW_DATABASE_URL to the PostgreSQL URL of the jobs")
    run_forever(settings)
