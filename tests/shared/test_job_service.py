"""The job service on a real Postgres and Redis: claims, leases, results, publish-after-commit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.support.jobs import LEASE, WORKER, new_job, published, reload, transcript_for
from tests.support.servers import Servers
from voxflow.db import session_scope
from voxflow.jobs import repository, service
from voxflow.jobs.errors import ATTEMPTS_EXHAUSTED, LeaseLostError
from voxflow.jobs.models import LlmResult
from voxflow.jobs.states import IllegalTransitionError, JobStatus
from voxflow.queue.names import LLM_QUEUE, TRANSCRIPTION_QUEUE
from voxflow.storage import source_key


def test_create_job_writes_a_queued_row_and_one_event(db_session: Session, tenant: str) -> None:
    job_id = new_job(db_session, tenant)
    job = reload(db_session, job_id)
    assert (job.status, job.tenant, job.attempts, job.max_attempts) == ("queued", tenant, 0, 3)
    assert job.progress == 0
    assert job.enqueued_at is not None
    assert job.lease_owner is None
    assert job.lease_expires_at is None
    [event] = repository.list_events(db_session, job_id)
    assert (event.from_status, event.to_status, event.actor) == (None, "queued", "ingest_api")


def test_create_job_publishes_only_after_commit(
    db_session: Session, tenant: str, servers: Servers
) -> None:
    job_id = new_job(db_session, tenant)
    assert job_id not in published(servers, TRANSCRIPTION_QUEUE)
    db_session.commit()
    assert published(servers, TRANSCRIPTION_QUEUE).count(job_id) == 1


def test_rolled_back_job_is_never_published(
    sessions: sessionmaker[Session], tenant: str, servers: Servers
) -> None:
    job_id = uuid.uuid4()

    def doomed_unit_of_work() -> None:
        with session_scope(sessions) as session:
            service.create_job(
                session,
                job_id=job_id,
                tenant=tenant,
                options={},
                source_key=source_key(tenant, job_id),
                source_filename=None,
                size_bytes=1,
                duration_seconds=1.0,
                content_sha256="cd" * 32,
                max_attempts=3,
            )
            raise RuntimeError("upload to storage failed")

    with pytest.raises(RuntimeError, match="storage failed"):
        doomed_unit_of_work()
    with session_scope(sessions) as session:
        assert repository.get_job(session, job_id) is None
    assert job_id not in published(servers, TRANSCRIPTION_QUEUE)


def test_savepoint_rollback_drops_the_publish(
    db_session: Session, tenant: str, servers: Servers
) -> None:
    job_id = new_job(db_session, tenant)
    db_session.rollback()
    db_session.commit()
    assert job_id not in published(servers, TRANSCRIPTION_QUEUE)


def test_claim_takes_the_job_under_a_lease(db_session: Session, tenant: str) -> None:
    job_id = new_job(db_session, tenant)
    job = service.claim(db_session, job_id, JobStatus.QUEUED, WORKER, LEASE)
    assert job is not None
    job = reload(db_session, job_id)
    assert (job.status, job.attempts, job.lease_owner) == ("transcribing", 1, WORKER)
    assert job.lease_expires_at is not None
    assert job.lease_expires_at > datetime.now(UTC) + LEASE - timedelta(minutes=1)
    assert job.transcription_started_at is not None
    event = repository.list_events(db_session, job_id)[-1]
    assert (event.from_status, event.to_status, event.actor) == ("queued", "transcribing", WORKER)
    assert event.detail == {"attempt": 1}


def test_second_claim_gets_nothing_and_writes_nothing(db_session: Session, tenant: str) -> None:
    job_id = new_job(db_session, tenant)
    assert service.claim(db_session, job_id, JobStatus.QUEUED, WORKER, LEASE) is not None
    assert service.claim(db_session, job_id, JobStatus.QUEUED, "worker-b", LEASE) is None
    job = reload(db_session, job_id)
    assert (job.status, job.attempts, job.lease_owner) == ("transcribing", 1, WORKER)
    assert len(repository.list_events(db_session, job_id)) == 2


def test_claim_fails_the_job_once_attempts_are_exhausted(db_session: Session, tenant: str) -> None:
    job_id = new_job(db_session, tenant, max_attempts=2)
    for _ in range(2):
        assert service.claim(db_session, job_id, JobStatus.QUEUED, WORKER, LEASE) is not None
        assert service.release(db_session, job_id, JobStatus.TRANSCRIBING, WORKER, "test")
    assert service.claim(db_session, job_id, JobStatus.QUEUED, WORKER, LEASE) is None
    job = reload(db_session, job_id)
    assert (job.status, job.attempts, job.error_code) == ("failed", 2, ATTEMPTS_EXHAUSTED)
    assert job.finished_at is not None
    event = repository.list_events(db_session, job_id)[-1]
    assert (event.from_status, event.to_status) == ("queued", "failed")
    assert event.detail == {"code": ATTEMPTS_EXHAUSTED}


def test_heartbeat_extends_the_lease_and_keeps_the_highest_progress(
    db_session: Session, tenant: str
) -> None:
    job_id = new_job(db_session, tenant)
    service.claim(db_session, job_id, JobStatus.QUEUED, WORKER, timedelta(seconds=10))
    first_expiry = reload(db_session, job_id).lease_expires_at
    assert first_expiry is not None
    service.heartbeat(db_session, job_id, JobStatus.TRANSCRIBING, WORKER, LEASE, progress=40)
    job = reload(db_session, job_id)
    assert job.lease_expires_at is not None
    assert job.lease_expires_at > first_expiry
    assert job.progress == 40
    service.heartbeat(db_session, job_id, JobStatus.TRANSCRIBING, WORKER, LEASE, progress=20)
    assert reload(db_session, job_id).progress == 40


def test_heartbeat_by_another_worker_raises(db_session: Session, tenant: str) -> None:
    job_id = new_job(db_session, tenant)
    service.claim(db_session, job_id, JobStatus.QUEUED, WORKER, LEASE)
    with pytest.raises(LeaseLostError):
        service.heartbeat(db_session, job_id, JobStatus.TRANSCRIBING, "worker-b", LEASE, 50)
    job = reload(db_session, job_id)
    assert (job.lease_owner, job.progress) == (WORKER, 0)


def test_finish_transcription_with_tasks_hands_over_to_the_llm_queue(
    db_session: Session, tenant: str, servers: Servers
) -> None:
    job_id = new_job(db_session, tenant, tasks=["summary"])
    service.claim(db_session, job_id, JobStatus.QUEUED, WORKER, LEASE)
    service.finish_transcription(db_session, job_id, WORKER, transcript_for(job_id))
    job = reload(db_session, job_id)
    assert (job.status, job.progress, job.attempts) == ("transcribed", 100, 0)
    assert (job.lease_owner, job.lease_expires_at, job.finished_at) == (None, None, None)
    assert job.transcribed_at is not None
    stored = repository.get_transcript(db_session, job_id)
    assert stored is not None
    assert stored.text == "Hello there."
    assert job_id not in published(servers, LLM_QUEUE)
    db_session.commit()
    assert published(servers, LLM_QUEUE).count(job_id) == 1


def test_finish_transcription_without_tasks_completes(
    db_session: Session, tenant: str, servers: Servers
) -> None:
    job_id = new_job(db_session, tenant)
    service.claim(db_session, job_id, JobStatus.QUEUED, WORKER, LEASE)
    done = service.finish_transcription(db_session, job_id, WORKER, transcript_for(job_id))
    assert done.status == "completed"
    job = reload(db_session, job_id)
    assert job.status == "completed"
    assert job.finished_at is not None
    moves = [(e.from_status, e.to_status) for e in repository.list_events(db_session, job_id)]
    assert moves[-2:] == [("transcribing", "transcribed"), ("transcribed", "completed")]
    db_session.commit()
    assert job_id not in published(servers, LLM_QUEUE)


def test_finish_transcription_by_another_worker_writes_nothing(
    db_session: Session, tenant: str
) -> None:
    job_id = new_job(db_session, tenant)
    service.claim(db_session, job_id, JobStatus.QUEUED, WORKER, LEASE)
    with pytest.raises(LeaseLostError):
        service.finish_transcription(db_session, job_id, "worker-b", transcript_for(job_id))
    assert repository.get_transcript(db_session, job_id) is None
    assert reload(db_session, job_id).status == "transcribing"


def test_a_job_keeps_its_first_transcript(db_session: Session, tenant: str) -> None:
    job_id = new_job(db_session, tenant)
    assert repository.add_transcript(db_session, transcript_for(job_id, "First."))
    assert not repository.add_transcript(db_session, transcript_for(job_id, "Second."))
    stored = repository.get_transcript(db_session, job_id)
    assert stored is not None
    assert stored.text == "First."


def test_a_job_keeps_one_result_per_task(db_session: Session, tenant: str) -> None:
    job_id = new_job(db_session, tenant, tasks=["summary"])
    service.claim(db_session, job_id, JobStatus.QUEUED, WORKER, LEASE)
    service.finish_transcription(db_session, job_id, WORKER, transcript_for(job_id))
    assert service.claim(db_session, job_id, JobStatus.TRANSCRIBED, WORKER, LEASE) is not None

    def result(output: str) -> LlmResult:
        return LlmResult(job_id=job_id, task="summary", provider="local", model="m", output=output)

    service.add_llm_result(db_session, job_id, WORKER, result("first"), LEASE)
    assert not repository.add_llm_result(db_session, result("second"))
    [stored] = repository.list_llm_results(db_session, job_id)
    assert (stored.output, stored.tokens_in, stored.cached) == ("first", 0, False)


def test_fail_records_the_reason_and_clears_the_lease(db_session: Session, tenant: str) -> None:
    job_id = new_job(db_session, tenant)
    service.claim(db_session, job_id, JobStatus.QUEUED, WORKER, LEASE)
    failed = service.fail(
        db_session, job_id, JobStatus.TRANSCRIBING, "bad_audio", "cannot decode", owner=WORKER
    )
    assert failed is not None
    job = reload(db_session, job_id)
    assert (job.status, job.error_code) == ("failed", "bad_audio")
    assert job.error_message == "cannot decode"
    assert (job.lease_owner, job.lease_expires_at) == (None, None)
    assert job.finished_at is not None
    event = repository.list_events(db_session, job_id)[-1]
    assert (event.to_status, event.actor, event.detail) == ("failed", WORKER, {"code": "bad_audio"})


def test_release_requeues_and_republishes_after_commit(
    db_session: Session, tenant: str, servers: Servers
) -> None:
    job_id = new_job(db_session, tenant)
    db_session.commit()
    service.claim(db_session, job_id, JobStatus.QUEUED, WORKER, LEASE)
    released = service.release(db_session, job_id, JobStatus.TRANSCRIBING, WORKER, "shutdown")
    assert released is not None
    job = reload(db_session, job_id)
    assert (job.status, job.lease_owner, job.lease_expires_at) == ("queued", None, None)
    event = repository.list_events(db_session, job_id)[-1]
    assert (event.from_status, event.to_status) == ("transcribing", "queued")
    assert event.detail == {"reason": "shutdown"}
    assert published(servers, TRANSCRIPTION_QUEUE).count(job_id) == 1
    db_session.commit()
    assert published(servers, TRANSCRIPTION_QUEUE).count(job_id) == 2


def test_release_on_shutdown_gives_the_attempt_back(db_session: Session, tenant: str) -> None:
    job_id = new_job(db_session, tenant)
    service.claim(db_session, job_id, JobStatus.QUEUED, WORKER, LEASE)
    assert reload(db_session, job_id).attempts == 1
    service.release(
        db_session, job_id, JobStatus.TRANSCRIBING, WORKER, "worker shutdown", refund=True
    )
    assert reload(db_session, job_id).attempts == 0
    event = repository.list_events(db_session, job_id)[-1]
    assert event.detail == {"reason": "worker shutdown", "attempt_refunded": True}


def test_forbidden_move_on_a_real_job_changes_nothing(db_session: Session, tenant: str) -> None:
    job_id = new_job(db_session, tenant)
    with pytest.raises(IllegalTransitionError):
        service._move(db_session, job_id, JobStatus.QUEUED, JobStatus.COMPLETED)
    assert reload(db_session, job_id).status == "queued"
    assert len(repository.list_events(db_session, job_id)) == 1
