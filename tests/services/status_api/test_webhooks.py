"""The job's webhook URL and its deliveries, as its owner (and nobody else) sees them."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from status_api.settings import StatusSettings
from tests.services.status_api.conftest import JobMaker
from tests.support.webhook_receiver import Reply, receiving
from tests.support.webhooks import delivery_settings
from voxflow.apikeys import issue_key
from voxflow.db import session_scope
from voxflow.jobs import service
from voxflow.jobs.models import Job
from voxflow.jobs.states import JobStatus
from webhook_sender.delivery import deliver


@pytest.fixture
def hooked(sessions: sessionmaker[Session], tenant: str) -> Iterator[list[uuid.UUID]]:
    """Jobs made by the test, deleted afterwards (their deliveries go with them)."""
    made: list[uuid.UUID] = []
    yield made
    with session_scope(sessions) as session:
        session.execute(delete(Job).where(Job.id.in_(made)))


def job_with_hook(
    sessions: sessionmaker[Session], tenant: str, url: str, made: list[uuid.UUID]
) -> uuid.UUID:
    """A committed queued job with a webhook URL."""
    job_id = uuid.uuid4()
    with session_scope(sessions) as session:
        service.create_job(
            session, job_id=job_id, tenant=tenant, options={}, source_key=f"{tenant}/{job_id}",
            source_filename="a.wav", size_bytes=1, duration_seconds=1.0,
            content_sha256="ab" * 32, max_attempts=3, webhook_url=url,
        )  # fmt: skip
    made.append(job_id)
    return job_id


def test_deliveries_appear_when_the_job_finishes_and_show_each_attempt(
    client: TestClient, jobs: JobMaker, auth: dict[str, str], hooked: list[uuid.UUID],
    sessions: sessionmaker[Session], tenant: str,
) -> None:  # fmt: skip
    with receiving([Reply(500, body=b"try later")]) as receiver:
        job_id = job_with_hook(sessions, tenant, receiver.url(), hooked)
        view = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
        assert view["webhook_url"] == receiver.url()
        assert view["links"]["webhooks"].endswith(f"/v1/jobs/{job_id}/webhooks")
        assert client.get(f"/v1/jobs/{job_id}/webhooks", headers=auth).json() == []

        jobs.fail(job_id, JobStatus.QUEUED, "boom", "It broke.")
        [pending] = client.get(f"/v1/jobs/{job_id}/webhooks", headers=auth).json()
        assert pending["event"] == "job.failed"
        assert pending["url"] == receiver.url()
        assert (pending["status"], pending["attempts"]) == ("pending", 0)
        assert pending["next_attempt_at"] is not None
        assert pending["last_status_code"] is None
        assert pending["delivered_at"] is None

        settings = delivery_settings()
        assert deliver(sessions, pending["id"], settings) == "retry"
        [retrying] = client.get(f"/v1/jobs/{job_id}/webhooks", headers=auth).json()
        assert (retrying["status"], retrying["attempts"]) == ("pending", 1)
        assert retrying["last_status_code"] == 500
        assert retrying["last_error"] == "HTTP 500: try later"
        assert retrying["last_attempt_at"] is not None
        assert retrying["next_attempt_at"] > retrying["last_attempt_at"]

        for _ in range(100):
            if deliver(sessions, pending["id"], settings) == "delivered":
                break
            threading.Event().wait(0.05)
        [done] = client.get(f"/v1/jobs/{job_id}/webhooks", headers=auth).json()
    assert (done["status"], done["attempts"], done["last_status_code"]) == ("delivered", 2, 200)
    assert done["id"] == pending["id"]
    assert (done["next_attempt_at"], done["last_error"]) == (None, None)
    assert done["delivered_at"] is not None
    assert [r.headers["webhook-id"] for r in receiver.requests] == [pending["id"]] * 2


def test_only_the_owner_sees_the_deliveries(
    client: TestClient, auth: dict[str, str], hooked: list[uuid.UUID],
    sessions: sessionmaker[Session], tenant: str,
) -> None:  # fmt: skip
    job_id = job_with_hook(sessions, tenant, "https://hooks.example.com/x", hooked)
    with session_scope(sessions) as session:
        other = issue_key(session, f"other-{uuid.uuid4().hex[:8]}", "test")
    path = f"/v1/jobs/{job_id}/webhooks"
    theirs = client.get(path, headers={"Authorization": f"Bearer {other.secret}"})
    assert theirs.status_code == 404
    assert theirs.json()["error"]["code"] == "job_not_found"
    assert client.get(path).status_code == 401
    assert client.get(f"/v1/jobs/{uuid.uuid4()}/webhooks", headers=auth).status_code == 404
    assert client.get("/v1/jobs/nope/webhooks", headers=auth).status_code == 404
    assert client.get(path, headers=auth).status_code == 200


def test_the_job_view_of_a_job_without_a_webhook(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    (job_id,) = jobs.queued()
    view = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
    assert view["webhook_url"] is None
    base = StatusSettings().public_status_url.rstrip("/")
    assert view["links"]["webhooks"] == f"{base}/v1/jobs/{job_id}/webhooks"
    assert client.get(f"/v1/jobs/{job_id}/webhooks", headers=auth).json() == []
