"""Turning a checked upload into a stored file and a queued job, with nothing half-written."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool

from ingest_api import known_speakers
from ingest_api.audio_probe import AudioInfo, AudioRejectedError, probe_isolated
from ingest_api.schemas import JobOptions
from ingest_api.settings import IngestSettings
from ingest_api.upload import ParsedUpload
from voxflow.db import undo_unless_committed
from voxflow.jobs import service
from voxflow.jobs.models import Job, audio_keys
from voxflow.logs import bind_job_id, unbind_job_id
from voxflow.storage import Storage, StorageError, source_key
from voxflow.web.errors import ApiError
from voxflow.webhooks import urls

log = logging.getLogger(__name__)

# Status per probe failure: 415 when it is not audio we can read, 422 when it is but unusable.
_PROBE_STATUS = {"unsupported_media": 415, "no_audio_stream": 415}


def parse_options(raw: bytes | None, settings: IngestSettings) -> JobOptions:
    """Validate the JSON `options` field."""
    try:
        options = JobOptions.model_validate_json(raw) if raw else JobOptions()
    except (ValidationError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise ApiError(
            422, "invalid_options", f"The `options` field is invalid: {detail}."
        ) from exc
    if options.model is not None and options.model not in settings.models_allowed():
        allowed = ", ".join(settings.models_allowed())
        raise ApiError(
            422,
            "model_not_allowed",
            f"Model {options.model!r} is not offered here (allowed: {allowed}).",
        )
    return options


def check_webhook_url(raw: bytes | None, settings: IngestSettings) -> str | None:
    """Validate the `webhook_url` field: its form, then where it points (may query DNS)."""
    url = raw.decode("utf-8", "replace").strip() if raw else ""
    if not url:
        return None
    if settings.webhook_secret is None:
        raise ApiError(
            422, "webhooks_disabled",
            "This server sends no webhooks: it has no signing secret (VOXFLOW_WEBHOOK_SECRET).",
        )  # fmt: skip
    try:
        return urls.check_at_submission(url, allow_private=settings.webhook_allow_private_networks)
    except urls.WebhookUrlError as exc:
        raise ApiError(422, exc.code, exc.message) from None


def check_audio(upload: ParsedUpload, settings: IngestSettings) -> AudioInfo:
    """Probe the spooled file in an isolated process; map rejections to 4xx errors."""
    if upload.size == 0:
        raise ApiError(422, "empty_file", "The uploaded file is empty.")
    try:
        return probe_isolated(
            upload.path,
            max_seconds=settings.max_audio_seconds,
            timeout=settings.probe_timeout_seconds,
        )
    except AudioRejectedError as exc:
        raise ApiError(_PROBE_STATUS.get(exc.code, 422), exc.code, exc.message) from exc


async def store_and_record(
    session: AsyncSession,
    *,
    tenant: str,
    upload: ParsedUpload,
    options: JobOptions,
    audio: AudioInfo,
    storage: Storage,
    settings: IngestSettings,
    webhook_url: str | None = None,
    known: Sequence[known_speakers.KnownSpeaker] = (),
) -> Job:
    """Store the audio (and the known speakers' clips), then record the job in the request's
    unit of work (flushed).

    No stored audio without a job: a failure here removes the files at once, and a commit
    that does not happen afterwards removes them at the unit of work's end.
    """
    job_id = uuid.uuid4()
    key = source_key(tenant, job_id)
    try:
        await run_in_threadpool(storage.put_file, key, Path(upload.path))
    except StorageError as exc:
        log.warning("storage failed while storing an upload: %s", exc)
        raise ApiError(
            503,
            "storage_unavailable",
            "The audio storage is unavailable; retry shortly.",
            {"Retry-After": "5"},
        ) from exc
    job_options = options.model_dump(exclude_none=True)
    job_options.setdefault("model", settings.whisper_model)
    try:
        if known:
            job_options["known_speakers"] = await known_speakers.store(storage, key, list(known))
    except ApiError:
        await run_in_threadpool(storage.delete, key)
        raise
    bound = bind_job_id(job_id)  # the logs of recording it carry the job id
    try:
        job = await session.run_sync(
            lambda sync: service.create_job(
                sync,
                job_id=job_id,
                tenant=tenant,
                options=job_options,
                source_key=key,
                source_filename=upload.filename,
                size_bytes=upload.size,
                duration_seconds=audio.duration_seconds,
                content_sha256=upload.sha256,
                max_attempts=settings.max_attempts,
                webhook_url=webhook_url,
            )
        )
    except BaseException as exc:
        for stored in audio_keys(key, job_options):
            await run_in_threadpool(storage.delete, stored)
        if isinstance(exc, OperationalError):
            log.warning("database unavailable while recording a job: %s", exc)
            raise ApiError(
                503,
                "database_unavailable",
                "The job database is unavailable; retry shortly.",
                {"Retry-After": "5"},
            ) from exc
        raise
    finally:
        unbind_job_id(bound)
    keys = audio_keys(key, job_options)

    def undo() -> None:
        for stored in keys:
            storage.delete(stored)

    undo_unless_committed(session.sync_session, undo)
    return job
