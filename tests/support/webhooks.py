"""Helpers the webhook tests share (the API and end-to-end tests too): secret, settings, rows.

The `finished` fixture is imported by the conftest of each folder whose tests use it.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from tests.support.jobs import new_job
from voxflow.db import session_scope
from voxflow.jobs import service
from voxflow.jobs.models import Job
from voxflow.jobs.states import JobStatus
from voxflow.webhooks import repository
from voxflow.webhooks.models import WebhookDelivery
from webhook_sender.settings import DeliverySettings

SECRET = "whsec_" + base64.b64encode(b"voxflow-webhook-test-key-32bytes").decode()
STATUS_URL = "https://status.example.test"

# Makes a committed finished job with a webhook URL: (url, status) -> (job id, delivery id).
Finish = Callable[..., tuple[uuid.UUID, uuid.UUID]]


def delivery_settings(**overrides: Any) -> DeliverySettings:
    """Settings for deliveries to loopback receivers, with quick retries."""
    values: dict[str, Any] = {
        "webhook_secret": SECRET,
        "webhook_allow_private_networks": True,
        "webhook_timeout_seconds": 2.0,
        "webhook_retry_base_seconds": 0.05,
        "webhook_retry_max_seconds": 0.2,
        "public_status_url": STATUS_URL,
    }
    return DeliverySettings(**(values | overrides))


def load(sessions: sessionmaker[Session], delivery_id: uuid.UUID) -> WebhookDelivery:
    """The delivery as committed now."""
    with sessions() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        assert delivery is not None
        return delivery


def claim(sessions: sessionmaker[Session], delivery_id: uuid.UUID) -> WebhookDelivery | None:
    """Claim a delivery for an attempt of two minutes, committed."""
    with session_scope(sessions) as session:
        return repository.claim(session, delivery_id, timedelta(minutes=2))


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
