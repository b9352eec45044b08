"""A job in the telemetry: its span attributes, and its counters, counted once committed."""

from __future__ import annotations

from opentelemetry.util.types import AttributeValue
from sqlalchemy.orm import Session

from voxflow.db import after_commit
from voxflow.jobs.models import Job
from voxflow.observability import metrics


def job_attributes(job: Job) -> dict[str, AttributeValue]:
    """The span attributes that say which job, whose, and what was asked of it."""
    attributes: dict[str, AttributeValue] = {
        "voxflow.job_id": str(job.id),
        "voxflow.tenant": job.tenant,
        "voxflow.audio.duration_seconds": job.duration_seconds,
        "voxflow.attempt": job.attempts,
    }
    options = job.options or {}
    for key in ("model", "mode", "language"):
        if options.get(key):
            attributes[f"voxflow.{key}"] = str(options[key])
    if options.get("tasks"):
        attributes["voxflow.tasks"] = [str(t) for t in options["tasks"]]
    return attributes


def count_job_created(session: Session) -> None:
    """Count a new job once the session's transaction commits."""
    after_commit(session, metrics.JOBS_CREATED.inc)


def count_job_completed(session: Session) -> None:
    """Count a completed job once the session's transaction commits."""
    after_commit(session, metrics.JOBS_COMPLETED.inc)


def count_job_failed(session: Session, reason: str) -> None:
    """Count a failed job under its error code once the session's transaction commits."""
    after_commit(session, metrics.JOBS_FAILED.labels(reason=reason).inc)
