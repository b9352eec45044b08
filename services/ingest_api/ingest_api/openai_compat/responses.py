"""The answer to a transcription request: the transcript in each `response_format`, or why not."""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

from fastapi import Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from ingest_api.openai_compat.errors import AUDIO_FAILURES, openai_error
from ingest_api.openai_compat.request import Asked
from voxflow import transcript_formats
from voxflow.jobs import repository
from voxflow.jobs.models import Transcript
from voxflow.jobs.states import JobStatus


async def failure(
    session: AsyncSession, job_id: uuid.UUID, status: JobStatus, headers: dict[str, str]
) -> Response:
    """The error for a job that ended without a transcript: failed or canceled."""
    job = await session.run_sync(repository.get_job, job_id)
    code = (job.error_code if job is not None else None) or status.value
    message = (job.error_message if job is not None else None) or f"The job was {status.value}."
    stop = {**headers, "x-should-retry": "false"}
    if status is JobStatus.CANCELED:
        return openai_error(409, "job_canceled", f"Job {job_id} was canceled.", stop)
    return openai_error(400 if code in AUDIO_FAILURES else 500, code, message, stop)


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


def answer(asked: Asked, transcript: Any, headers: dict[str, str]) -> Response:
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
