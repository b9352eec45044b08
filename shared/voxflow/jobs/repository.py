"""All SQL about jobs. Functions here flush but never commit (the caller owns the unit of work)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    bindparam,
    delete,
    func,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from voxflow.jobs.models import (
    ApiKey,
    Job,
    JobEvent,
    LlmCall,
    LlmResult,
    Transcript,
    TranscriptSegment,
)
from voxflow.jobs.states import TERMINAL, JobStatus


def add_job(session: Session, job: Job) -> None:
    """Insert a new job row."""
    session.add(job)
    session.flush()


# The hottest statements are built once: building and keying a statement costs about as
# much CPU as running it.
_JOB = select(Job).where(Job.id == bindparam("job_id"))
_TENANT_JOB = _JOB.where(Job.tenant == bindparam("tenant"))


def get_job(session: Session, job_id: uuid.UUID, tenant: str | None = None) -> Job | None:
    """Load one job, optionally only if it belongs to `tenant`."""
    if tenant is None:
        return session.scalars(_JOB, {"job_id": job_id}).one_or_none()
    return session.scalars(_TENANT_JOB, {"job_id": job_id, "tenant": tenant}).one_or_none()


def get_status(session: Session, job_id: uuid.UUID) -> JobStatus | None:
    """A job's current state (None if there is no such job)."""
    status = session.scalar(select(Job.status).where(Job.id == job_id))
    return JobStatus(status) if status is not None else None


def delete_job(session: Session, job_id: uuid.UUID) -> None:
    """Delete a job row; its transcript, notes, calls, events and deliveries cascade."""
    session.execute(delete(Job).where(Job.id == job_id))


def lock_expired_audio(session: Session, older_than: timedelta, limit: int) -> Sequence[Job]:
    """Finished jobs whose audio is past retention and still stored (locked, SKIP LOCKED)."""
    query = (
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
    return session.scalars(query).all()


def mark_audio_deleted(session: Session, job_ids: Sequence[uuid.UUID]) -> None:
    """Record that these jobs' audio is gone (their transcripts and notes stay)."""
    if job_ids:
        session.execute(update(Job).where(Job.id.in_(job_ids)).values(audio_deleted_at=func.now()))


def transition(
    session: Session,
    job_id: uuid.UUID,
    source: JobStatus,
    target: JobStatus,
    *,
    values: dict[str, Any] | None = None,
    owner: str | None = None,
    extra: Sequence[ColumnElement[bool]] = (),
) -> Job | None:
    """Move a job from `source` to `target` if (and only if) it is still in `source`.

    With `owner`, the update also requires that this worker holds the lease. Returns the
    updated job, or None when zero rows matched: someone else owns the job.
    """
    conditions: list[ColumnElement[bool]] = [Job.id == job_id, Job.status == source.value]
    if owner is not None:
        conditions.append(Job.lease_owner == owner)
    conditions.extend(extra)
    statement = (
        update(Job)
        .where(*conditions)
        .values(status=target.value, updated_at=func.now(), **(values or {}))
        .returning(Job)
        .execution_options(synchronize_session=False)
    )
    job = session.scalars(statement).one_or_none()
    if job is not None:
        session.refresh(job)
    return job


def add_event(
    session: Session,
    job_id: uuid.UUID,
    source: JobStatus | None,
    target: JobStatus,
    *,
    actor: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one entry to a job's timeline."""
    session.add(
        JobEvent(
            job_id=job_id,
            from_status=source.value if source else None,
            to_status=target.value,
            actor=actor,
            detail=detail or {},
        )
    )
    session.flush()


def renew_lease(
    session: Session,
    job_id: uuid.UUID,
    status: JobStatus,
    owner: str,
    lease: timedelta,
    progress: int | None = None,
) -> bool:
    """Extend this worker's lease (and optionally record progress); False if it was lost."""
    values: dict[str, Any] = {"lease_expires_at": func.now() + lease, "updated_at": func.now()}
    if progress is not None:
        values["progress"] = func.greatest(Job.progress, progress)
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == status.value, Job.lease_owner == owner)
        .values(**values)
        .returning(Job.id)
    )
    return result.first() is not None


def lock_expired_leases(session: Session, limit: int) -> Sequence[Job]:
    """Lock running jobs whose lease expired, skipping rows another sweeper holds."""
    query = (
        select(Job)
        .where(
            Job.status.in_([JobStatus.TRANSCRIBING.value, JobStatus.GENERATING.value]),
            Job.lease_expires_at < func.now(),
        )
        .order_by(Job.lease_expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return session.scalars(query).all()


def lock_stale_waiting(session: Session, older_than: timedelta, limit: int) -> Sequence[Job]:
    """Lock waiting jobs whose last publish is older than `older_than`."""
    query = (
        select(Job)
        .where(
            Job.status.in_([JobStatus.QUEUED.value, JobStatus.TRANSCRIBED.value]),
            or_(Job.enqueued_at.is_(None), Job.enqueued_at < func.now() - older_than),
        )
        .order_by(Job.enqueued_at.nulls_first())
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return session.scalars(query).all()


def lock_short_queued(
    session: Session, *, exclude: uuid.UUID, max_seconds: float, near_seconds: float, limit: int
) -> Sequence[Job]:
    """Lock queued short jobs (micro-batch candidates), skipping locked rows.

    Those closest in length to `near_seconds` come first, then the oldest: a micro-batch is
    encoded over its longest member, so mates of similar length waste the least window.
    """
    query = (
        select(Job)
        .where(
            Job.status == JobStatus.QUEUED.value,
            Job.id != exclude,
            Job.duration_seconds <= max_seconds,
            Job.attempts < Job.max_attempts,
        )
        .order_by(func.abs(Job.duration_seconds - near_seconds), Job.created_at, Job.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return session.scalars(query).all()


def mark_enqueued(session: Session, job_ids: Sequence[uuid.UUID]) -> None:
    """Record that a message for these jobs was (about to be) published."""
    if job_ids:
        session.execute(update(Job).where(Job.id.in_(job_ids)).values(enqueued_at=func.now()))


def add_transcript(session: Session, transcript: Transcript) -> bool:
    """Insert the job's transcript unless it already has one; True if this call inserted it."""
    values = {c.key: getattr(transcript, c.key) for c in Transcript.__table__.columns}
    values = {k: v for k, v in values.items() if v is not None}
    result = session.execute(
        insert(Transcript).values(**values).on_conflict_do_nothing().returning(Transcript.job_id)
    )
    return result.first() is not None


def get_transcript(session: Session, job_id: uuid.UUID) -> Transcript | None:
    """Load a job's transcript."""
    return session.get(Transcript, job_id)


def lock_transcript(session: Session, job_id: uuid.UUID) -> Transcript | None:
    """Load a job's transcript to change it (its row locked until the commit)."""
    return session.get(Transcript, job_id, with_for_update=True)


def add_draft_segments(
    session: Session, job_id: uuid.UUID, segments: Sequence[tuple[int, dict[str, Any]]]
) -> None:
    """Append segments decoded so far (by position); one already stored is kept as it is."""
    if not segments:
        return
    rows = [{"job_id": job_id, "position": p, "segment": s} for p, s in segments]
    session.execute(insert(TranscriptSegment).values(rows).on_conflict_do_nothing())


def delete_draft_segments(session: Session, job_id: uuid.UUID) -> None:
    """Drop the draft once the transcript holds the segments."""
    session.execute(delete(TranscriptSegment).where(TranscriptSegment.job_id == job_id))


_TRANSCRIPT_SLICE = select(
    func.jsonb_path_query_array(
        Transcript.segments,
        literal_column("'$[$n to last]'::jsonpath"),
        func.jsonb_build_object("n", bindparam("start", type_=Integer)),
    )
).where(Transcript.job_id == bindparam("job_id"))
_DRAFT = (
    select(TranscriptSegment.segment)
    .where(
        TranscriptSegment.job_id == bindparam("job_id"),
        TranscriptSegment.position >= bindparam("start"),
    )
    .order_by(TranscriptSegment.position)
)


def segments_from(
    session: Session, job_id: uuid.UUID, start: int
) -> tuple[list[dict[str, Any]], bool]:
    """A job's segments from position `start` on, and whether they are the final ones.

    The transcript's once it is stored (final), else the draft published so far by the
    worker transcribing the job. The transcript and the draft's deletion commit together,
    so a reader sees one or the other, never neither.
    """
    params = {"job_id": job_id, "start": start}
    final = session.execute(_TRANSCRIPT_SLICE, params).scalar_one_or_none()
    if final is not None:
        return list(final), True
    return list(session.scalars(_DRAFT, params)), False


def add_llm_result(session: Session, result: LlmResult) -> bool:
    """Insert one task's output unless the job already has it; True if inserted."""
    values = {c.key: getattr(result, c.key) for c in LlmResult.__table__.columns}
    values = {k: v for k, v in values.items() if v is not None and k != "id"}
    inserted = session.execute(
        insert(LlmResult).values(**values).on_conflict_do_nothing().returning(LlmResult.id)
    )
    return inserted.first() is not None


def list_llm_results(session: Session, job_id: uuid.UUID, after: int = 0) -> Sequence[LlmResult]:
    """A job's LLM outputs, oldest first (those stored after the one with id `after`)."""
    query = select(LlmResult).where(LlmResult.job_id == job_id, LlmResult.id > after)
    return session.scalars(query.order_by(LlmResult.id)).all()


def list_events(session: Session, job_id: uuid.UUID, after: int = 0) -> Sequence[JobEvent]:
    """A job's timeline, oldest first (the entries after the one with id `after`)."""
    query = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after)
    return session.scalars(query.order_by(JobEvent.id)).all()


def add_api_key(session: Session, key: ApiKey) -> None:
    """Insert an API key row."""
    session.add(key)
    session.flush()


_KEYS_BY_PREFIX = select(ApiKey).where(
    ApiKey.prefix == bindparam("prefix"), ApiKey.revoked_at.is_(None)
)


def find_api_keys_by_prefix(session: Session, prefix: str) -> Sequence[ApiKey]:
    """The unrevoked keys with this public prefix (almost always zero or one)."""
    return session.scalars(_KEYS_BY_PREFIX, {"prefix": prefix}).all()


def revoke_api_key(session: Session, prefix: str) -> int:
    """Revoke keys with this public prefix; returns how many were revoked."""
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(ApiKey.id)
    )
    return len(result.all())


def add_llm_calls(session: Session, calls: Sequence[LlmCall]) -> None:
    """Record LLM calls (cost accounting keeps failed attempts too)."""
    session.add_all(calls)
    session.flush()


def list_llm_calls(session: Session, job_id: uuid.UUID) -> Sequence[LlmCall]:
    """A job's LLM calls, oldest first."""
    stmt = select(LlmCall).where(LlmCall.job_id == job_id).order_by(LlmCall.id)
    return session.scalars(stmt).all()


def tenant_spend_since(session: Session, tenant: str, since: datetime) -> Decimal:
    """What a tenant's LLM calls have cost since a moment (its budget day's start)."""
    stmt = select(func.coalesce(func.sum(LlmCall.cost_usd), 0)).where(
        LlmCall.tenant == tenant, LlmCall.created_at >= since
    )
    return Decimal(session.scalar(stmt) or 0)


def count_by_status(
    session: Session, statuses: Sequence[JobStatus]
) -> dict[str, tuple[int, float]]:
    """Per status: how many jobs are in it, and seconds since the oldest of them entered it."""
    # Every transition sets updated_at, and nothing else touches a waiting job's row.
    age = func.extract("epoch", func.now() - func.min(Job.updated_at))
    stmt = (
        select(Job.status, func.count(), age)
        .where(Job.status.in_([s.value for s in statuses]))
        .group_by(Job.status)
    )
    return {
        status: (int(count), float(oldest or 0)) for status, count, oldest in session.execute(stmt)
    }
