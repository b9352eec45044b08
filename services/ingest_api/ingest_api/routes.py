"""HTTP routes of the ingestion API."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool

from ingest_api import idempotency, known_speakers, service
from ingest_api.limits import UploadLimits
from ingest_api.schemas import JobAccepted, JobLinks, JobOptions
from ingest_api.settings import IngestSettings
from ingest_api.upload import parse_upload
from voxflow.jobs.models import Job
from voxflow.jobs.urls import job_url
from voxflow.web.api_runtime import DbSession, api_runtime
from voxflow.web.auth import Tenant
from voxflow.web.errors import ApiError, error_responses
from voxflow.webhooks.urls import MAX_URL_LENGTH

router = APIRouter(prefix="/v1", tags=["jobs"])

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "additionalProperties": False,  # any other field is a 422 unexpected_field
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "The recording (any container PyAV reads).",
                        },
                        "options": {
                            "type": "string",
                            "description": "JSON object: " + ", ".join(JobOptions.model_fields),
                            "example": '{"tasks": ["summary", "diary"]}',
                        },
                        "webhook_url": {
                            "type": "string",
                            "maxLength": MAX_URL_LENGTH,
                            "description": "An http(s) URL that gets a signed POST when the "
                            "job completes, fails or is canceled (docs/webhooks.md).",
                            "example": "https://example.com/hooks/voxflow",
                        },
                        **known_speakers.SCHEMA,
                    },
                },
                # What the file part may hold: audio, or a video with an audio track.
                "encoding": {"file": {"contentType": "audio/*, video/*"}},
            }
        },
    }
}


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobAccepted,
    summary="Upload a recording and queue its transcription",
    openapi_extra=_UPLOAD_BODY,
    responses=error_responses(400, 401, 408, 409, 413, 415, 422, 429, 503),
)
async def create_job(
    request: Request, response: Response, tenant: Tenant, session: DbSession
) -> JobAccepted | JSONResponse:
    """Stream the upload to a spool file, check it, store it and queue the job."""
    settings: IngestSettings = request.app.state.settings
    key = idempotency.parse_key(request.headers.get(idempotency.HEADER))
    held = None
    if key is not None:
        held = await session.run_sync(
            idempotency.begin, tenant, key,
            ttl=timedelta(seconds=settings.idempotency_ttl_seconds),
            stale=timedelta(seconds=settings.idempotency_stale_seconds),
        )  # fmt: skip
        # The one commit before the request's end: a concurrent retry must see the key taken.
        await session.commit()
    try:
        if held is None or held.kind == "new":  # a replay is not a new upload
            limits: UploadLimits = request.app.state.limits
            await limits.check(api_runtime(request), tenant)
        # Reading the body may take minutes: no connection (nor transaction) is held meanwhile.
        return await _create_job(request, response, tenant, held, session)
    except BaseException:
        if held is not None and held.kind == "new":
            await session.rollback()
            await session.run_sync(idempotency.release, held)
            await session.commit()  # the key is free for the client's retry
        raise


async def _create_job(
    request: Request,
    response: Response,
    tenant: str,
    held: idempotency.Held | None,
    session: AsyncSession,
) -> JobAccepted | JSONResponse:
    settings: IngestSettings = request.app.state.settings
    runtime = api_runtime(request)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_upload_bytes + 65536:
        raise ApiError(
            413,
            "file_too_large",
            f"The upload is larger than the limit of {settings.max_upload_bytes} bytes.",
        )
    upload = await parse_upload(
        dict(request.headers),
        request.stream(),
        spool_dir=settings.spool_dir,
        max_bytes=settings.max_upload_bytes,
        max_options_bytes=settings.max_options_bytes,
        deadline_seconds=settings.upload_deadline_seconds,
    )
    try:
        options = service.parse_options(upload.options, settings)
        webhook_url = (  # its DNS lookup blocks: in a thread, when there is a URL to check
            await run_in_threadpool(service.check_webhook_url, upload.webhook_url, settings)
            if upload.webhook_url
            else None
        )
        asked = options.model_dump(mode="json", exclude_none=True)
        if known_speakers.sent(upload):  # the same names and clips make the same upload
            asked["known_speakers"] = known_speakers.fingerprint(upload)
        same = idempotency.fingerprint(upload.sha256, upload.filename, asked, webhook_url)
        if held is not None and held.kind == "done":
            idempotency.check_replay(held, same)
            return JSONResponse(
                held.body, status_code=held.status_code or 202,
                headers={**(held.headers or {}), "Idempotent-Replayed": "true"},
            )  # fmt: skip
        audio = await run_in_threadpool(service.check_audio, upload, settings)
        if known_speakers.sent(upload) and not options.diarize:
            raise ApiError(
                422, "known_speakers_need_diarize",
                "Known speakers name the speakers that diarization finds: set the option "
                "`diarize` to true.",
            )  # fmt: skip
        known = await run_in_threadpool(known_speakers.read, upload, settings)
        try:
            job = await service.store_and_record(
                session, tenant=tenant, upload=upload, options=options, audio=audio,
                storage=runtime.storage, settings=settings, webhook_url=webhook_url,
                known=known,
            )  # fmt: skip
        finally:
            known_speakers.discard(known)
    finally:
        Path(upload.path).unlink(missing_ok=True)  # noqa: ASYNC240 (instant local unlink)
    accepted = _accepted(job, settings)
    location = accepted.links.self
    if held is not None:  # the answer a retry with the same key will get, with the job
        await session.run_sync(
            idempotency.complete, held, same, status_code=202,
            body=accepted.model_dump(mode="json"), headers={"Location": location}, job_id=job.id,
        )  # fmt: skip
    response.headers["Location"] = location
    return accepted


def _accepted(job: Job, settings: IngestSettings) -> JobAccepted:
    location = job_url(settings.public_status_url, job.id)
    return JobAccepted(
        id=job.id,
        status="queued",
        duration_seconds=job.duration_seconds,
        size_bytes=job.size_bytes,
        sha256=job.content_sha256,
        links=JobLinks(self=location, events=f"{location}/events"),
    )
