"""Webhook deliveries: created with a job's terminal transition, published after commit.

The delivery row is written in the transaction that finishes the job, so an event can be
neither lost (the row commits with the job) nor sent for a change that rolled back (the
message goes out after the commit). Retries are not scheduled on the broker: the sweeper
publishes deliveries that fell due (`republish_due`), which also covers lost messages.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from functools import partial

from sqlalchemy.orm import Session

from voxflow.db import after_commit
from voxflow.jobs.models import Job
from voxflow.jobs.states import TERMINAL, JobStatus
from voxflow.queue.celery_app import publisher_app
from voxflow.queue.names import DELIVER_WEBHOOK_TASK, WEBHOOK_QUEUE
from voxflow.webhooks import repository

log = logging.getLogger(__name__)


def event_for(status: JobStatus) -> str:
    """The webhook event a terminal status sends: `job.completed`, `job.failed`, `job.canceled`."""
    return f"job.{status.value}"


EVENTS = tuple(sorted(event_for(status) for status in TERMINAL))


def publish_now(delivery_id: uuid.UUID) -> None:
    """Send the delivery's task (outside any transaction)."""
    publisher_app().send_task(DELIVER_WEBHOOK_TASK, args=[str(delivery_id)], queue=WEBHOOK_QUEUE)


def on_terminal(session: Session, job: Job, status: JobStatus) -> uuid.UUID | None:
    """Record the job's webhook event in the transition's transaction; publish after commit."""
    if not job.webhook_url or status not in TERMINAL:
        return None
    delivery_id = repository.add_delivery(session, job.id, event_for(status), job.webhook_url)
    if delivery_id is not None:
        after_commit(session, partial(publish_now, delivery_id))
    return delivery_id


def republish_due(session: Session, *, older_than: timedelta, limit: int = 100) -> list[uuid.UUID]:
    """Publish pending deliveries that fell due (a retry, a lapsed claim, a lost message)."""
    due = [delivery.id for delivery in repository.lock_due(session, older_than, limit)]
    repository.mark_enqueued(session, due)
    for delivery_id in due:
        after_commit(session, partial(publish_now, delivery_id))
    return due
