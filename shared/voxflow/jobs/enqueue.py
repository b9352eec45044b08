"""Publishing a job's task after commit: the only way jobs reach the broker."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from sqlalchemy.orm import Session

from voxflow.db import after_commit
from voxflow.jobs import repository
from voxflow.jobs.states import JobStatus
from voxflow.observability import tracing
from voxflow.queue.celery_app import publisher_app
from voxflow.queue.names import GENERATE_TASK, LLM_QUEUE, TRANSCRIBE_TASK, TRANSCRIPTION_QUEUE

# The waiting state a job is in decides which task picks it up next.
TASK_FOR_STATUS: dict[JobStatus, tuple[str, str]] = {
    JobStatus.QUEUED: (TRANSCRIBE_TASK, TRANSCRIPTION_QUEUE),
    JobStatus.TRANSCRIBED: (GENERATE_TASK, LLM_QUEUE),
}


def publish_now(
    job_id: uuid.UUID,
    status: JobStatus,
    *,
    requeue_reason: str | None = None,
    trace_context: Mapping[str, str] | None = None,
) -> None:
    """Send the task that handles a job waiting in `status` (outside any transaction).

    A re-enqueue (`requeue_reason`, from the sweeper) is published inside a span of the job's
    own trace (`trace_context`, from its row), so the message carries that trace onwards.
    """
    task_name, queue = TASK_FOR_STATUS[status]
    if requeue_reason is None:
        publisher_app().send_task(task_name, args=[str(job_id)], queue=queue)
        return
    attributes = {
        "voxflow.job_id": str(job_id),
        "voxflow.status": status.value,
        "voxflow.requeue.reason": requeue_reason,
    }
    with tracing.job_span("job.requeue", trace_context, attributes):
        publisher_app().send_task(task_name, args=[str(job_id)], queue=queue)


def enqueue_after_commit(
    session: Session,
    job_id: uuid.UUID,
    status: JobStatus,
    *,
    requeue_reason: str | None = None,
    trace_context: Mapping[str, str] | None = None,
) -> None:
    """Record the publish on the job and send the message once the transaction commits."""
    repository.mark_enqueued(session, [job_id])
    publish_after_commit(
        session, job_id, status, requeue_reason=requeue_reason, trace_context=trace_context
    )


def publish_after_commit(
    session: Session,
    job_id: uuid.UUID,
    status: JobStatus,
    *,
    requeue_reason: str | None = None,
    trace_context: Mapping[str, str] | None = None,
) -> None:
    """Send the message once the transaction commits (the job's `enqueued_at` is the
    caller's to set: a new job's row is inserted with it)."""
    after_commit(
        session,
        lambda: publish_now(
            job_id, status, requeue_reason=requeue_reason, trace_context=trace_context
        ),
    )
