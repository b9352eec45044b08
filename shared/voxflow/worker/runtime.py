"""What a Celery worker process needs (database, storage) and the shape of one job stage."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from voxflow.db import make_engine, make_sessionmaker, session_scope
from voxflow.jobs import service
from voxflow.jobs.errors import JobError, LeaseLostError, PermanentJobError
from voxflow.jobs.models import Job
from voxflow.jobs.states import WAITING_TO_RUNNING, JobStatus
from voxflow.settings import DatabaseSettings, JobSettings, StorageSettings
from voxflow.storage import Storage, make_storage
from voxflow.worker.lease import Heartbeat

log = logging.getLogger(__name__)


class WorkerSettings(DatabaseSettings, StorageSettings, JobSettings):
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


def get_runtime() -> WorkerRuntime:
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

    @worker_process_init.connect(weak=False)
    def _init(**_: Any) -> None:
        global _runtime  # noqa: PLW0603
        # Pooled connections inherited through fork must not be shared with the parent.
        if _runtime is not None:
            _runtime.engine.dispose(close=False)
        _runtime = None
        get_runtime()
        if on_start is not None:
            on_start()

    @worker_process_shutdown.connect(weak=False)
    def _shutdown(**_: Any) -> None:
        if on_stop is not None:
            on_stop()
        if _runtime is not None:
            _runtime.engine.dispose()

    _ = app


Work = Callable[[Job, Heartbeat], None]


def run_stage(  # noqa: PLR0911 (each outcome is named where it happens)
    job_id: str, waiting: JobStatus, owner: str, failure_code: str, work: Work
) -> str:
    """Claim a job for one stage, run `work` under a heartbeat, and settle failures.

    Returns what happened (`done`, `skipped`, `lease_lost`, `failed`, `retry`) for logs
    and tests; a skipped job belongs to someone else or is already past this stage.
    """
    runtime = get_runtime()
    try:
        jid = uuid.UUID(job_id)
    except ValueError:
        log.warning("ignoring a message with an invalid job id %r", job_id)
        return "skipped"
    settings = runtime.settings
    lease = timedelta(seconds=settings.lease_seconds)
    with session_scope(runtime.sessions) as session:
        job = service.claim(session, jid, waiting, owner, lease)
    if job is None:
        log.info("job %s is not waiting for this stage; skipping", jid)
        return "skipped"
    running = WAITING_TO_RUNNING[waiting]
    heartbeat = Heartbeat(
        runtime.sessions, jid, running, owner,
        lease=lease, interval=settings.heartbeat_seconds,
        progress_interval=settings.progress_interval_seconds,
    )  # fmt: skip
    try:
        with heartbeat:
            work(job, heartbeat)
    except LeaseLostError:
        log.warning("lost the lease on job %s; another worker will finish it", jid)
        return "lease_lost"
    except PermanentJobError as exc:
        _fail(runtime, jid, running, owner, exc.code, exc.message)
        return "failed"
    except Exception as exc:
        log.exception("stage %s of job %s failed (attempt %d)", running, jid, job.attempts)
        message = f"{type(exc).__name__}: {exc}"[:1000]
        code = exc.code if isinstance(exc, JobError) else failure_code
        if job.attempts >= job.max_attempts:
            _fail(runtime, jid, running, owner, code, message)
            return "failed"
        with session_scope(runtime.sessions) as session:
            service.release(session, jid, running, owner, message)
        return "retry"
    return "done"


def _fail(
    runtime: WorkerRuntime, jid: uuid.UUID, running: JobStatus, owner: str, code: str, msg: str
) -> None:
    with session_scope(runtime.sessions) as session:
        service.fail(session, jid, running, code, msg, owner=owner)
