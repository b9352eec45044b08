"""A job's recording: served from local storage (with ranges), or a redirect to S3.

Local storage serves the stored file in place through Starlette's `FileResponse`, which
answers `Range` and `If-Range` (206, 416) itself; S3 storage answers with a 307 to a
presigned URL, so the bytes never pass through the API.
"""

from __future__ import annotations

import logging
import mimetypes
import os
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, RedirectResponse, Response

from status_api import service
from voxflow.jobs.models import Job
from voxflow.storage import Storage, StorageError
from voxflow.web.errors import ApiError

log = logging.getLogger(__name__)

# The media types the endpoint may declare: a stored upload is audio (the ingestion API
# decoded it), so a name like `talk.html` must not make a browser render it as a page.
_PLAYABLE = ("audio/", "video/")


@dataclass
class _Stored:
    """Where a recording's bytes are: a URL, or a local file held open until it is sent."""

    url: str | None = None
    path: Path | None = None
    stat: os.stat_result | None = None
    held: ExitStack | None = None


def media_type(filename: str | None) -> str:
    """The media type of a recording named `filename` (by its extension), if audio or video."""
    guessed = mimetypes.guess_type(filename)[0] if filename else None
    if guessed is None or not guessed.lower().startswith(_PLAYABLE):
        return "application/octet-stream"
    return guessed.lower()


def content_disposition(filename: str) -> str:
    """`inline` with the file name: quoted ASCII for every client, and RFC 5987's UTF-8 form
    when the name has characters the quoted form cannot carry."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in filename)
    header = f'inline; filename="{fallback}"'
    if fallback != filename:
        header += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return header


def _gone(job: Job, why: str) -> ApiError:
    return ApiError(410, "audio_deleted", f"The audio of job {job.id} {why}; its transcript "
                    "and notes are kept.")  # fmt: skip


def _find(storage: Storage, key: str, url_seconds: int) -> _Stored | None:
    """The recording's URL or local file (None if the storage no longer has it)."""
    url = storage.presigned_url(key, url_seconds)
    if url is not None:
        # A URL is signed without asking the storage: one HEAD tells a 410 from a dead link.
        return _Stored(url=url) if storage.exists(key) else None
    # Local storage yields the stored file itself; it stays held until the answer is sent.
    held = ExitStack()
    try:
        path = held.enter_context(storage.local_copy(key))
        return _Stored(path=path, stat=path.stat(), held=held)
    except FileNotFoundError:
        held.close()
        return None
    except BaseException:
        held.close()
        raise


async def serve(
    session: AsyncSession, storage: Storage, tenant: str, raw_id: str, url_seconds: int
) -> Response:
    """The tenant's job's recording: a file response or a redirect; 404 for a job that is not
    the tenant's, 410 when retention removed the audio or the storage lost it."""
    job = await session.run_sync(service.get_job, tenant, raw_id)
    if job.audio_deleted_at is not None:
        day = job.audio_deleted_at.date().isoformat()
        raise _gone(job, f"was deleted on {day} by the retention policy")
    try:
        stored = await run_in_threadpool(_find, storage, job.source_key, url_seconds)
    except StorageError as exc:
        log.warning("storage failed while finding a recording: %s", exc)
        raise ApiError(503, "storage_unavailable", "The audio storage is unavailable; retry "
                       "shortly.", {"Retry-After": "5"}) from exc  # fmt: skip
    if stored is None:
        raise _gone(job, "is no longer in storage")
    if stored.url is not None:
        # The URL is a credential for its lifetime: no cache keeps it.
        return RedirectResponse(stored.url, 307, headers={"Cache-Control": "private, no-store"})
    assert stored.path is not None
    assert stored.held is not None
    filename = job.source_filename or str(job.id)
    headers = {
        "Cache-Control": "private",
        "Content-Disposition": content_disposition(filename),
        "X-Content-Type-Options": "nosniff",
    }
    return FileResponse(
        stored.path,
        headers=headers,
        media_type=media_type(job.source_filename),
        stat_result=stored.stat,
        background=BackgroundTask(stored.held.close),
    )
