"""OpenAI's speech API on Voxflow's jobs: `POST /v1/audio/transcriptions` and `/v1/models`.

Clients built for OpenAI (its SDKs, Open WebUI, LibreChat, n8n) take a base URL: pointed at
`http://host:8000/v1`, they transcribe through Voxflow. A transcription is an ordinary job of
the caller's tenant, with the job API's validation, limits, storage, queue, micro-batching
and retention; the request waits for it (at most `VOXFLOW_OPENAI_WAIT_SECONDS`) and answers
in OpenAI's shapes. The job's id comes back in `X-Voxflow-Job-Id`.

Errors on these routes use OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`,
with the statuses its SDKs map to their exceptions (docs/openai.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from ingest_api import known_speakers, service
from ingest_api.limits import UploadLimits
from ingest_api.schemas import JobOptions
from ingest_api.settings import IngestSettings
from ingest_api.upload import MAX_REPEATS, FormField, ParsedUpload, parse_upload
from voxflow import transcript_formats
from voxflow.db import read_only
from voxflow.jobs import reads, repository
from voxflow.jobs.models import Job, Transcript
from voxflow.jobs.states import JobStatus
from voxflow.jobs.urls import job_url
from voxflow.web.api_runtime import ApiRuntime, DbSession, api_runtime
from voxflow.web.auth import Tenant
from voxflow.web.errors import ApiError, database_error

log = logging.getLogger(__name__)

ALIAS = "whisper-1"  # what most OpenAI clients send: the deployment's default model
FORMATS = ("json", "text", "srt", "vtt", "verbose_json", "diarized_json")
# OpenAI streams these; the others are whole documents.
STREAM_FORMATS = ("json", "text", "diarized_json")
GRANULARITIES = ("segment", "word")
_STARTED = int(time.time())  # a model's `created`: when this process began serving it

# The form fields of OpenAI's request besides `file` (names as its SDKs send them), capped in
# bytes: four per character of the documented lengths (UTF-8).
FIELDS = (
    FormField("model", 800),
    FormField("language", 16),
    FormField("prompt", 4000),
    FormField("response_format", 32),
    FormField("temperature", 32),
    FormField("timestamp_granularities[]", 16, repeated=True),
    FormField("stream", 8),
    *known_speakers.FIELDS,
)

# OpenAI's error `type` by status (its SDKs choose the exception class by status alone).
_TYPES = {401: "invalid_request_error", 429: "rate_limit_error"}
# Voxflow's job API says 415/422 where OpenAI's says 400 (bad audio, bad options).
_STATUSES = {415: 400, 422: 400}
# The field an error code is about, for OpenAI's `param`.
_PARAMS = {
    "model_not_found": "model",
    "invalid_response_format": "response_format",
    "invalid_language": "language",
    "invalid_temperature": "temperature",
    "invalid_timestamp_granularities": "timestamp_granularities[]",
    "invalid_stream": "stream",
    "invalid_known_speaker_name": "known_speaker_names[]",
    "known_speakers_mismatch": "known_speaker_references[]",
    "too_many_known_speakers": "known_speaker_names[]",
    "invalid_known_speaker_reference": "known_speaker_references[]",
    "known_speakers_need_diarize": "response_format",
    "missing_file": "file",
    "file_too_large": "file",
}
# Failures that are the upload's fault (the SDK raises BadRequestError; no retry helps).
_AUDIO_FAILURES = frozenset({"corrupt_audio", "empty_audio", "audio_too_long"})


class OpenAIErrorDetail(BaseModel):
    """What went wrong, as OpenAI's API says it."""

    message: str
    type: str
    param: str | None
    code: str


class OpenAIError(BaseModel):
    """Body of every error of these routes."""

    error: OpenAIErrorDetail


def openai_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for errors in OpenAI's shape."""
    return {s: {"model": OpenAIError, "description": HTTPStatus(s).phrase} for s in statuses}


def _error_detail(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    """OpenAI's status and `error` object for one of Voxflow's refusals."""
    status = _STATUSES.get(status, status)
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return status, {"message": message, "type": kind, "param": _PARAMS.get(code), "code": code}


def openai_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An error in OpenAI's shape."""
    status, detail = _error_detail(status, code, message)
    return JSONResponse({"error": detail}, status_code=status, headers=headers)


class OpenAIRoute(APIRoute):
    """A route whose errors, its dependencies' included, take OpenAI's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The usual handler, with Voxflow's errors reshaped."""
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return openai_error(exc.status, exc.code, exc.message, exc.headers)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()))
                return openai_error(400, "invalid_request", f"{where}: {first.get('msg')}")
            except DBAPIError as exc:
                refused = database_error(exc)
                return openai_error(refused.status, refused.code, refused.message, refused.headers)

        return answer


router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIRoute)


class Model(BaseModel):
    """A model in OpenAI's shape."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    """OpenAI's list of models."""

    object: Literal["list"] = "list"
    data: list[Model]


def _models(settings: IngestSettings) -> list[Model]:
    names = [ALIAS, *settings.models_allowed()]
    return [Model(id=name, created=_STARTED, owned_by="voxflow") for name in names]


@router.get(
    "/models", summary="List the transcription models (OpenAI's shape)",
    responses=openai_responses(401, 503),
)  # fmt: skip
async def list_models(request: Request, _: Tenant) -> ModelList:
    """The allowed Whisper models, and `whisper-1`, the alias of the default one."""
    return ModelList(data=_models(request.app.state.settings))


@router.get(
    "/models/{model_id:path}", summary="Get a model (OpenAI's shape)",
    responses=openai_responses(401, 404, 503),
)  # fmt: skip
async def get_model(model_id: str, request: Request, _: Tenant) -> Model:
    """One model; 404 for a name that is not offered here."""
    for model in _models(request.app.state.settings):
        if model.id == model_id:
            return model
    raise ApiError(404, "model_not_found", f"The model {model_id!r} does not exist here.")


class Asked(BaseModel):
    """What the caller asked for, besides the job itself."""

    response_format: str
    granularities: list[str]
    options: JobOptions
    stream: bool = False


def _text(upload: ParsedUpload, name: str) -> str | None:
    raw = upload.value(name)
    return raw.decode("utf-8", "replace").strip() if raw else None


def read_request(upload: ParsedUpload, settings: IngestSettings) -> Asked:
    """Check OpenAI's fields and turn them into the job's options."""
    model = _text(upload, "model") or ALIAS
    if model != ALIAS and model not in settings.models_allowed():
        offered = ", ".join([ALIAS, *settings.models_allowed()])
        raise ApiError(
            400, "model_not_found", f"The model {model!r} is not offered here (offered: {offered})."
        )
    response_format = _text(upload, "response_format") or "json"
    if response_format not in FORMATS:
        raise ApiError(
            400, "invalid_response_format",
            f"response_format {response_format!r} is not one of {', '.join(FORMATS)}.",
        )  # fmt: skip
    sent = upload.fields.get("timestamp_granularities[]", [])
    granularities = [g.decode("utf-8", "replace").strip() for g in sent if g.strip()]
    if any(g not in GRANULARITIES for g in granularities):
        raise ApiError(
            400, "invalid_timestamp_granularities",
            "timestamp_granularities[] takes `segment` and `word`.",
        )  # fmt: skip
    if granularities and response_format != "verbose_json":
        raise ApiError(
            400, "invalid_timestamp_granularities",
            "timestamp_granularities[] needs response_format `verbose_json`.",
        )  # fmt: skip
    temperature = _text(upload, "temperature")
    if temperature is not None:
        try:
            value = float(temperature)
        except ValueError:
            value = math.nan
        if not 0 <= value <= 1:
            raise ApiError(400, "invalid_temperature", "temperature must be between 0 and 1.")
    stream = (_text(upload, "stream") or "false").lower()
    if stream not in ("true", "false"):
        raise ApiError(400, "invalid_stream", "stream must be `true` or `false`.")
    if stream == "true" and response_format not in STREAM_FORMATS:
        raise ApiError(
            400, "invalid_response_format",
            f"With stream=true the answer is a stream of events; response_format "
            f"{response_format!r} cannot be streamed (use json or text, or no stream).",
        )  # fmt: skip
    diarized = response_format == "diarized_json"
    if known_speakers.sent(upload) and not diarized:
        raise ApiError(
            400, "known_speakers_need_diarize",
            "known_speaker_names[] and known_speaker_references[] need response_format "
            "`diarized_json`.",
        )  # fmt: skip
    language = _text(upload, "language")
    try:
        options = JobOptions(
            model=None if model == ALIAS else model,
            language=language.lower() if language else None,
            initial_prompt=_text(upload, "prompt"),
            word_timestamps=True if "word" in granularities else None,
            live=True if stream == "true" else None,
            diarize=True if diarized else None,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "request"
        code = "invalid_language" if field == "language" else "invalid_request"
        raise ApiError(400, code, f"{field}: {first['msg']}.") from None
    return Asked(
        response_format=response_format, granularities=granularities, options=options,
        stream=stream == "true",
    )  # fmt: skip


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
            _deltas(
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
        return await _failure(session, job.id, status, headers)
    transcript = await session.run_sync(repository.get_transcript, job.id)
    if transcript is None:  # completed jobs have one; a retention sweep may have removed it
        return openai_error(500, "transcript_missing", "The transcript is gone.", headers)
    return _answer(asked, transcript, headers)


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


_ENDED = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED})
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
    return _event("error", error=_error_detail(status, code, message)[1])


async def _deltas(
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
                yield _stream_error(400 if code in _AUDIO_FAILURES else 500, code, message)
                return
        if time.monotonic() >= deadline:
            yield _stream_error(
                504, "transcription_pending",
                f"The transcription is still running after {seconds:g} s. Job {job_id} "
                f"continues: its state is at GET /v1/jobs/{job_id} on the status API.",
            )  # fmt: skip
            return
        await asyncio.sleep(POLL_SECONDS)


async def _failure(
    session: AsyncSession, job_id: uuid.UUID, status: JobStatus, headers: dict[str, str]
) -> Response:
    job = await session.run_sync(repository.get_job, job_id)
    code = (job.error_code if job is not None else None) or status.value
    message = (job.error_message if job is not None else None) or f"The job was {status.value}."
    stop = {**headers, "x-should-retry": "false"}
    if status is JobStatus.CANCELED:
        return openai_error(409, "job_canceled", f"Job {job_id} was canceled.", stop)
    return openai_error(400 if code in _AUDIO_FAILURES else 500, code, message, stop)


def diarized_segments(transcript: Transcript) -> list[dict[str, Any]]:
    """The segments of OpenAI's diarized_json: id, start, end, text and speaker (its name
    when it has one, else its label)."""
    shown = transcript_formats.speaker_names(transcript.speakers)
    return [
        {
            "type": "transcript.text.segment",
            "id": f"seg_{segment.get('id', index)}",
            "start": float(segment["start"]),
            "end": float(segment["end"]),
            "text": str(segment.get("text", "")).strip(),
            "speaker": shown.get(str(segment.get("speaker")), str(segment.get("speaker") or "A")),
        }
        for index, segment in enumerate(transcript.segments)
        if str(segment.get("text", "")).strip()
    ]


def _answer(asked: Asked, transcript: Any, headers: dict[str, str]) -> Response:
    """The transcript in the asked format, in OpenAI's shapes."""
    fmt = asked.response_format
    segments: list[dict[str, Any]] = transcript.segments
    render = {"text": "txt", "srt": "srt", "vtt": "vtt"}.get(fmt)
    if render is not None:
        body, media_type = transcript_formats.render(
            render, text=transcript.text, segments=segments,
            language=transcript.language, duration_seconds=transcript.duration_seconds,
            speakers=transcript.speakers,
        )  # fmt: skip
        return Response(body, media_type=media_type, headers=headers)
    usage = {"type": "duration", "seconds": math.ceil(transcript.duration_seconds)}
    document: dict[str, Any]
    if fmt == "diarized_json":
        document = {
            "task": "transcribe", "duration": transcript.duration_seconds,
            "text": transcript.text.strip(), "segments": diarized_segments(transcript),
            "usage": usage,
        }  # fmt: skip
        return JSONResponse(document, headers=headers)
    if fmt == "json":
        document = {"text": transcript.text.strip(), "usage": usage}
    else:
        body, _ = transcript_formats.render(
            "verbose_json", text=transcript.text, segments=segments,
            language=transcript.language, duration_seconds=transcript.duration_seconds,
            speakers=transcript.speakers,
        )  # fmt: skip
        document = json.loads(body)
        granularities = asked.granularities or ["segment"]
        if "segment" not in granularities:
            document.pop("segments", None)
        if "word" not in granularities:
            document.pop("words", None)
        document["usage"] = usage
    return JSONResponse(document, headers=headers)
