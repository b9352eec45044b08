"""Job lifecycle: creation, claims with leases, stage completion, failure and sweeping.

Every change is a conditional update (see `repository.transition`) followed by a timeline
event; zero rows updated means another worker owns the job and the caller just stops.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from opentelemetry import trace
from sqlalchemy import func
from sqlalchemy.orm import Session

from voxflow.jobs import repository, telemetry, webhook_events
from voxflow.jobs.enqueue import enqueue_after_commit, publish_after_commit
from voxflow.jobs.errors import ATTEMPTS_EXHAUSTED, LeaseLostError
from voxflow.jobs.models import Job, LlmResult, Transcript
from voxflow.jobs.states import (
    RUNNING_TO_WAITING,
    TERMINAL,
    WAITING_TO_RUNNING,
    IllegalTransitionError,
    JobStatus,
    can_transition,
)
from voxflow.observability import tracing

log = logging.getLogger(__name__)

_STAGE_STARTED = {
    JobStatus.TRANSCRIBING: "transcription_started_at",
    JobStatus.GENERATING: "generation_started_at",
}


def _move(
    session: Session,
    job_id: uuid.UUID,
    source: JobStatus,
    target: JobStatus,
    *,
    values: dict[str, Any] | None = None,
    owner: str | None = None,
    actor: str | None = None,
    detail: dict[str, Any] | None = None,
    extra: tuple[Any, ...] = (),
) -> Job | None:
    """Apply one allowed transition conditionally and append its event."""
    if not can_transition(source, target):
        raise IllegalTransitionError(source, target)
    job = repository.transition(
        session, job_id, source, target, values=values, owner=owner, extra=extra
    )
    if job is not None:
        repository.add_event(session, job_id, source, target, actor=actor, detail=detail)
        # A finished job's webhook event commits (or rolls back) with this very transition.
        webhook_events.on_terminal(session, job, target)
    return job


def create_job(
    session: Session,
    *,
    job_id: uuid.UUID,
    tenant: str,
    options: dict[str, Any],
    source_key: str,
    source_filename: str | None,
    size_bytes: int,
    duration_seconds: float,
    content_sha256: str,
    max_attempts: int,
    webhook_url: str | None = None,
) -> Job:
    """Record a new queued job; its message is published after the commit."""
    job = Job(
        id=job_id,
        tenant=tenant,
        status=JobStatus.QUEUED.value,
        progress=0,
        options=options,
        source_key=source_key,
        source_filename=source_filename,
        size_bytes=size_bytes,
        duration_seconds=duration_seconds,
        content_sha256=content_sha256,
        attempts=0,
        max_attempts=max_attempts,
        webhook_url=webhook_url,
        trace_context=tracing.trace_carrier(),  # every stage continues the upload's trace
        enqueued_at=func.now(),  # its message is published once this row commits
    )
    trace.get_current_span().set_attributes(telemetry.job_attributes(job))
    repository.add_job(session, job)
    repository.add_event(session, job_id, None, JobStatus.QUEUED, actor="ingest_api")
    publish_after_commit(session, job_id, JobStatus.QUEUED)
    telemetry.count_job_created(session)  # counted once committed, like the publish
    return job


def claim(
    session: Session, job_id: uuid.UUID, waiting: JobStatus, owner: str, lease: timedelta
) -> Job | None:
    """Take a waiting job for its next stage under a lease; None if it is not ours to run."""
    running = WAITING_TO_RUNNING[waiting]
    values: dict[str, Any] = {
        "attempts": Job.attempts + 1,
        "lease_owner": owner,
        "lease_expires_at": func.now() + lease,
        _STAGE_STARTED[running]: func.coalesce(getattr(Job, _STAGE_STARTED[running]), func.now()),
    }
    job = repository.transition(
        session,
        job_id,
        waiting,
        running,
        values=values,
        extra=(Job.attempts < Job.max_attempts,),
    )
    if job is None:
        current = repository.get_job(session, job_id)
        if (
            current is not None
            and current.status == waiting.value
            and current.attempts >= current.max_attempts
        ):
            fail(session, job_id, waiting, ATTEMPTS_EXHAUSTED, _exhausted(current), actor=owner)
        return None
    repository.add_event(
        session, job_id, waiting, running, actor=owner, detail={"attempt": job.attempts}
    )
    return job


def _exhausted(job: Job) -> str:
    return f"the job was tried {job.attempts} times (limit {job.max_attempts}) without finishing"


def heartbeat(
    session: Session,
    job_id: uuid.UUID,
    running: JobStatus,
    owner: str,
    lease: timedelta,
    progress: int | None = None,
    segments: Sequence[tuple[int, dict[str, Any]]] = (),
) -> None:
    """Renew the lease (and record progress and publish decoded segments, by position).

    Raise LeaseLostError if the lease is gone: a worker that lost the job writes nothing.
    """
    if not repository.renew_lease(session, job_id, running, owner, lease, progress):
        raise LeaseLostError(f"worker {owner} no longer holds job {job_id}")
    repository.add_draft_segments(session, job_id, segments)


_RELEASE_LEASE: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}


def finish_transcription(
    session: Session, job_id: uuid.UUID, owner: str, transcript: Transcript
) -> Job:
    """Store the transcript and move on: to the LLM queue if tasks were asked, else done."""
    job = _move(
        session,
        job_id,
        JobStatus.TRANSCRIBING,
        JobStatus.TRANSCRIBED,
        owner=owner,
        actor=owner,
        values={**_RELEASE_LEASE, "progress": 100, "attempts": 0, "transcribed_at": func.now()},
    )
    if job is None:
        raise LeaseLostError(f"worker {owner} no longer holds job {job_id}")
    repository.add_transcript(session, transcript)
    repository.delete_draft_segments(session, job_id)
    if job.options.get("tasks"):
        enqueue_after_commit(session, job_id, JobStatus.TRANSCRIBED)
        return job
    done = _move(
        session,
        job_id,
        JobStatus.TRANSCRIBED,
        JobStatus.COMPLETED,
        actor=owner,
        values={"finished_at": func.now()},
    )
    assert done is not None  # the row is locked by our own update in this transaction
    telemetry.count_job_completed(session)
    return done


def add_llm_result(
    session: Session, job_id: uuid.UUID, owner: str, result: LlmResult, lease: timedelta
) -> None:
    """Store one task's output if this worker still holds the job (renewing its lease)."""
    heartbeat(session, job_id, JobStatus.GENERATING, owner, lease)
    repository.add_llm_result(session, result)


def finish_generation(session: Session, job_id: uuid.UUID, owner: str) -> Job:
    """Complete a job whose LLM tasks are all stored."""
    job = _move(
        session,
        job_id,
        JobStatus.GENERATING,
        JobStatus.COMPLETED,
        owner=owner,
        actor=owner,
        values={**_RELEASE_LEASE, "finished_at": func.now()},
    )
    if job is None:
        raise LeaseLostError(f"worker {owner} no longer holds job {job_id}")
    telemetry.count_job_completed(session)
    return job


def fail(
    session: Session,
    job_id: uuid.UUID,
    source: JobStatus,
    code: str,
    message: str,
    *,
    owner: str | None = None,
    actor: str | None = None,
) -> Job | None:
    """Fail a job with a reason, if it is still in `source` (and owned by `owner`)."""
    job = _move(
        session,
        job_id,
        source,
        JobStatus.FAILED,
        owner=owner,
        actor=actor or owner,
        detail={"code": code},
        values={
            **_RELEASE_LEASE,
            "error_code": code,
            "error_message": message,
            "finished_at": func.now(),
        },
    )
    if job is not None:
        telemetry.count_job_failed(session, code)
    return job


def release(
    session: Session,
    job_id: uuid.UUID,
    running: JobStatus,
    owner: str,
    reason: str,
    *,
    refund: bool = False,
) -> Job | None:
    """Hand a running job back to its queue (worker shutting down, transient error).

    `refund` gives the attempt back: a worker that stops on request did not fail the job.
    """
    waiting = RUNNING_TO_WAITING[running]
    values: dict[str, Any] = dict(_RELEASE_LEASE)
    detail: dict[str, Any] = {"reason": reason}
    if refund:
        values["attempts"] = Job.attempts - 1
        detail["attempt_refunded"] = True
    job = _move(
        session,
        job_id,
        running,
        waiting,
        owner=owner,
        actor=owner,
        detail=detail,
        values=values,
    )
    if job is not None:
        enqueue_after_commit(session, job_id, waiting)
    return job


_CANCEL_TRIES = 3  # a running job can change state under us; a few tries settle it


def cancel(session: Session, job_id: uuid.UUID, *, actor: str) -> Job | None:
    """Cancel a job that has not finished; None if it already had (or does not exist).

    A worker running the job notices at its next heartbeat or progress write (within
    `PROGRESS_INTERVAL_SECONDS` while segments arrive) that it no longer holds it, and stops.
    """
    for _ in range(_CANCEL_TRIES):
        current = repository.get_status(session, job_id)
        if current is None or current in TERMINAL:
            return None
        moved = _move(
            session, job_id, current, JobStatus.CANCELED, actor=actor,
            values={**_RELEASE_LEASE, "finished_at": func.now()},
            detail={"reason": "canceled on request"},
        )  # fmt: skip
        if moved is not None:
            return moved
    return None


@dataclass
class SweepReport:
    """What one sweep did."""

    requeued: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)
    republished: list[uuid.UUID] = field(default_factory=list)
    webhooks: list[uuid.UUID] = field(default_factory=list)  # deliveries published again


def sweep(session: Session, *, republish_after: timedelta, limit: int = 100) -> SweepReport:
    """Recover jobs whose worker vanished (expired lease) or whose message was lost."""
    report = SweepReport()
    for job in repository.lock_expired_leases(session, limit):
        running = JobStatus(job.status)
        if job.attempts >= job.max_attempts:
            fail(session, job.id, running, ATTEMPTS_EXHAUSTED, _exhausted(job), actor="sweeper")
            report.failed.append(job.id)
            continue
        moved = _move(
            session,
            job.id,
            running,
            RUNNING_TO_WAITING[running],
            actor="sweeper",
            detail={"reason": "lease_expired", "previous_owner": job.lease_owner},
            values=dict(_RELEASE_LEASE),
        )
        if moved is not None:
            enqueue_after_commit(
                session,
                job.id,
                RUNNING_TO_WAITING[running],
                requeue_reason="lease_expired",
                trace_context=job.trace_context,
            )
            report.requeued.append(job.id)
    for job in repository.lock_stale_waiting(session, republish_after, limit):
        enqueue_after_commit(
            session,
            job.id,
            JobStatus(job.status),
            requeue_reason="message_lost",
            trace_context=job.trace_context,
        )
        report.republished.append(job.id)
    return report
