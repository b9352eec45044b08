"""Fixtures of the webhook tests: committed finished jobs with a webhook URL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from tests.shared.job_helpers import new_job
from tests.shared.webhooks.helpers import Finish
from voxflow.db import session_scope
from voxflow.jobs import service
from voxflow.jobs.models import Job, WebhookDelivery
from voxflow.jobs.states import JobStatus


@pytest.fixture
def finished(sessions: sessionmaker[Session], tenant: str) -> Iterator[Finish]:
    """Make committed jobs with a webhook URL that failed (or were canceled); delete them after.

    Returns (job id, delivery id). Deleting the jobs takes their deliveries with them, so no
    due delivery outlives the test for a later sweeper to find.
    """
    made: list[uuid.UUID] = []

    def finish(url: str, status: JobStatus = JobStatus.FAILED) -> tuple[uuid.UUID, uuid.UUID]:
        with session_scope(sessions) as session:
            job_id = new_job(session, tenant, webhook_url=url)
        made.append(job_id)
        with session_scope(sessions) as session:
            if status is JobStatus.FAILED:
                assert service.fail(session, job_id, JobStatus.QUEUED, "boom", "It broke.")
            else:
                assert service.cancel(session, job_id, actor="test")
        with sessions() as session:
            query = select(WebhookDelivery.id).where(WebhookDelivery.job_id == job_id)
            delivery_id = session.scalars(query).one()
        return job_id, delivery_id

    yield finish
    with session_scope(sessions) as session:
        session.execute(delete(Job).where(Job.id.in_(made)))
