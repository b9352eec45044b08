"""What a Celery worker process needs (database, storage), built after fork, and its hooks."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Celery
from celery.concurrency import get_implementation
from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.signals import worker_init, worker_process_init, worker_process_shutdown
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from voxflow.db import make_engine, make_sessionmaker
from voxflow.observability import tracing
from voxflow.settings import DatabaseSettings, JobSettings, MetricsSettings, StorageSettings
from voxflow.storage import Storage, make_storage
from voxflow.worker.observability import install_worker_observability

log = logging.getLogger(__name__)


class WorkerSettings(DatabaseSettings, StorageSettings, JobSettings, MetricsSettings):
    """Settings every worker reads."""


@dataclass
class WorkerRuntime:
    """Per-process database engine and storage of a worker."""

    settings: WorkerSettings
    engine: Engine
    sessions: sessionmaker[Session]
    storage: Storage

    @classmethod
    def build(cls, settings: WorkerSettings) -> WorkerRuntime:
        """Connect to the configured database and storage."""
        if not settings.database_url:
            raise RuntimeError("VOXFLOW_DATABASE_URL is not set")
        engine = make_engine(settings.database_url, pool_size=2)
        return cls(settings, engine, make_sessionmaker(engine), make_storage(settings))


_runtime: WorkerRuntime | None = None


def worker_runtime() -> WorkerRuntime:
    """This process's runtime, built on first use (after fork in prefork children)."""
    global _runtime  # noqa: PLW0603 (one runtime per process, rebuilt after fork)
    if _runtime is None:
        _runtime = WorkerRuntime.build(WorkerSettings())
    return _runtime


def install_process_hooks(
    app: Celery,
    on_start: Callable[[], None] | None = None,
    on_stop: Callable[[], None] | None = None,
) -> None:
    """Rebuild connections after fork, run `on_start` (model preload); clean up at exit."""

    @worker_init.connect(weak=False)
    def _main(sender: Any = None, **_: Any) -> None:
        # Pools that do not fork (solo, threads) run tasks here and send no worker_process_init.
        if not _forks(getattr(sender, "pool_cls", None)):
            tracing.setup_tracing(app.main or "worker")
        if os.environ.get("REMAP_SIGTERM") != "SIGQUIT":
            log.warning(
                "REMAP_SIGTERM=SIGQUIT is not set: SIGTERM waits for running jobs without a "
                "limit (no soft shutdown); a job killed mid-way waits for its lease to expire"
            )

    @worker_process_init.connect(weak=False)
    def _init(**_: Any) -> None:
        global _runtime  # noqa: PLW0603
        # After fork, never before: a batch exporter's thread does not survive fork.
        tracing.setup_tracing(app.main or "worker")
        # Pooled connections inherited through fork must not be shared with the parent.
        if _runtime is not None:
            _runtime.engine.dispose(close=False)
        _runtime = None
        worker_runtime()
        if on_start is not None:
            on_start()

    @worker_process_shutdown.connect(weak=False)
    def _shutdown(**_: Any) -> None:
        if on_stop is not None:
            on_stop()
        if _runtime is not None:
            _runtime.engine.dispose()
        tracing.shutdown_tracing()  # children leave by os._exit: export their last spans now

    install_worker_observability(app)


def _forks(pool: Any) -> bool:
    """Whether a worker's pool (a name such as `solo`, or a class) runs tasks in forked children."""
    if pool is None:
        return True  # unknown: leave tracing to worker_process_init, if it comes
    try:
        implementation = get_implementation(pool)
    except Exception:
        return True
    return isinstance(implementation, type) and issubclass(implementation, PreforkPool)
