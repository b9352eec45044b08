"""One stage of one job in a worker: claim it, run the work under a heartbeat, settle failures."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from opentelemetry import trace
from opentelemetry.trace import StatusCode
from sqlalchemy.orm import Session, sessionmaker

from voxflow.db import session_scope
from voxflow.jobs import service, telemetry
from voxflow.jobs.errors import JobError, LeaseLostError, PermanentJobError
from voxflow.jobs.models import Job
from voxflow.jobs.states import WAITING_TO_RUNNING, JobStatus
from voxflow.logs import job_context
from voxflow.observability import metrics, tracing
from voxflow.worker.lease import Heartbeat
from voxflow.worker.process import WorkerRuntime, worker_runtime

log = logging.getLogger(__name__)


Work = Callable[[Job, Heartbeat], None]


def run_stage(job_id: str, waiting: JobStatus, owner: str, failure_code: str, work: Work) -> str:
    """Claim a job for one stage, run `work` under a heartbeat, and settle failures.

    Returns what happened (`done`, `skipped`, `lease_lost`, `failed`, `retry`) for logs
    and tests; a skipped job belongs to someone else or is already past this stage.
    """
    runtime = worker_runtime()
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
    attributes = {**telemetry.job_attributes(job), "voxflow.stage": running.value,
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
    except Exception as exc:
        trace.get_current_span().record_exception(exc)
        if not isinstance(exc, PermanentJobError):
            log.exception("stage %s of job %s failed (attempt %d)", running, jid, job.attempts)
        return retry_or_fail(runtime.sessions, job, running, owner, exc, failure_code)
    return "done"


def retry_or_fail(
    sessions: sessionmaker[Session],
    job: Job,
    running: JobStatus,
    owner: str,
    exc: Exception,
    failure_code: str,
) -> str:
    """Settle a claimed job whose stage raised: the one place that decides retry or fail.

    A `PermanentJobError` fails the job with its code and message. Any other error fails it
    once its attempts are spent (with the error's code, or `failure_code`), and otherwise
    hands it back to its queue for another attempt. Returns `failed` or `retry`.
    """
    if isinstance(exc, PermanentJobError):
        code, message = exc.code, exc.message
    else:
        message = f"{type(exc).__name__}: {exc}"[:1000]
        code = exc.code if isinstance(exc, JobError) else failure_code
        if job.attempts < job.max_attempts:
            with session_scope(sessions) as session:
                service.release(session, job.id, running, owner, message)
            return "retry"
    with session_scope(sessions) as session:
        service.fail(session, job.id, running, code, message, owner=owner)
    return "failed"
