"""The sweeper: expired leases go back to their queue, lost messages are published again."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from sweeper.main import sweep_once
from tests.support.jobs import LEASE, WORKER, new_job, published, reload, transcript_for
from tests.support.servers import Servers
from voxflow.db import session_scope
from voxflow.jobs import repository, service
from voxflow.jobs.errors import ATTEMPTS_EXHAUSTED
from voxflow.jobs.models import Job
from voxflow.jobs.states import JobStatus
from voxflow.queue.names import LLM_QUEUE, TRANSCRIPTION_QUEUE
from voxflow.settings import JobSettings

EXPIRED = timedelta(seconds=-1)  # a lease that is already over when it is granted
REPUBLISH_AFTER = timedelta(hours=1)


def sweep(session: Session) -> service.SweepReport:
    """One sweep inside the test's transaction."""
    return service.sweep(session, republish_after=REPUBLISH_AFTER)


def touched(report: service.SweepReport) -> set[uuid.UUID]:
    """Every job a sweep did something to."""
    return {*report.requeued, *report.failed, *report.republished}


def age_enqueued_at(session: Session, job_id: uuid.UUID, age: timedelta) -> None:
    """Pretend the job's last message was published `age` ago."""
    session.execute(
        text("UPDATE jobs SET enqueued_at = now() - :age WHERE id = :id"),
        {"age": age, "id": job_id},
    )


def test_expired_transcription_goes_back_to_the_queue(
    db_session: Session, tenant: str, servers: Servers
) -> None:
    job_id = new_job(db_session, tenant)
    db_session.commit()
    service.claim(db_session, job_id, JobStatus.QUEUED, WORKER, EXPIRED)
    report = sweep(db_session)
    assert job_id in report.requeued
    assert job_id not in report.republished  # requeued once, not also republished
    job = reload(db_session, job_id)
    assert (job.status, job.attempts) == ("queued", 1)
    assert (job.lease_owner, job.lease_expires_at) == (None, None)
    event = repository.list_events(db_session, job_id)[-1]
    assert (event.from_status, event.to_status) == ("transcribing", "queued")
    assert event.actor == "sweeper"
    assert event.detail == {"reason": "lease_expired", "previous_owner": WORKER}
    assert published(servers, TRANSCRIPTION_QUEUE).count(job_id) == 1
    db_session.commit()
    assert published(servers, TRANSCRIPTION_QUEUE).count(job_id) == 2


def test_expired_job_without_attempts_left_fails(
    db_session: Session, tenant: str, servers: Servers
) -> None:
    job_id = new_job(db_session, tenant, max_attempts=1)
    db_session.commit()
    service.claim(db_session, job_id, JobStatus.QUEUED, WORKER, EXPIRED)
    report = sweep(db_session)
    assert job_id in report.failed
    assert job_id not in report.requeued
    job = reload(db_session, job_id)
    assert (job.status, job.error_code, job.attempts) == ("failed", ATTEMPTS_EXHAUSTED, 1)
    assert (job.lease_owner, job.lease_expires_at) == (None, None)
    assert job.error_message
    assert job.finished_at is not None
    db_session.commit()
    assert published(servers, TRANSCRIPTION_QUEUE).count(job_id) == 1  # only the first


def test_live_leases_are_left_alone(db_session: Session, tenant: str) -> None:
    job_id = new_job(db_session, tenant)
    service.claim(db_session, job_id, JobStatus.QUEUED, WORKER, LEASE)
    events = len(repository.list_events(db_session, job_id))
    assert job_id not in touched(sweep(db_session))
    job = reload(db_session, job_id)
    assert (job.status, job.lease_owner) == ("transcribing", WORKER)
    assert len(repository.list_events(db_session, job_id)) == events


def test_stale_queued_job_is_republished_once(
    db_session: Session, tenant: str, servers: Servers
) -> None:
    job_id = new_job(db_session, tenant)
    db_session.commit()
    age_enqueued_at(db_session, job_id, timedelta(hours=2))
    report = sweep(db_session)
    assert job_id in report.republished
    enqueued_at = reload(db_session, job_id).enqueued_at
    assert enqueued_at is not None
    assert enqueued_at > datetime.now(UTC) - timedelta(minutes=5)
    db_session.commit()
    assert published(servers, TRANSCRIPTION_QUEUE).count(job_id) == 2
    # The publish was recorded, so an immediate second sweep leaves the job alone.
    assert job_id not in sweep(db_session).republished
    db_session.commit()
    assert published(servers, TRANSCRIPTION_QUEUE).count(job_id) == 2


def test_freshly_enqueued_job_is_left_alone(db_session: Session, tenant: str) -> None:
    job_id = new_job(db_session, tenant)
    age_enqueued_at(db_session, job_id, timedelta(minutes=59))
    assert job_id not in touched(sweep(db_session))
    assert len(repository.list_events(db_session, job_id)) == 1


def test_expired_generation_goes_back_to_the_llm_queue(
    db_session: Session, tenant: str, servers: Servers
) -> None:
    job_id = new_job(db_session, tenant, tasks=["summary"])
    service.claim(db_session, job_id, JobStatus.QUEUED, WORKER, LEASE)
    service.finish_transcription(db_session, job_id, WORKER, transcript_for(job_id))
    db_session.commit()
    assert published(servers, LLM_QUEUE).count(job_id) == 1
    service.claim(db_session, job_id, JobStatus.TRANSCRIBED, WORKER, EXPIRED)
    report = sweep(db_session)
    assert job_id in report.requeued
    job = reload(db_session, job_id)
    assert (job.status, job.lease_owner, job.lease_expires_at) == ("transcribed", None, None)
    event = repository.list_events(db_session, job_id)[-1]
    assert (event.from_status, event.to_status) == ("generating", "transcribed")
    assert event.detail == {"reason": "lease_expired", "previous_owner": WORKER}
    db_session.commit()
    assert published(servers, LLM_QUEUE).count(job_id) == 2


def committed_expired_job(sessions: sessionmaker[Session], tenant: str) -> uuid.UUID:
    """A committed transcribing job whose lease is already over."""
    with session_scope(sessions) as session:
        job_id = new_job(session, tenant)
    with session_scope(sessions) as session:
        assert service.claim(session, job_id, JobStatus.QUEUED, WORKER, EXPIRED) is not None
    return job_id


def status_of(sessions: sessionmaker[Session], job_id: uuid.UUID) -> str:
    """The committed status of a job."""
    with session_scope(sessions) as session:
        job = repository.get_job(session, job_id)
        assert job is not None
        return job.status


def test_sweep_skips_rows_another_transaction_holds(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    job_id = committed_expired_job(sessions, tenant)
    holder = sessions()
    try:
        holder.execute(select(Job.id).where(Job.id == job_id).with_for_update())
        with session_scope(sessions) as session:
            # Without SKIP LOCKED the sweep would wait for the holder: fail fast instead.
            session.execute(text("SET LOCAL lock_timeout = '2s'"))
            report = sweep(session)
        assert job_id not in touched(report)
        assert status_of(sessions, job_id) == "transcribing"
    finally:
        holder.rollback()
        holder.close()
    with session_scope(sessions) as session:
        assert job_id in sweep(session).requeued
    assert status_of(sessions, job_id) == "queued"


def test_sweep_once_commits_and_publishes(
    sessions: sessionmaker[Session], tenant: str, servers: Servers
) -> None:
    expired = committed_expired_job(sessions, tenant)
    with session_scope(sessions) as session:
        stale = new_job(session, tenant)
    with session_scope(sessions) as session:
        age_enqueued_at(session, stale, timedelta(hours=2))
    report = sweep_once(sessions, JobSettings(requeue_after_seconds=3600))
    assert expired in report.requeued
    assert stale in report.republished
    assert status_of(sessions, expired) == "queued"
    queue = published(servers, TRANSCRIPTION_QUEUE)
    assert queue.count(expired) == 2
    assert queue.count(stale) == 2
    second = sweep_once(sessions, JobSettings(requeue_after_seconds=3600))
    assert not {expired, stale} & touched(second)


def test_housekeeping_expires_old_audio_and_idempotency_keys(
    sessions: sessionmaker[Session], tenant: str, storage_root: Path
) -> None:
    from sweeper.main import housekeep
    from sweeper.settings import SweeperSettings
    from voxflow.jobs.models import IdempotencyKey, Transcript

    with session_scope(sessions) as session:
        job_id = new_job(session, tenant)
    with session_scope(sessions) as session:
        service.claim(session, job_id, JobStatus.QUEUED, WORKER, LEASE)
    with session_scope(sessions) as session:
        service.finish_transcription(session, job_id, WORKER, transcript_for(job_id))
    with session_scope(sessions) as session:
        job = reload(session, job_id)
        audio = storage_root / job.source_key
        session.execute(
            text("UPDATE jobs SET finished_at = now() - interval '8 days' WHERE id = :id"),
            {"id": job_id},
        )
        past = datetime.now(UTC) - timedelta(hours=25)
        session.add(IdempotencyKey(tenant=tenant, key="old", state="done", created_at=past,
                                   expires_at=past + timedelta(hours=24)))  # fmt: skip
        session.add(IdempotencyKey(tenant=tenant, key="live", state="done", created_at=past,
                                   expires_at=past + timedelta(hours=48)))  # fmt: skip
    audio.parent.mkdir(parents=True, exist_ok=True)
    audio.write_bytes(b"audio")
    housekeep(sessions, SweeperSettings(audio_retention_days=7, storage_root=storage_root))
    assert not audio.exists()
    with sessions() as session:
        job = reload(session, job_id)
        assert job.audio_deleted_at is not None
        assert session.get(Transcript, job_id) is not None  # kept
        keys = session.scalars(select(IdempotencyKey.key).where(IdempotencyKey.tenant == tenant))
        assert sorted(keys) == ["live"]


def test_without_a_database_url_the_sweeper_says_so_and_exits(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXFLOW_")}
    done = subprocess.run(
        [sys.executable, "-m", "sweeper"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "voxflow-sweeper: set VOXFLOW_DATABASE_URL to the PostgreSQL URL of the jobs"
    )
