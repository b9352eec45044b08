"""Read logic of the status API: tenant-scoped lookups, pagination and views."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from status_api.schemas import (
    CallView,
    EventView,
    JobErrorView,
    JobLinks,
    JobList,
    JobSource,
    JobView,
    ResultsView,
    ResultView,
    SpeakerView,
    Totals,
    Usage,
    WebhookDeliveryView,
)
from voxflow import transcript_formats
from voxflow.jobs import reads, repository, service
from voxflow.jobs.models import Job, LlmCall, LlmResult, Transcript
from voxflow.jobs.reads import JobRecord
from voxflow.jobs.states import JobStatus
from voxflow.jobs.urls import job_url
from voxflow.storage import Storage
from voxflow.web.errors import ApiError
from voxflow.webhooks import repository as webhooks

if TYPE_CHECKING:
    from asyncpg import Connection

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def _not_found(raw_id: str) -> ApiError:
    return ApiError(404, "job_not_found", f"No job {raw_id!r} exists for this API key.")


def _job_id(raw_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw_id)
    except ValueError:
        raise _not_found(raw_id) from None


def get_job(session: Session, tenant: str, raw_id: str) -> Job:
    """Load the tenant's job by its id as given in the URL, or raise a 404."""
    job = repository.get_job(session, _job_id(raw_id), tenant)
    if job is None:
        raise _not_found(raw_id)
    return job


async def read_job(conn: Connection, tenant: str, raw_id: str) -> JobRecord:
    """`get_job` for a read that only shows the job: on the driver connection, no ORM."""
    job = await reads.get_job(conn, _job_id(raw_id), tenant)
    if job is None:
        raise _not_found(raw_id)
    return job


def job_view(job: JobRecord, base_url: str) -> JobView:
    """Present a job with absolute links under `base_url`."""
    own = job_url(base_url, job.id)
    error = None
    if job.error_code is not None:
        error = JobErrorView(code=job.error_code, message=job.error_message or "")
    return JobView(
        id=job.id,
        status=JobStatus(job.status),
        progress=job.progress,
        created_at=job.created_at,
        updated_at=job.updated_at,
        transcription_started_at=job.transcription_started_at,
        transcribed_at=job.transcribed_at,
        generation_started_at=job.generation_started_at,
        finished_at=job.finished_at,
        attempts=job.attempts,
        options=job.options,
        source=JobSource(
            filename=job.source_filename,
            size_bytes=job.size_bytes,
            duration_seconds=job.duration_seconds,
            sha256=job.content_sha256,
        ),
        error=error,
        webhook_url=job.webhook_url,
        links=JobLinks(
            self=own,
            events=f"{own}/events",
            transcript=f"{own}/transcript",
            results=f"{own}/results",
            webhooks=f"{own}/webhooks",
        ),
    )


def encode_cursor(job: Job | JobRecord) -> str:
    """Opaque cursor pointing just past `job` in newest-first order."""
    raw = json.dumps([job.created_at.isoformat(), str(job.id)]).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _invalid_cursor() -> ApiError:
    return ApiError(400, "invalid_cursor", "The cursor is not one this API returned.")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Read a cursor made by `encode_cursor`, or raise a 400."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_raw, id_raw = json.loads(raw)
        created = datetime.fromisoformat(created_raw)
        job_id = uuid.UUID(id_raw)
    except (ValueError, TypeError, AttributeError):  # binascii and JSON errors are ValueErrors
        raise _invalid_cursor() from None
    if created.tzinfo is None:
        raise _invalid_cursor()
    return created, job_id


async def list_jobs(
    conn: Connection,
    tenant: str,
    base_url: str,
    *,
    status: JobStatus | None,
    limit: int,
    cursor: str | None,
) -> JobList:
    """One page of the tenant's jobs, newest first, and the cursor of the next page."""
    before = decode_cursor(cursor) if cursor else None
    # One extra row tells whether another page exists without a second query.
    jobs = await reads.list_jobs(conn, tenant, status=status, before=before, limit=limit + 1)
    page = jobs[:limit]
    next_cursor = encode_cursor(page[-1]) if len(jobs) > limit else None
    return JobList(items=[job_view(job, base_url) for job in page], next_cursor=next_cursor)


def list_events(session: Session, tenant: str, raw_id: str) -> list[EventView]:
    """The timeline of the tenant's job, oldest first."""
    job = get_job(session, tenant, raw_id)
    return [
        EventView(
            at=event.at,
            from_status=JobStatus(event.from_status) if event.from_status else None,
            to_status=JobStatus(event.to_status),
            actor=event.actor,
            detail=event.detail,
        )
        for event in repository.list_events(session, job.id)
    ]


def list_webhooks(session: Session, tenant: str, raw_id: str) -> list[WebhookDeliveryView]:
    """The webhook deliveries of the tenant's job (none until it finishes)."""
    job = get_job(session, tenant, raw_id)
    return [
        WebhookDeliveryView.model_validate(delivery, from_attributes=True)
        for delivery in webhooks.list_for_job(session, job.id)
    ]


def _not_ready(job: Job) -> ApiError:
    status = JobStatus(job.status)
    if status is JobStatus.FAILED:
        message = (
            f"The job failed ({job.error_code}) before its transcript was ready: "
            f"{job.error_message}"
        )
    elif status is JobStatus.CANCELED:
        message = "The job was canceled before its transcript was ready."
    else:
        message = f"The job is {status.value}; its transcript is not ready yet."
    return ApiError(409, "transcript_not_ready", message)


@dataclass(frozen=True)
class RenderedTranscript:
    """A transcript rendered in one format, ready to send."""

    job_id: uuid.UUID
    fmt: str
    body: str
    media_type: str

    @property
    def filename(self) -> str:
        """Download name of the rendering (verbose JSON is still a `.json` file)."""
        extension = "json" if self.fmt == "verbose_json" else self.fmt
        return f"{self.job_id}.{extension}"


# Above this many segments (about 15 minutes of speech) a rendering takes milliseconds of
# CPU, and runs in a worker thread so that the event loop keeps answering other requests.
LARGE_TRANSCRIPT_SEGMENTS = 200


@dataclass(frozen=True)
class StoredTranscript:
    """A job's transcript as loaded, ready to be rendered in any format."""

    job_id: uuid.UUID
    transcript: Transcript

    @property
    def large(self) -> bool:
        """Whether rendering it is worth a worker thread."""
        return len(self.transcript.segments) > LARGE_TRANSCRIPT_SEGMENTS

    def render(
        self, fmt: str, max_line_chars: int = transcript_formats.DEFAULT_MAX_LINE_CHARS
    ) -> RenderedTranscript:
        """The transcript as `fmt`; `max_line_chars` wraps SRT/VTT cue lines only."""
        transcript = self.transcript
        body, media_type = transcript_formats.render(
            fmt,
            text=transcript.text,
            segments=transcript.segments,
            language=transcript.language,
            duration_seconds=transcript.duration_seconds,
            language_probability=transcript.language_probability,
            max_line_chars=max_line_chars,
            speakers=transcript.speakers,
        )
        return RenderedTranscript(job_id=self.job_id, fmt=fmt, body=body, media_type=media_type)


def load_transcript(session: Session, job: Job) -> StoredTranscript:
    """A job's transcript (the job as `get_job` found it), or a 409 (not written yet)."""
    transcript = repository.get_transcript(session, job.id)
    if transcript is None:
        raise _not_ready(job)
    return StoredTranscript(job.id, transcript)


def rename_speakers(
    session: Session, tenant: str, raw_id: str, names: dict[str, str | None]
) -> list[SpeakerView]:
    """Name (or unname) a diarized transcript's speakers; every format and new note shows
    the names. 409 before the transcript exists or when it was not diarized; 422 for a
    label the transcript does not have."""
    job = get_job(session, tenant, raw_id)
    transcript = repository.lock_transcript(session, job.id)
    if transcript is None:
        raise _not_ready(job)
    if transcript.speakers is None:
        raise ApiError(
            409, "not_diarized",
            "This transcript was made without diarization, so it has no speakers to name. "
            "Upload with the option `diarize` to get speakers.",
        )  # fmt: skip
    labels = [str(speaker["label"]) for speaker in transcript.speakers]
    unknown = sorted(set(names) - set(labels))
    if unknown:
        raise ApiError(
            422, "unknown_speaker",
            f"This transcript has no speaker {', '.join(unknown)} (its speakers: "
            f"{', '.join(labels) or 'none'}).",
        )  # fmt: skip
    transcript.speakers = [
        {**s, "name": names[s["label"]]} if s["label"] in names else s for s in transcript.speakers
    ]
    job.updated_at = func.now()  # cached renderings are keyed by it (renders.py)
    session.flush()
    return [SpeakerView.model_validate(s) for s in transcript.speakers]


def result_view(result: LlmResult) -> ResultView:
    """One note as `GET /v1/jobs/{id}/results` (and the job stream) shows it."""
    return ResultView(
        task=result.task,
        provider=result.provider,
        model=result.model,
        output=result.output,
        output_json=result.output_json,
        usage=Usage(
            tokens_in=result.tokens_in,
            tokens_out=result.tokens_out,
            cost_usd=float(result.cost_usd),
            latency_ms=result.latency_ms,
        ),
        cached=result.cached,
        created_at=result.created_at,
    )


def _call_view(call: LlmCall) -> CallView:
    return CallView(
        task=call.task,
        deployment=call.deployment,
        provider=call.provider,
        model=call.model,
        outcome=call.outcome,
        error=call.error,
        usage=Usage(
            tokens_in=call.tokens_in,
            tokens_out=call.tokens_out,
            cost_usd=float(call.cost_usd),
            latency_ms=call.latency_ms,
        ),
        created_at=call.created_at,
    )


def _totals(results: Sequence[LlmResult], calls: Sequence[LlmCall]) -> Totals:
    # Costs are summed as decimals so many small amounts do not drift.
    cost = sum((Decimal(r.cost_usd) for r in results), Decimal(0))
    return Totals(
        tokens_in=sum(r.tokens_in for r in results),
        tokens_out=sum(r.tokens_out for r in results),
        cost_usd=float(cost),
        calls=len(calls),
        failed_calls=sum(1 for c in calls if c.outcome not in ("ok", "cached")),
    )


def list_results(session: Session, tenant: str, raw_id: str) -> ResultsView:
    """The LLM outputs of the tenant's job and their summed usage."""
    job = get_job(session, tenant, raw_id)
    results = repository.list_llm_results(session, job.id)
    calls = repository.list_llm_calls(session, job.id)
    return ResultsView(
        job_id=job.id,
        status=JobStatus(job.status),
        results=[result_view(r) for r in results],
        totals=_totals(results, calls),
        calls=[_call_view(c) for c in calls],
    )


def cancel_job(session: Session, tenant: str, raw_id: str, base_url: str) -> JobView:
    """Cancel the tenant's unfinished job; 409 if it has already finished."""
    job = get_job(session, tenant, raw_id)
    canceled = service.cancel(session, job.id, actor=f"tenant:{tenant}")
    if canceled is None:
        session.refresh(job)
        raise ApiError(
            409, "job_finished",
            f"Job {job.id} has already finished ({job.status}) and cannot be canceled.",
        )  # fmt: skip
    return job_view(JobRecord.of(canceled), base_url)


def _stop_for_delete(session: Session, tenant: str, raw_id: str) -> Job:
    job = get_job(session, tenant, raw_id)
    service.cancel(session, job.id, actor=f"tenant:{tenant}")  # a worker stops writing to it
    return job


async def delete_job(session: AsyncSession, storage: Storage, tenant: str, raw_id: str) -> None:
    """Delete the tenant's job, its audio, transcript, notes and history (canceling it first).

    The audio goes first: should the database step then fail, the job is still listed and
    the delete can be repeated (the opposite order could leave audio nobody can find). The
    storage calls run in a thread.
    """
    job = await session.run_sync(_stop_for_delete, tenant, raw_id)
    for key in job.audio_keys:
        await run_in_threadpool(storage.delete, key)
    await session.run_sync(repository.delete_job, job.id)
