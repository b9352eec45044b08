"""Job control: cancel a job, delete it with everything it produced, expire old audio.

Cancel is one more conditional transition: a worker running the job notices at its next
heartbeat or progress write (within `PROGRESS_INTERVAL_SECONDS` while segments arrive)
that it no longer holds the job, and stops. Delete removes the stored audio, then the job
row; transcripts, notes, calls, events and webhook deliveries go with it (foreign keys
cascade). Retention deletes the audio of finished jobs after a period and keeps the
transcript and notes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from voxflow.jobs import repository
from voxflow.jobs.models import Job
from voxflow.jobs.service import _move  # one transition helper for every state change
from voxflow.jobs.states import TERMINAL, JobStatus
from voxflow.storage import Storage

log = logging.getLogger(__name__)

_ATTEMPTS = 3  # a running job can change state under us; a few tries settle it


def cancel(session: Session, job_id: uuid.UUID, *, actor: str) -> Job | None:
    """Cancel a job that has not finished; None if it already had (or does not exist)."""
    for _ in range(_ATTEMPTS):
        current = session.scalar(select(Job.status).where(Job.id == job_id))
        if current is None or JobStatus(current) in TERMINAL:
            return None
        moved = _move(
            session, job_id, JobStatus(current), JobStatus.CANCELED, actor=actor,
            values={"lease_owner": None, "lease_expires_at": None, "finished_at": func.now()},
            detail={"reason": "canceled on request"},
        )  # fmt: skip
        if moved is not None:
            return moved
    return None


def delete_job(session: Session, storage: Storage, job: Job) -> None:
    """Remove the job's audio from storage and the job with everything it produced.

    The audio goes first: if the database step then fails, the job is still listed and the
    delete can be repeated; the opposite order could leave audio nobody can find.
    """
    storage.delete(job.source_key)
    session.execute(delete(Job).where(Job.id == job.id))
    session.flush()


def expired_audio(session: Session, older_than: timedelta, limit: int) -> Sequence[Job]:
    """Finished jobs whose audio is past retention and still stored (locked, SKIP LOCKED)."""
    stmt = (
        select(Job)
        .where(
            Job.status.in_([s.value for s in TERMINAL]),
            Job.finished_at < func.now() - older_than,
            Job.audio_deleted_at.is_(None),
        )
        .order_by(Job.finished_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return session.scalars(stmt).all()


def expire_audio(session: Session, storage: Storage, older_than: timedelta, limit: int) -> int:
    """Delete the audio of finished jobs older than the retention period; keep the rest."""
    jobs = expired_audio(session, older_than, limit)
    for job in jobs:
        storage.delete(job.source_key)
    if jobs:
        session.execute(
            update(Job)
            .where(Job.id.in_([job.id for job in jobs]))
            .values(audio_deleted_at=func.now())
        )
        for job in jobs:
            repository.add_event(
                session, job.id, JobStatus(job.status), JobStatus(job.status),
                actor="retention", detail={"audio_deleted": True},
            )  # fmt: skip
        log.info("retention: deleted the audio of %d finished job(s)", len(jobs))
    return len(jobs)
