"""HTTP endpoints of the status API: parse the request, call the service, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from status_api import audio, service, stream
from status_api.renders import RenderedTranscripts
from status_api.schemas import (
    MAX_LINE_CHARS,
    MIN_LINE_CHARS,
    EventView,
    JobList,
    JobView,
    ResultsView,
    SpeakerNames,
    SpeakerView,
    TranscriptFormat,
    WebhookDeliveryView,
)
from status_api.settings import StatusSettings
from voxflow.jobs.states import JobStatus
from voxflow.transcript_formats import DEFAULT_MAX_LINE_CHARS
from voxflow.web.api_runtime import DbSession, api_runtime
from voxflow.web.auth import Tenant
from voxflow.web.errors import error_responses
from voxflow.web.observability import bind_request_job

# Logs of a request about one job carry its id.
router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(bind_request_job)])


async def _settings(request: Request) -> StatusSettings:
    settings: StatusSettings = request.app.state.settings
    return settings


Settings = Annotated[StatusSettings, Depends(_settings)]

# Media types the transcript endpoint can answer with, for the OpenAPI document.
_TRANSCRIPT_CONTENT: dict[str, dict[str, object]] = {
    "application/json": {},
    "text/plain": {},
    "application/x-subrip": {},
    "text/vtt": {},
}


@router.get(
    "",
    summary="List jobs, newest first",
    responses=error_responses(400, 401, 422),
)
async def list_jobs(
    request: Request,
    tenant: Tenant,
    settings: Settings,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this state.")] = None,
    limit: Annotated[
        int, Query(ge=1, le=service.MAX_LIMIT, description="Jobs per page.")
    ] = service.DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> JobList:
    """A page of this tenant's jobs; follow `next_cursor` for the next one."""
    async with api_runtime(request).driver() as conn:  # the hot read: no ORM, no transaction
        return await service.list_jobs(
            conn, tenant, settings.public_status_url, status=status, limit=limit, cursor=cursor
        )


@router.get("/{job_id}", summary="Get a job", responses=error_responses(401, 404))
async def get_job(job_id: str, request: Request, tenant: Tenant, settings: Settings) -> JobView:
    """State, progress, stage times and links of one job."""
    async with api_runtime(request).driver() as conn:  # the hot read: no ORM, no transaction
        job = await service.read_job(conn, tenant, job_id)
    return service.job_view(job, settings.public_status_url)


@router.get("/{job_id}/events", summary="Get a job's timeline", responses=error_responses(401, 404))
async def list_events(job_id: str, tenant: Tenant, session: DbSession) -> list[EventView]:
    """Every state change of the job, oldest first."""
    return await session.run_sync(service.list_events, tenant, job_id)


@router.get(
    "/{job_id}/webhooks", summary="Get a job's webhook deliveries",
    responses=error_responses(401, 404),
)  # fmt: skip
async def list_webhooks(
    job_id: str, tenant: Tenant, session: DbSession
) -> list[WebhookDeliveryView]:
    """Each webhook event of the job: status, attempts, last answer and next attempt."""
    return await session.run_sync(service.list_webhooks, tenant, job_id)


@router.get(
    "/{job_id}/transcript",
    summary="Download a job's transcript",
    response_class=Response,
    responses={
        200: {"description": "The transcript in the asked format.", "content": _TRANSCRIPT_CONTENT},
        **error_responses(401, 404, 409, 422),
    },
)
async def get_transcript(
    job_id: str,
    tenant: Tenant,
    session: DbSession,
    request: Request,
    fmt: Annotated[
        TranscriptFormat,
        Query(
            alias="format",
            description=(
                "Output format: `json` (Voxflow's shape, with word timestamps when they were"
                " asked for), `verbose_json` (the shape of OpenAI's verbose_json), `txt`,"
                " `srt` or `vtt`."
            ),
        ),
    ] = "json",
    max_line_chars: Annotated[
        int,
        Query(
            ge=MIN_LINE_CHARS,
            le=MAX_LINE_CHARS,
            description=(
                "SRT/VTT only: wrap cue lines at this many characters (two lines per cue;"
                " longer segments become several cues)."
            ),
        ),
    ] = DEFAULT_MAX_LINE_CHARS,
) -> Response:
    """The transcript as JSON, verbose JSON, plain text, SubRip or WebVTT; 409 until it exists."""
    job = await session.run_sync(service.get_job, tenant, job_id)
    renders: RenderedTranscripts = request.app.state.renders
    key = (job.id, str(fmt), max_line_chars, job.updated_at)
    rendered = renders.get(key)
    if rendered is None:
        stored = await session.run_sync(service.load_transcript, job)
        if stored.large:  # milliseconds of CPU: the event loop keeps serving meanwhile
            rendered = await run_in_threadpool(stored.render, fmt, max_line_chars)
        else:
            rendered = stored.render(fmt, max_line_chars)
        renders.put(key, rendered)
    headers = {}
    if fmt not in {"json", "verbose_json"}:
        headers["Content-Disposition"] = f'inline; filename="{rendered.filename}"'
    return Response(rendered.body, media_type=rendered.media_type, headers=headers)


_AUDIO_CONTENT: dict[str, dict[str, object]] = {
    "audio/*": {"schema": {"type": "string", "format": "binary"}},
    "video/*": {"schema": {"type": "string", "format": "binary"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
}


@router.get(
    "/{job_id}/audio",
    summary="Download or play a job's recording",
    response_class=Response,
    responses={
        200: {"description": "The recording, as uploaded.", "content": _AUDIO_CONTENT},
        206: {"description": "The byte range asked for with `Range`.", "content": _AUDIO_CONTENT},
        307: {"description": "S3 storage: the recording is at the presigned URL in `Location`."},
        416: {"description": "The `Range` lies beyond the end; `Content-Range` gives the size."},
        **error_responses(401, 404, 410, 503),
    },
)
async def get_audio(
    job_id: str, tenant: Tenant, session: DbSession, request: Request, settings: Settings
) -> Response:
    """The uploaded recording, for a player: with local storage the file itself (`Range`
    and `If-Range` give parts of it; `HEAD` gives its size), with S3 storage a redirect to a
    URL valid for `VOXFLOW_AUDIO_URL_SECONDS`. 410 once retention deleted the audio."""
    storage = api_runtime(request).storage
    return await audio.serve(session, storage, tenant, job_id, settings.audio_url_seconds)


# HEAD mirrors GET (FastAPI routes answer only the methods they name); GET documents both.
router.add_api_route("/{job_id}/audio", get_audio, methods=["HEAD"], include_in_schema=False)


# One server-sent event; `data` is JSON text (docs/streaming.md).
_STREAM_EVENT: dict[str, object] = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["state", "progress", "segment", "note", "end"]},
        "id": {"type": "string", "pattern": "^[0-9]+\\.[0-9]+\\.[0-9]+$"},
        "data": {"type": "string"},
    },
}


@router.get(
    "/{job_id}/stream",
    summary="Watch a job live (Server-Sent Events)",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "`state`, `progress`, `segment` and `note` events, then `end` "
            "(docs/streaming.md). Reconnect with `Last-Event-ID` to resume.",
            "content": {"text/event-stream": {"schema": _STREAM_EVENT}},
        },
        **error_responses(400, 401, 404),
    },
)
async def stream_job(
    job_id: str,
    request: Request,
    tenant: Tenant,
    last_event_id: Annotated[
        str | None, Header(description="The `id` of the last event received, to resume.")
    ] = None,
) -> EventSourceResponse:
    """The job's state changes, progress, transcript segments and notes as they happen."""
    cursor = stream.Cursor.parse(last_event_id)
    runtime = api_runtime(request)
    async with runtime.driver() as conn:  # a missing job is a 404 before the stream starts
        job = await service.read_job(conn, tenant, job_id)
    return EventSourceResponse(
        stream.job_events(runtime, job.id, tenant, cursor),
        ping=stream.PING_SECONDS,
        headers={"X-Accel-Buffering": "no", "Cache-Control": "no-cache"},
    )


@router.get(
    "/{job_id}/results", summary="Get a job's LLM results", responses=error_responses(401, 404)
)
async def list_results(job_id: str, tenant: Tenant, session: DbSession) -> ResultsView:
    """The notes written from the transcript, with token usage and cost totals."""
    return await session.run_sync(service.list_results, tenant, job_id)


@router.patch(
    "/{job_id}/speakers",
    summary="Name the speakers of a diarized transcript",
    responses=error_responses(401, 404, 409, 422),
)
async def rename_speakers(
    job_id: str, names: SpeakerNames, tenant: Tenant, session: DbSession
) -> list[SpeakerView]:
    """Give speakers names by label (`{"names": {"A": "Ada"}}`; null clears one). Every
    transcript format shows the names from then on, and notes written afterwards use them."""
    return await session.run_sync(service.rename_speakers, tenant, job_id, names.names)


@router.post(
    "/{job_id}/cancel",
    summary="Cancel a job",
    responses=error_responses(401, 404, 409),
)
async def cancel_job(
    job_id: str, tenant: Tenant, session: DbSession, settings: Settings
) -> JobView:
    """Stop a job that has not finished; a running stage stops within about a second."""
    return await session.run_sync(service.cancel_job, tenant, job_id, settings.public_status_url)


@router.delete(
    "/{job_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a job and everything it produced",
    responses=error_responses(401, 404),
)
async def delete_job(job_id: str, tenant: Tenant, session: DbSession, request: Request) -> Response:
    """Remove the audio, transcript, notes, cost records and timeline (cancels it first)."""
    await service.delete_job(session, api_runtime(request).storage, tenant, job_id)
    return Response(status_code=204)
