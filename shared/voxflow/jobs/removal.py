"""Job control: delete a job with everything it produced, expire old audio.

Canceling is a transition like any other (`service.cancel`). Delete removes the stored
audio, then the job row; transcripts, notes, calls, events and webhook deliveries go with it
(foreign keys cascade). Retention deletes the audio of finished jobs after a period and keeps
the transcript and notes.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.orm import Session

from voxflow.jobs import repository
from voxflow.jobs.models import Job
from voxflow.jobs.states import JobStatus
from voxflow.storage import Storage

log = logging.getLogger(__name__)


def delete_job(session: Session, storage: Storage, job: Job) -> None:
    """Remove the job's audio from storage and the job with everything it produced.

    The audio goes first: if the database step then fails, the job is still listed and the
    delete can be repeated; the opposite order could leave audio nobody can find.
    """
    for key in job.audio_keys:
        storage.delete(key)
    repository.delete_job(session, job.id)


def expire_audio(session: Session, storage: Storage, older_than: timedelta, limit: int) -> int:
    """Delete the audio of finished jobs older than the retention period; keep the rest."""
    jobs = repository.lock_expired_audio(session, older_than, limit)
    for job in jobs:
        for key in job.audio_keys:
            storage.delete(key)
    repository.mark_audio_deleted(session, [job.id for job in jobs])
    for job in jobs:
        repository.add_event(
            session, job.id, JobStatus(job.status), JobStatus(job.status),
            actor="retention", detail={"audio_deleted": True},
        )  # fmt: skip
    if jobs:
        log.info("retention: deleted the audio of %d finished job(s)", len(jobs))
    return len(jobs)
