"""Logs and metrics of a Celery worker: Voxflow's log format, one /metrics per worker.

The main process serves the metrics of all its pool processes (they share one
PROMETHEUS_MULTIPROC_DIR, inherited through fork) on VOXFLOW_METRICS_PORT, from a thread
started once the pool is up: the first pool processes are forked before it exists. A pool
process that exits cleanly drops its live gauges itself; the endpoint drops those of
killed ones.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import (
    setup_logging,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
)

from voxflow.logs import configure_logging
from voxflow.observability import exposition, metrics
from voxflow.settings import MetricsSettings

log = logging.getLogger(__name__)


def install_worker_observability(app: Celery) -> None:
    """Connect the worker's logging and metrics to Celery's signals (once per app)."""
    service = app.main or "worker"

    @setup_logging.connect(weak=False)
    def _logging(loglevel: int | str | None = None, **_: Any) -> None:
        # A receiver here stops Celery from installing its own handlers and format.
        configure_logging(service, loglevel)

    @worker_ready.connect(weak=False)
    def _serve(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", app) is not app:
            return
        settings = MetricsSettings()
        if not settings.metrics_port:
            return
        try:
            exposition.serve(settings.metrics_port, settings.metrics_host)
        except OSError:
            log.exception("cannot serve metrics on port %d", settings.metrics_port)

    @worker_process_init.connect(weak=False)
    def _ready(**_: Any) -> None:
        # Sent after the model preload (connected earlier): ready means able to take tasks.
        metrics.WORKER_PROCESSES.labels(service=service).set(1)

    @worker_process_shutdown.connect(weak=False)
    def _exited(**_: Any) -> None:
        exposition.process_exited()
