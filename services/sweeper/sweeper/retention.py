"""Retention: the sweeper deletes the stored audio of finished jobs after a period.

The transcript and notes are kept; the job's timeline records the deletion (actor
`retention`). Deleting a job itself is the status API's (`DELETE /v1/jobs/{id}`).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.orm import Session

from voxflow.jobs import repository
from voxflow.jobs.states import JobStatus
from voxflow.storage import Storage

log = logging.getLogger(__name__)


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
