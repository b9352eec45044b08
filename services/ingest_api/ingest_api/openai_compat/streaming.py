"""A transcription as OpenAI streams it (`stream=true`): Server-Sent Events of the segments."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ingest_api.openai_compat.errors import AUDIO_FAILURES, error_detail
from ingest_api.openai_compat.responses import diarized_segments
from voxflow.db import read_only
from voxflow.jobs import repository
from voxflow.jobs.models import Job, Transcript
from voxflow.jobs.states import JobStatus
from voxflow.web.api_runtime import ApiRuntime

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25  # how often a stream looks for new segments
PING_SECONDS = 15  # a comment line this often keeps proxies from closing an idle stream


@dataclass
class _Seen:
    """One look at a streamed job: its state, the segments new since the last look."""

    job: Job | None
    segments: list[dict[str, Any]]
    final: bool  # the segments are the transcript's: no more will come
    transcript: Transcript | None  # once the job is completed


def _look(session: Session, job_id: uuid.UUID, tenant: str, sent: int, final: bool) -> _Seen:
    job = repository.get_job(session, job_id, tenant)
    if job is None:
        return _Seen(None, [], final, None)
    segments: list[dict[str, Any]] = []
    if not final:
        segments, final = repository.segments_from(session, job_id, sent)
    transcript = None
    if job.status == JobStatus.COMPLETED:
        transcript = repository.get_transcript(session, job_id)
    return _Seen(job, segments, final, transcript)


def _event(type: str, **fields: Any) -> dict[str, str]:
    """An SSE event (sse-starlette's dict form) in OpenAI's shape."""
    return {"event": type, "data": json.dumps({"type": type, **fields})}


def _stream_error(status: int, code: str, message: str) -> dict[str, str]:
    """The event that ends a stream that cannot finish (the SDK raises `APIError`)."""
    return _event("error", error=error_detail(status, code, message)[1])


async def deltas(
    runtime: ApiRuntime, job_id: uuid.UUID, tenant: str, seconds: float, *, diarized: bool = False
) -> AsyncIterator[dict[str, str]]:
    """OpenAI's streaming events for a job: a `transcript.text.delta` per segment as the
    worker publishes it, then `transcript.text.done` with the whole text; or an `error`.
    With `diarized` (diarized_json), a `transcript.text.segment` per segment with its speaker
    comes before `done`: the speakers are known once the recording has been diarized.

    The deltas, joined, are the text (each after the first starts with a space). Like the
    waiting request, the stream is bounded by `seconds`, and a client that hangs up leaves
    the job running; its live stream on the status API resumes from any point.
    """
    deadline = time.monotonic() + seconds
    sent = 0  # segments looked at
    spoken = False  # a delta has carried words
    final = False
    while True:
        try:
            async with runtime.reads() as session:
                read_only(session.sync_session)
                seen = await session.run_sync(_look, job_id, tenant, sent, final)
        except DBAPIError:  # the response has begun: keep trying until the deadline
            log.warning("stream of job %s could not read the database", job_id, exc_info=True)
            seen = None
        if seen is not None:
            if seen.job is None:
                yield _stream_error(404, "job_not_found", f"Job {job_id} was deleted.")
                return
            final = seen.final
            for segment in seen.segments:
                sent += 1
                if words := str(segment.get("text") or "").strip():
                    yield _event("transcript.text.delta", delta=(" " if spoken else "") + words)
                    spoken = True
            status = JobStatus(seen.job.status)
            if status is JobStatus.COMPLETED:
                transcript = seen.transcript
                if diarized and transcript is not None:
                    for segment in diarized_segments(transcript):
                        yield _event(**segment)
                text = transcript.text.strip() if transcript is not None else ""
                yield _event("transcript.text.done", text=text)
                return
            if status is JobStatus.CANCELED:
                yield _stream_error(409, "job_canceled", f"Job {job_id} was canceled.")
                return
            if status is JobStatus.FAILED:
                code = seen.job.error_code or "transcription_failed"
                message = seen.job.error_message or "The transcription failed."
                yield _stream_error(400 if code in AUDIO_FAILURES else 500, code, message)
                return
        if time.monotonic() >= deadline:
            yield _stream_error(
                504, "transcription_pending",
                f"The transcription is still running after {seconds:g} s. Job {job_id} "
                f"continues: its state is at GET /v1/jobs/{job_id} on the status API.",
            )  # fmt: skip
            return
        await asyncio.sleep(POLL_SECONDS)
