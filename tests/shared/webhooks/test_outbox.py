"""Webhook deliveries are born with the job's terminal transition and follow it exactly."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from tests.support.jobs import LEASE, WORKER, new_job, published, transcript_for
from tests.support.servers import Servers
from voxflow.db import session_scope
from voxflow.jobs import repository, service, webhook_events
from voxflow.jobs.states import JobStatus
from voxflow.queue.names import WEBHOOK_QUEUE
from voxflow.webhooks import repository as webhooks
from voxflow.webhooks.models import WebhookDelivery

URL = "https://hooks.example.com/voxflow?token=abc"


def deliveries(session: Session, job_id: uuid.UUID) -> list[WebhookDelivery]:
    """The job's deliveries as the database has them now."""
    session.expire_all()
    return list(webhooks.list_for_job(session, job_id))


def test_completion_creates_the_delivery_in_its_own_transaction(
    db_session: Session, tenant: str, servers: Servers
) -> None:
    job_id = new_job(db_session, tenant, webhook_url=URL)
    db_session.commit()
    service.claim(db_session, job_id, JobStatus.QUEUED, WORKER, LEASE)
    assert deliveries(db_session, job_id) == []  # running is not an event
    service.finish_transcription(db_session, job_id, WORKER, transcript_for(job_id))
    [delivery] = deliveries(db_session, job_id)
    assert (delivery.event, delivery.url, delivery.status) == ("job.completed", URL, "pending")
    assert delivery.attempts == 0
    assert delivery.next_attempt_at is not None
    assert delivery.id not in published(servers, WEBHOOK_QUEUE)  # not before the commit
    db_session.commit()
    assert published(servers, WEBHOOK_QUEUE).count(delivery.id) == 1


def test_a_rolled_back_transition_leaves_no_delivery_and_sends_nothing(
    sessions: sessionmaker[Session], tenant: str, servers: Servers
) -> None:
    with session_scope(sessions) as session:
        job_id = new_job(session, tenant, webhook_url=URL)
    seen: list[uuid.UUID] = []

    def doomed_unit_of_work() -> None:
        with session_scope(sessions) as session:
            service.fail(session, job_id, JobStatus.QUEUED, "boom", "It broke.")
            seen.extend(d.id for d in deliveries(session, job_id))
            raise RuntimeError("crash before the commit")

    with pytest.raises(RuntimeError, match="crash"):
        doomed_unit_of_work()
    assert len(seen) == 1  # it existed inside the transaction
    with sessions() as session:
        assert deliveries(session, job_id) == []
        job = repository.get_job(session, job_id)
        assert job is not None
        assert job.status == "queued"
    assert seen[0] not in published(servers, WEBHOOK_QUEUE)
    with session_scope(sessions) as session:
        session.execute(text("DELETE FROM jobs WHERE id = :id"), {"id": job_id})


@pytest.mark.parametrize(
    ("status", "event"), [(JobStatus.FAILED, "job.failed"), (JobStatus.CANCELED, "job.canceled")]
)
def test_failed_and_canceled_jobs_notify_too(
    db_session: Session, tenant: str, status: JobStatus, event: str
) -> None:
    job_id = new_job(db_session, tenant, webhook_url=URL)
    if status is JobStatus.FAILED:
        service.fail(db_session, job_id, JobStatus.QUEUED, "audio_too_long", "Too long.")
    else:
        service.cancel(db_session, job_id, actor="tenant:x")
    assert [d.event for d in deliveries(db_session, job_id)] == [event]


def test_a_job_without_a_webhook_creates_no_delivery(db_session: Session, tenant: str) -> None:
    job_id = new_job(db_session, tenant)
    service.fail(db_session, job_id, JobStatus.QUEUED, "boom", "It broke.")
    assert deliveries(db_session, job_id) == []


def test_one_event_makes_one_delivery(db_session: Session, tenant: str) -> None:
    job_id = new_job(db_session, tenant, webhook_url=URL)
    job = service.fail(db_session, job_id, JobStatus.QUEUED, "boom", "It broke.")
    assert job is not None
    # A second recording of the same event (a replayed transition) is absorbed.
    assert webhook_events.on_terminal(db_session, job, JobStatus.FAILED) is None
    assert len(deliveries(db_session, job_id)) == 1


def test_deleting_the_job_deletes_its_deliveries(db_session: Session, tenant: str) -> None:
    job_id = new_job(db_session, tenant, webhook_url=URL)
    job = service.fail(db_session, job_id, JobStatus.QUEUED, "boom", "It broke.")
    assert job is not None
    assert len(deliveries(db_session, job_id)) == 1
    repository.delete_job(db_session, job.id)
    count = select(func.count()).select_from(WebhookDelivery)
    assert db_session.scalar(count.where(WebhookDelivery.job_id == job_id)) == 0
