"""What a Celery worker process needs (database, storage) and the shape of one job stage."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import Celery
from celery.concurrency import get_implementation
from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.signals import worker_init, worker_process_init, worker_process_shutdown
from opentelemetry import trace
from opentelemetry.trace import StatusCode
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from voxflow.db import make_engine, make_sessionmaker, session_scope
from voxflow.jobs import service
from voxflow.jobs.errors import JobError, LeaseLostError, PermanentJobError
from voxflow.jobs.models import Job
from voxflow.jobs.states import WAITING_TO_RUNNING, JobStatus
from voxflow.logs import job_context
from voxflow.observability import metrics, tracing
from voxflow.settings import DatabaseSettings, JobSettings, MetricsSettings, StorageSettings
from voxflow.storage import Storage, make_storage
from voxflow.worker.lease import Heartbeat
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
        get_runtime()
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


Work = Callable[[Job, Heartbeat], None]


def run_stage(job_id: str, waiting: JobStatus, owner: str, failure_code: str, work: Work) -> str:
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
    lease = timedelta(seconds=runtime.settings.lease_seconds)
    with session_scope(runtime.sessions) as session:
        job = service.claim(session, jid, waiting, owner, lease)
    if job is None:
        log.info("job %s is not waiting for this stage; skipping", jid)
        return "skipped"
    running = WAITING_TO_RUNNING[waiting]
    attributes = {**tracing.job_attributes(job), "voxflow.stage": running.value,
                  "voxflow.worker": owner}  # fmt: skip
    started = time.perf_counter()
    # The job's trace, from its row: whoever published this message (the sweeper too).
    with (
        job_context(jid),  # the stage's logs carry the job id
        tracing.job_span(f"stage {running.value}", job.trace_context, attributes) as span,
    ):
        outcome = _run_claimed(runtime, job, running, owner, failure_code, work)
        span.set_attribute("voxflow.outcome", outcome)
        if outcome in ("failed", "retry"):
            span.set_status(StatusCode.ERROR, outcome)
    elapsed = time.perf_counter() - started
    metrics.STAGE_DURATION.labels(stage=running.value, outcome=outcome).observe(elapsed)
    return outcome


def _run_claimed(
    runtime: WorkerRuntime, job: Job, running: JobStatus, owner: str, failure_code: str, work: Work
) -> str:
    jid = job.id
    settings = runtime.settings
    lease = timedelta(seconds=settings.lease_seconds)
    heartbeat = Heartbeat(
        runtime.sessions, jid, running, owner,
        lease=lease, interval=settings.heartbeat_seconds,
        progress_interval=settings.progress_interval_seconds,
    )  # fmt: skip
    try:
        with heartbeat:
            work(job, heartbeat)
    except SystemExit:
        # Soft shutdown ran out of time: the pool stops this child with its terminate signal,
        # which billiard turns into SystemExit here. Hand the job back now (not after the
        # lease expires), without counting the attempt, then let the child exit.
        log.warning("worker stopping; job %s goes back to its queue", jid)
        with session_scope(runtime.sessions) as session:
            service.release(session, jid, running, owner, "worker shutdown", refund=True)
        raise
    except LeaseLostError:
        log.warning("lost the lease on job %s; another worker will finish it", jid)
        return "lease_lost"
    except PermanentJobError as exc:
        trace.get_current_span().record_exception(exc)
        _fail(runtime, jid, running, owner, exc.code, exc.message)
        return "failed"
    except Exception as exc:
        trace.get_current_span().record_exception(exc)
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
