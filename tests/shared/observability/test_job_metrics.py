"""Job counters move when a transition commits, and never for one that rolled back."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from sweeper.main import sweep_once
from tests.support.jobs import LEASE, WORKER, new_job, transcript_for
from tests.support.metrics import local, value
from voxflow.db import session_scope
from voxflow.jobs import service
from voxflow.jobs.states import JobStatus
from voxflow.settings import JobSettings


def counts() -> dict[str, float]:
    """The job counters as the endpoint reports them."""
    samples = local()
    return {
        "created": value(samples, "voxflow_jobs_created_total"),
        "completed": value(samples, "voxflow_jobs_completed_total"),
        "too_long": value(samples, "voxflow_jobs_failed_total", reason="audio_too_long"),
    }


def delta(before: dict[str, float]) -> dict[str, float]:
    """How each counter moved since `before`."""
    return {name: now - before[name] for name, now in counts().items()}


def test_created_completed_and_failed_jobs_are_counted_after_commit(
    db_session: Session, tenant: str
) -> None:
    before = counts()
    done, doomed = new_job(db_session, tenant), new_job(db_session, tenant)
    assert delta(before) == {"created": 0, "completed": 0, "too_long": 0}  # not committed yet
    db_session.commit()
    assert delta(before) == {"created": 2, "completed": 0, "too_long": 0}

    assert service.claim(db_session, done, JobStatus.QUEUED, WORKER, LEASE) is not None
    service.finish_transcription(db_session, done, WORKER, transcript_for(done))
    failed = service.fail(db_session, doomed, JobStatus.QUEUED, "audio_too_long", "too long")
    assert failed is not None
    db_session.commit()
    assert delta(before) == {"created": 2, "completed": 1, "too_long": 1}


def test_rolled_back_transitions_are_not_counted(db_session: Session, tenant: str) -> None:
    job_id = new_job(db_session, tenant)
    db_session.commit()
    before = counts()
    service.fail(db_session, job_id, JobStatus.QUEUED, "audio_too_long", "too long")
    new_job(db_session, tenant)
    db_session.rollback()
    assert delta(before) == {"created": 0, "completed": 0, "too_long": 0}


def test_a_transition_that_did_not_happen_is_not_counted(db_session: Session, tenant: str) -> None:
    before = counts()
    # Not in `transcribing`: zero rows updated, nothing to count.
    assert (
        service.fail(db_session, uuid.uuid4(), JobStatus.TRANSCRIBING, "audio_too_long", "x")
        is None
    )
    db_session.commit()
    assert delta(before) == {"created": 0, "completed": 0, "too_long": 0}


def test_sweeper_counts_what_it_committed(sessions: sessionmaker[Session], tenant: str) -> None:
    with session_scope(sessions) as session:
        job_id = new_job(session, tenant)
    with session_scope(sessions) as session:  # a lease that has already run out
        service.claim(session, job_id, JobStatus.QUEUED, WORKER, timedelta(seconds=-1))
    before = local()
    report = sweep_once(sessions, JobSettings(requeue_after_seconds=3600))
    after = local()
    assert job_id in report.requeued

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("voxflow_sweeper_requeued_total", reason="lease_expired") == len(report.requeued)
    assert moved("voxflow_sweeper_requeued_total", reason="message_lost") == len(report.republished)
    assert moved("voxflow_sweeper_failed_total") == len(report.failed)
