"""SQLAlchemy models: jobs, their timeline, transcripts, LLM results and API keys.

Webhook deliveries have their own model, `voxflow.webhooks.models`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR, UUID
from sqlalchemy.orm import Mapped, mapped_column

from voxflow.db import Base
from voxflow.jobs.states import TERMINAL, JobStatus

_STATUSES = ", ".join(f"'{s.value}'" for s in JobStatus)
TERMINAL_VALUES = sorted(s.value for s in TERMINAL)  # one order for the index and its query
_TERMINAL = ", ".join(f"'{value}'" for value in TERMINAL_VALUES)
# Unfinished jobs: the predicate of the partial index ix_jobs_tenant_active, and the condition
# of the query that counts them (literal values, so the planner matches the two even for a
# prepared statement's generic plan).
UNFINISHED = f"status NOT IN ({_TERMINAL})"
# The text search configuration of transcript search (the status API's search_repository,
# docs/search.md): `simple` lowercases words and does nothing else, so it treats every
# language alike (and search relies on it: a lexeme is a lowercased piece of the text).
SEARCH_CONFIG = "simple"
# The words of a transcript without their positions: what the search index holds.
SEARCH_VECTOR = f"strip(to_tsvector('{SEARCH_CONFIG}'::regconfig, text))"


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Job(Base):
    """One uploaded recording and everything that happens to it."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"status IN ({_STATUSES})", name="jobs_status_valid"),
        CheckConstraint("progress BETWEEN 0 AND 100", name="jobs_progress_range"),
        Index("ix_jobs_tenant_created", "tenant", "created_at", "id"),
        # The upload quota counts a tenant's unfinished jobs: only those are in this index.
        Index(
            "ix_jobs_tenant_active",
            "tenant",
            postgresql_where=text(UNFINISHED),
        ),
        Index("ix_jobs_status_lease", "status", "lease_expires_at"),
        # Retention scans finished jobs whose audio is still stored, oldest first.
        Index(
            "ix_jobs_audio_retention",
            "finished_at",
            postgresql_where=text("audio_deleted_at IS NULL AND finished_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    progress: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=0)
    options: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    # The upload's W3C trace context (traceparent): every stage's span continues that trace,
    # even when the sweeper re-publishes the job's message without any context of its own.
    trace_context: Mapped[dict[str, str]] = mapped_column(JSONB, nullable=False, default=dict)

    source_key: Mapped[str] = mapped_column(Text, nullable=False)
    source_filename: Mapped[str | None] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    duration_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    content_sha256: Mapped[str] = mapped_column(String(64), nullable=False)

    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    lease_owner: Mapped[str | None] = mapped_column(Text)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)

    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    transcription_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    transcribed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    generation_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when retention (or a delete) removed the stored audio; the transcript stays.
    audio_deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Called with a signed POST when the job finishes (voxflow.webhooks).
    webhook_url: Mapped[str | None] = mapped_column(Text)

    @property
    def audio_keys(self) -> list[str]:
        """Every stored object of the job's audio (see `audio_keys`)."""
        return audio_keys(self.source_key, self.options)


def audio_keys(source_key: str, options: dict[str, Any]) -> list[str]:
    """A job's stored objects: the recording, and the reference clips of its known speakers.
    Deletion and retention remove them all."""
    known = options.get("known_speakers") or []
    return [source_key, *(str(speaker["key"]) for speaker in known)]


class JobEvent(Base):
    """One entry of a job's timeline: every transition appends one."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    at: Mapped[datetime] = _now()
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16), nullable=False)
    actor: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)


class Transcript(Base):
    """The one transcript of a job."""

    __tablename__ = "transcripts"
    __table_args__ = (
        # Transcript search finds a tenant's transcripts holding the query's words here.
        # Without fastupdate each transcript is indexed as it is stored (about 1 ms, once),
        # rather than queued in a pending list that every search would read through.
        Index(
            "ix_transcripts_search",
            "search_vector",
            postgresql_using="gin",
            postgresql_with={"fastupdate": "off"},
        ),
    )

    job_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    language: Mapped[str] = mapped_column(String(16), nullable=False)
    language_probability: Mapped[float | None] = mapped_column(Float)
    duration_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    segments: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    model: Mapped[str] = mapped_column(Text, nullable=False)
    decode_options: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    processing_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    created_at: Mapped[datetime] = _now()
    # A diarized transcript's speakers, by first appearance: {"label", "name", "talk_seconds"}
    # (segments and words carry the label; a rename changes only `name`). None: undiarized.
    speakers: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    # The transcript's words, computed by PostgreSQL from `text` (never written, never loaded
    # with the transcript): stored, so that checking a transcript does not parse its text again.
    search_vector: Mapped[str | None] = mapped_column(
        TSVECTOR, Computed(SEARCH_VECTOR, persisted=True), deferred=True
    )


class TranscriptSegment(Base):
    """A segment published while its job is still being transcribed.

    The worker holding the job's lease appends them as they are decoded (with its lease
    renewal, so a worker that lost the job writes nothing), and the live streams read them:
    a listener that connects late, or reconnects, misses nothing. They are a draft: the
    transcript replaces them, and they are deleted in the transaction that stores it.
    """

    __tablename__ = "transcript_segments"

    job_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    segment: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)


class LlmResult(Base):
    """The output of one LLM task for a job (at most one per task kind)."""

    __tablename__ = "llm_results"
    __table_args__ = (UniqueConstraint("job_id", "task", name="uq_llm_results_job_task"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
    )
    task: Mapped[str] = mapped_column(String(32), nullable=False)
    provider: Mapped[str] = mapped_column(String(64), nullable=False)
    model: Mapped[str] = mapped_column(Text, nullable=False)
    output: Mapped[str] = mapped_column(Text, nullable=False)
    output_json: Mapped[Any | None] = mapped_column(JSONB)
    tokens_in: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(12, 6), nullable=False, default=0)
    latency_ms: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    cached: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = _now()


class LlmCall(Base):
    """One call to an LLM deployment (failed attempts and cache hits included), for costs."""

    __tablename__ = "llm_calls"
    __table_args__ = (Index("ix_llm_calls_tenant_created", "tenant", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    tenant: Mapped[str] = mapped_column(String(64), nullable=False)
    task: Mapped[str] = mapped_column(String(32), nullable=False)
    deployment: Mapped[str] = mapped_column(String(64), nullable=False)
    provider: Mapped[str] = mapped_column(String(64), nullable=False)
    model: Mapped[str] = mapped_column(Text, nullable=False)
    outcome: Mapped[str] = mapped_column(String(32), nullable=False)  # ok, cached, error code
    error: Mapped[str | None] = mapped_column(Text)
    tokens_in: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(12, 6), nullable=False, default=0)
    latency_ms: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = _now()


class IdempotencyKey(Base):
    """An `Idempotency-Key` a tenant sent with an upload, and the answer it got."""

    __tablename__ = "idempotency_keys"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # in_flight, done
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    response_status: Mapped[int | None] = mapped_column(SmallInteger)
    response_body: Mapped[Any | None] = mapped_column(JSONB)
    response_headers: Mapped[Any | None] = mapped_column(JSONB)
    job_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("jobs.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, index=True
    )


class ApiKey(Base):
    """An API key, stored only as a hash, scoped to one tenant."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = _now()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
