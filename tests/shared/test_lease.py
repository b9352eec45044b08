"""The heartbeat thread: renews a running stage's lease, writes progress, notices a lost lease."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from tests.support.jobs import WORKER, new_job, transcript_for
from voxflow.db import session_scope
from voxflow.jobs import repository, service
from voxflow.jobs.errors import LeaseLostError
from voxflow.jobs.models import Job
from voxflow.jobs.states import JobStatus
from voxflow.worker.lease import Heartbeat

LEASE = timedelta(seconds=2)


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def job_id(sessions: sessionmaker[Session], tenant: str) -> uuid.UUID:
    """A committed job that WORKER is transcribing under a short lease."""
    with session_scope(sessions) as session:
        created = new_job(session, tenant)
    with session_scope(sessions) as session:
        assert service.claim(session, created, JobStatus.QUEUED, WORKER, LEASE) is not None
    return created


def read(sessions: sessionmaker[Session], job_id: uuid.UUID) -> Job:
    """The committed job row."""
    with session_scope(sessions) as session:
        job = repository.get_job(session, job_id)
        assert job is not None
        return job


def expiry(sessions: sessionmaker[Session], job_id: uuid.UUID) -> datetime:
    """The committed lease expiry of a job."""
    expires = read(sessions, job_id).lease_expires_at
    assert expires is not None
    return expires


def heartbeat(sessions: sessionmaker[Session], job_id: uuid.UUID) -> Heartbeat:
    """A fast heartbeat for WORKER's lease."""
    return Heartbeat(
        sessions,
        job_id,
        JobStatus.TRANSCRIBING,
        WORKER,
        lease=LEASE,
        interval=0.2,
        progress_interval=0.2,
    )


def test_heartbeat_keeps_extending_the_lease(
    sessions: sessionmaker[Session], job_id: uuid.UUID
) -> None:
    first = expiry(sessions, job_id)
    with heartbeat(sessions, job_id) as beat:
        assert wait_for(lambda: expiry(sessions, job_id) > first, timeout=2.0)
        second = expiry(sessions, job_id)
        assert wait_for(lambda: expiry(sessions, job_id) > second, timeout=2.0)
        # Several lease lengths later the lease is still ours and still in the future.
        time.sleep(LEASE.total_seconds() + 0.5)
        job = read(sessions, job_id)
        assert (job.status, job.lease_owner) == ("transcribing", WORKER)
        beat.check()
    assert expiry(sessions, job_id) > second


def test_heartbeat_writes_the_progress_the_task_sets(
    sessions: sessionmaker[Session], job_id: uuid.UUID
) -> None:
    with heartbeat(sessions, job_id) as beat:
        beat.progress = 30
        assert wait_for(lambda: read(sessions, job_id).progress == 30, timeout=2.0)
        beat.progress = 75
        assert wait_for(lambda: read(sessions, job_id).progress == 75, timeout=2.0)
        beat.check()


def test_check_raises_soon_after_the_lease_is_taken(
    sessions: sessionmaker[Session], job_id: uuid.UUID
) -> None:
    with heartbeat(sessions, job_id) as beat:
        beat.check()
        with session_scope(sessions) as session:
            session.execute(
                text("UPDATE jobs SET lease_owner = 'worker-b' WHERE id = :id"), {"id": job_id}
            )
        assert wait_for(lambda: beat.lost, timeout=1.0)
        with pytest.raises(LeaseLostError):
            beat.check()
    # The heartbeat never renews a lease it no longer holds.
    assert read(sessions, job_id).lease_owner == "worker-b"


def test_check_raises_after_the_job_is_handed_back(
    sessions: sessionmaker[Session], job_id: uuid.UUID
) -> None:
    with heartbeat(sessions, job_id) as beat:
        with session_scope(sessions) as session:
            service.release(session, job_id, JobStatus.TRANSCRIBING, WORKER, "test")
        assert wait_for(lambda: beat.lost, timeout=1.0)
        with pytest.raises(LeaseLostError):
            beat.check()
    job = read(sessions, job_id)
    assert (job.status, job.lease_owner) == ("queued", None)


def segment(position: int) -> dict[str, object]:
    """A decoded segment as the engine hands it over."""
    return {"id": position, "start": float(position), "end": position + 0.9,
            "text": f"Words number {position}."}  # fmt: skip


def drafts(sessions: sessionmaker[Session], job_id: uuid.UUID, start: int = 0) -> list[object]:
    """The segments a live stream would read from `start`, and whether they are final."""
    with session_scope(sessions) as session:
        found, final = repository.segments_from(session, job_id, start)
    return [final, *(item["id"] for item in found)]


def test_published_segments_are_stored_in_order_while_the_job_runs(
    sessions: sessionmaker[Session], job_id: uuid.UUID
) -> None:
    with heartbeat(sessions, job_id) as beat:
        beat.publish(0, segment(0))
        beat.publish(1, segment(1))
        assert wait_for(lambda: drafts(sessions, job_id) == [False, 0, 1], timeout=2.0)
        beat.publish(2, segment(2))
        assert wait_for(lambda: drafts(sessions, job_id) == [False, 0, 1, 2], timeout=2.0)
        assert drafts(sessions, job_id, start=2) == [False, 2]
        # The same position published again (a retried attempt) keeps what was sent.
        beat.publish(1, {**segment(1), "text": "Other words."})
        time.sleep(0.5)
        beat.check()
    with session_scope(sessions) as session:
        found, _ = repository.segments_from(session, job_id, 1)
    assert found[0]["text"] == "Words number 1."


def test_the_transcript_replaces_the_draft_in_one_commit(
    sessions: sessionmaker[Session], job_id: uuid.UUID
) -> None:
    with heartbeat(sessions, job_id) as beat:
        beat.publish(0, segment(0))
        assert wait_for(lambda: drafts(sessions, job_id) == [False, 0], timeout=2.0)
    with session_scope(sessions) as session:
        service.finish_transcription(session, job_id, WORKER, transcript_for(job_id))
    assert drafts(sessions, job_id) == [True, 0]
    assert drafts(sessions, job_id, start=1) == [True]
    with session_scope(sessions) as session:
        left = session.execute(
            text("SELECT count(*) FROM transcript_segments WHERE job_id = :id"), {"id": job_id}
        ).scalar_one()
    assert left == 0


def test_a_worker_that_lost_the_job_publishes_nothing(
    sessions: sessionmaker[Session], job_id: uuid.UUID
) -> None:
    with session_scope(sessions) as session:
        session.execute(
            text("UPDATE jobs SET lease_owner = 'worker-b' WHERE id = :id"), {"id": job_id}
        )
    with heartbeat(sessions, job_id) as beat:
        beat.publish(0, segment(0))
        assert wait_for(lambda: beat.lost, timeout=1.0)
    assert drafts(sessions, job_id) == [False]
