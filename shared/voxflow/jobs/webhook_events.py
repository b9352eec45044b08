"""A finished job's webhook event: recorded with its terminal transition, published after commit.

The delivery row is written in the transaction that finishes the job, so an event can be
neither lost (the row commits with the job) nor sent for a change that rolled back (the
message goes out after the commit). The webhook sender (`services/webhook_sender`) delivers
it; the sweeper (`services/sweeper`) publishes retries and lost deliveries again.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from voxflow.jobs.models import Job
from voxflow.jobs.states import TERMINAL, JobStatus
from voxflow.webhooks import repository
from voxflow.webhooks.publish import publish_after_commit


def event_for(status: JobStatus) -> str:
    """The webhook event a terminal status sends: `job.completed`, `job.failed`, `job.canceled`."""
    return f"job.{status.value}"


EVENTS = tuple(sorted(event_for(status) for status in TERMINAL))


def on_terminal(session: Session, job: Job, status: JobStatus) -> uuid.UUID | None:
    """Record the job's webhook event in the transition's transaction; publish after commit."""
    if not job.webhook_url or status not in TERMINAL:
        return None
    delivery_id = repository.add_delivery(session, job.id, event_for(status), job.webhook_url)
    if delivery_id is not None:
        publish_after_commit(session, delivery_id)
    return delivery_id
