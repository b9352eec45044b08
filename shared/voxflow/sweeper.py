"""The sweeper: re-enqueues jobs whose worker vanished (lease expired) or whose message was lost.

Run one or more (`voxflow sweeper`); their SQL locks with SKIP LOCKED, so replicas never
handle the same job twice in one pass.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import timedelta
from types import FrameType

from sqlalchemy.orm import Session, sessionmaker

from voxflow.db import make_engine, make_sessionmaker, session_scope
from voxflow.jobs import service
from voxflow.logs import configure_logging
from voxflow.settings import DatabaseSettings, JobSettings

log = logging.getLogger(__name__)


class SweeperSettings(DatabaseSettings, JobSettings):
    """Everything the sweeper reads from the environment (prefix VOXFLOW_)."""


def sweep_once(sessions: sessionmaker[Session], settings: JobSettings) -> service.SweepReport:
    """Run one pass and commit it (messages go out after the commit)."""
    with session_scope(sessions) as session:
        report = service.sweep(
            session, republish_after=timedelta(seconds=settings.requeue_after_seconds)
        )
    if report.requeued or report.failed or report.republished:
        log.info(
            "sweep: %d requeued after lost leases, %d failed (attempts), %d republished",
            len(report.requeued), len(report.failed), len(report.republished),
        )  # fmt: skip
    return report


def run_forever(settings: SweeperSettings | None = None) -> None:
    """Sweep every `sweep_interval_seconds` until SIGTERM or SIGINT."""
    configure_logging("sweeper")
    settings = settings or SweeperSettings()
    if not settings.database_url:
        raise RuntimeError("VOXFLOW_DATABASE_URL is not set")
    engine = make_engine(settings.database_url, pool_size=1)
    sessions = make_sessionmaker(engine)
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("sweeper running every %.1fs", settings.sweep_interval_seconds)
    while not stop.is_set():
        try:
            sweep_once(sessions, settings)
        except Exception:
            log.exception("sweep failed; retrying next interval")
        stop.wait(settings.sweep_interval_seconds)
    engine.dispose()


if __name__ == "__main__":
    run_forever()
