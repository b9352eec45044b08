"""Publishing after commit: the only way jobs reach the broker."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from voxflow.db import after_commit
from voxflow.jobs import repository
from voxflow.jobs.states import JobStatus
from voxflow.queue.celery_app import publisher_app
from voxflow.queue.names import TASK_FOR_STATUS


def publish_now(job_id: uuid.UUID, status: JobStatus) -> None:
    """Send the task that handles a job waiting in `status` (outside any transaction)."""
    task_name, queue = TASK_FOR_STATUS[status]
    publisher_app().send_task(task_name, args=[str(job_id)], queue=queue)


def enqueue_after_commit(session: Session, job_id: uuid.UUID, status: JobStatus) -> None:
    """Record the publish on the job and send the message once the transaction commits."""
    repository.mark_enqueued(session, [job_id])
    after_commit(session, lambda: publish_now(job_id, status))
