"""HTTP routes of the ingestion API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from ingest_api import service
from ingest_api.schemas import JobAccepted, JobLinks, JobOptions
from ingest_api.settings import IngestSettings
from ingest_api.upload import parse_upload
from voxflow.web.auth import Tenant
from voxflow.web.errors import ApiError, error_responses
from voxflow.web.runtime import get_runtime

router = APIRouter(prefix="/v1", tags=["jobs"])

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
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
                    },
                }
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
    responses=error_responses(400, 401, 413, 415, 422, 503),
)
async def create_job(request: Request, response: Response, tenant: Tenant) -> JobAccepted:
    """Stream the upload to a spool file, check it, store it and queue the job."""
    settings: IngestSettings = request.app.state.settings
    runtime = get_runtime(request)
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
    )
    try:
        options = service.parse_options(upload.options, settings)
        audio = await run_in_threadpool(service.check_audio, upload, settings)
        job = await run_in_threadpool(
            lambda: service.store_and_record(
                tenant=tenant,
                upload=upload,
                options=options,
                audio=audio,
                storage=runtime.storage,
                sessions=runtime.sessions,
                settings=settings,
            )
        )
    finally:
        Path(upload.path).unlink(missing_ok=True)  # noqa: ASYNC240 (instant local unlink)
    base = settings.public_status_url.rstrip("/")
    location = f"{base}/v1/jobs/{job.id}"
    response.headers["Location"] = location
    return JobAccepted(
        id=job.id,
        status="queued",
        duration_seconds=job.duration_seconds,
        size_bytes=job.size_bytes,
        sha256=job.content_sha256,
        links=JobLinks(self=location, events=f"{location}/events"),
    )
