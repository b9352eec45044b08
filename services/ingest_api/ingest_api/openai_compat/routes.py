"""The endpoints: `GET /v1/models`, `GET /v1/models/{id}`, `POST /v1/audio/transcriptions`."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from ingest_api import known_speakers, service
from ingest_api.limits import UploadLimits
from ingest_api.openai_compat.errors import OpenAIRoute, openai_error, openai_responses
from ingest_api.openai_compat.model_list import Model, ModelList, models
from ingest_api.openai_compat.request import ALIAS, FIELDS, FORMATS, GRANULARITIES, read_request
from ingest_api.openai_compat.responses import answer, failure
from ingest_api.openai_compat.streaming import PING_SECONDS, deltas
from ingest_api.settings import IngestSettings
from ingest_api.upload import MAX_REPEATS, parse_upload
from voxflow.jobs import reads, repository
from voxflow.jobs.states import JobStatus
from voxflow.jobs.urls import job_url
from voxflow.web.api_runtime import DbSession, api_runtime
from voxflow.web.auth import Tenant
from voxflow.web.errors import ApiError

router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIRoute)
_ENDED = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED})


@router.get(
    "/models", summary="List the transcription models (OpenAI's shape)",
    responses=openai_responses(401, 503),
)  # fmt: skip
async def list_models(request: Request, _: Tenant) -> ModelList:
    """The allowed Whisper models, and `whisper-1`, the alias of the default one."""
    return ModelList(data=models(request.app.state.settings))


@router.get(
    "/models/{model_id:path}", summary="Get a model (OpenAI's shape)",
    responses=openai_responses(401, 404, 503),
)  # fmt: skip
async def get_model(model_id: str, request: Request, _: Tenant) -> Model:
    """One model; 404 for a name that is not offered here."""
    for model in models(request.app.state.settings):
        if model.id == model_id:
            return model
    raise ApiError(404, "model_not_found", f"The model {model_id!r} does not exist here.")


_TRANSCRIPTION_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "additionalProperties": False,
                    "properties": {
                        "file": {"type": "string", "format": "binary",
                                 "description": "The recording (any container PyAV reads)."},
                        "model": {"type": "string", "default": ALIAS, "maxLength": 200,
                                  "description": "`whisper-1` (the default model) or an "
                                  "allowed model (`GET /v1/models`)."},
                        "language": {"type": "string", "pattern": "^[a-z]{2,3}$",
                                     "description": "ISO 639-1 code; detected when omitted."},
                        "prompt": {"type": "string", "maxLength": 1000,
                                   "description": "Context or vocabulary for the decoder."},
                        "response_format": {"type": "string", "enum": list(FORMATS),
                                            "default": "json"},
                        "temperature": {"type": "number", "minimum": 0, "maximum": 1,
                                        "description": "Accepted for compatibility; Voxflow "
                                        "decodes with its own temperature fallback."},
                        "timestamp_granularities[]": {
                            "type": "array", "maxItems": MAX_REPEATS,
                            "items": {"type": "string", "enum": list(GRANULARITIES)},
                            "description": "With `verbose_json` only.",
                        },
                        "stream": {"type": "boolean", "default": False,
                                   "description": "Answer Server-Sent Events: a "
                                   "`transcript.text.delta` per segment as it is decoded, "
                                   "then `transcript.text.done` (json and text formats)."},
                    },
                },
                "encoding": {"file": {"contentType": "audio/*, video/*"}},
            }
        },
    }
}  # fmt: skip

# One event of a streamed transcription.
_EVENT = {
    "type": "object", "required": ["type"],
    "properties": {
        "type": {"type": "string", "enum": ["transcript.text.delta", "transcript.text.done",
                                            "error"]},
        "delta": {"type": "string"}, "text": {"type": "string"}, "error": {"type": "object"},
    },
}  # fmt: skip

# What the transcript comes back as, by `response_format`.
_TRANSCRIPT_CONTENT: dict[str, dict[str, Any]] = {
    "application/json": {"schema": {"type": "object", "required": ["text"],
                                    "properties": {"text": {"type": "string"}}}},
    "text/plain": {"schema": {"type": "string"}},
    "application/x-subrip": {"schema": {"type": "string"}},
    "text/vtt": {"schema": {"type": "string"}},
}  # fmt: skip


@router.post(
    "/audio/transcriptions",
    summary="Transcribe a recording (OpenAI's API; waits for the job)",
    response_class=Response,
    openapi_extra=_TRANSCRIPTION_BODY,
    responses={
        200: {"description": "The transcript in `response_format`, or with `stream=true` "
                             "its events (docs/openai.md).",
              "content": {**_TRANSCRIPT_CONTENT, "text/event-stream": {"schema": _EVENT}}},
        **openai_responses(400, 401, 408, 409, 413, 429, 500, 503, 504),
    },
)  # fmt: skip
async def create_transcription(request: Request, tenant: Tenant, session: DbSession) -> Response:
    """Upload, queue and wait: the answer is the transcript, as OpenAI's API gives it."""
    settings: IngestSettings = request.app.state.settings
    runtime = api_runtime(request)
    limits: UploadLimits = request.app.state.limits
    await limits.check(runtime, tenant)
    upload = await parse_upload(
        dict(request.headers), request.stream(), spool_dir=settings.spool_dir,
        max_bytes=settings.max_upload_bytes, max_options_bytes=settings.max_options_bytes,
        deadline_seconds=settings.upload_deadline_seconds, fields=FIELDS,
    )  # fmt: skip
    try:
        asked = read_request(upload, settings)
        audio = await run_in_threadpool(service.check_audio, upload, settings)
        known = await run_in_threadpool(known_speakers.read, upload, settings)
        try:
            job = await service.store_and_record(
                session, tenant=tenant, upload=upload, options=asked.options, audio=audio,
                storage=runtime.storage, settings=settings, known=known,
            )  # fmt: skip
        finally:
            known_speakers.discard(known)
    finally:
        Path(upload.path).unlink(missing_ok=True)  # noqa: ASYNC240 (instant local unlink)
    # The job must exist, and its message be published, before anyone can wait for it: the
    # one commit this route makes before its end (the unit of work has nothing left after).
    await session.commit()
    headers = {
        "X-Voxflow-Job-Id": str(job.id),
        "Location": job_url(settings.public_status_url, job.id),
    }
    if asked.stream:
        return EventSourceResponse(
            deltas(
                runtime,
                job.id,
                tenant,
                settings.openai_wait_seconds,
                diarized=asked.response_format == "diarized_json",
            ),
            ping=PING_SECONDS,
            headers={**headers, "X-Accel-Buffering": "no", "Cache-Control": "no-cache"},
        )
    status = await _wait(request, job.id, tenant, settings.openai_wait_seconds)
    if status is None:
        return openai_error(
            504, "transcription_pending",
            f"The transcription is still running after {settings.openai_wait_seconds:g} s. Job "
            f"{job.id} continues: its state is at GET /v1/jobs/{job.id} on the status API.",
            {**headers, "x-should-retry": "false"},
        )  # fmt: skip
    if status is not JobStatus.COMPLETED:
        return await failure(session, job.id, status, headers)
    transcript = await session.run_sync(repository.get_transcript, job.id)
    if transcript is None:  # completed jobs have one; a retention sweep may have removed it
        return openai_error(500, "transcript_missing", "The transcript is gone.", headers)
    return answer(asked, transcript, headers)


async def _wait(
    request: Request, job_id: uuid.UUID, tenant: str, seconds: float
) -> JobStatus | None:
    """Poll the job until it ends, the wait runs out (None) or the client leaves (None).

    Either way the job goes on: it is durable, and its caller finds it in `GET /v1/jobs`.
    """
    runtime = api_runtime(request)
    deadline = time.monotonic() + seconds
    pause = 0.05
    while True:
        async with runtime.driver() as conn:
            job = await reads.get_job(conn, job_id, tenant)
        if job is not None and JobStatus(job.status) in _ENDED:
            return JobStatus(job.status)
        if time.monotonic() >= deadline or await request.is_disconnected():
            return None
        await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 1.5, 0.5)
