"""A job's live stream: its state changes, progress, transcript segments and notes, as SSE.

Three append-only sequences make the stream: the job's timeline (`job_events`, by id), its
transcript's segments (by position) and its notes (`llm_results`, by id). Every event that
belongs to one of them carries an SSE `id:` holding the position reached in all three,
`<event id>.<segments sent>.<note id>`. A client reconnecting with `Last-Event-ID` resumes
each sequence right after it: nothing is lost and nothing repeats. Progress is a state,
not a sequence: it is sent when it changes, without an id. The stream ends with an `end`
event once the job is finished and every sequence has been sent.

Segments come as the worker decodes them: it publishes them to `transcript_segments` (a
draft, with its lease renewals) until the transcript, whose segments have the same positions,
replaces them. The store is the source of truth, read again every `POLL_SECONDS`; a listener
that joins late or reconnects catches up from it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.orm import Session

from status_api.service import result_view
from voxflow.db import read_only
from voxflow.jobs import repository
from voxflow.jobs.models import Job
from voxflow.jobs.states import TERMINAL, JobStatus
from voxflow.web.api_runtime import ApiRuntime
from voxflow.web.errors import ApiError

POLL_SECONDS = 0.25
PING_SECONDS = 15  # a comment line this often keeps proxies from closing an idle stream


@dataclass(frozen=True)
class Cursor:
    """How far a client has read each sequence."""

    event: int = 0  # id of the last timeline entry sent
    segments: int = 0  # transcript segments sent
    note: int = 0  # id of the last note sent

    def encode(self) -> str:
        """The SSE id."""
        return f"{self.event}.{self.segments}.{self.note}"

    @classmethod
    def parse(cls, raw: str | None) -> Cursor:
        """A `Last-Event-ID` this API sent, or a 400."""
        if not raw:
            return cls()
        try:
            event, segments, note = (int(part) for part in raw.split("."))
        except ValueError:
            raise ApiError(
                400, "invalid_last_event_id", "Last-Event-ID is not an id this stream sent."
            ) from None
        if min(event, segments, note) < 0:
            raise ApiError(400, "invalid_last_event_id", "Last-Event-ID is out of range.")
        return cls(event, segments, note)


@dataclass
class _Snapshot:
    """What is new in the store since `cursor`."""

    job: Job | None
    events: list[dict[str, Any]]
    segments: list[dict[str, Any]]
    notes: list[tuple[int, dict[str, Any]]]
    event_ids: list[int]
    transcript: bool = False  # the segments are the transcript's: no more will come


def _read(
    session: Session, job_id: uuid.UUID, tenant: str, cursor: Cursor, segments_done: bool
) -> _Snapshot:
    job = repository.get_job(session, job_id, tenant)
    if job is None:
        return _Snapshot(None, [], [], [], [])
    events = repository.list_events(session, job_id, after=cursor.event)
    segments: list[dict[str, Any]] = []
    final = segments_done
    if not segments_done:
        # While the job is transcribed, the segments the worker has published so far.
        segments, final = repository.segments_from(session, job_id, cursor.segments)
    notes = repository.list_llm_results(session, job_id, after=cursor.note)
    return _Snapshot(
        job=job,
        events=[
            {
                "at": e.at.isoformat(),
                "from": e.from_status,
                "to": e.to_status,
                "actor": e.actor,
                "detail": e.detail,
            }
            for e in events
        ],
        event_ids=[e.id for e in events],
        segments=segments,
        notes=[(n.id, result_view(n).model_dump(mode="json")) for n in notes],
        transcript=final,
    )


def _segment(segment: dict[str, Any]) -> dict[str, Any]:
    shown = {k: segment.get(k) for k in ("id", "start", "end", "text")}
    if segment.get("speaker") is not None:
        shown["speaker"] = segment["speaker"]
    return shown


async def read_snapshot(
    runtime: ApiRuntime, job_id: uuid.UUID, tenant: str, cursor: Cursor, segments_done: bool
) -> _Snapshot:
    """One look at the store, in a read-only session of its own (segments unless done)."""
    async with runtime.reads() as session:
        read_only(session.sync_session)
        return await session.run_sync(_read, job_id, tenant, cursor, segments_done)


async def job_events(
    runtime: ApiRuntime, job_id: uuid.UUID, tenant: str, cursor: Cursor
) -> AsyncIterator[dict[str, str]]:
    """The stream's events (sse-starlette's dict form), from `cursor` to the job's end."""
    progress: tuple[str, int] | None = None
    segments_done = False  # the transcript's segments are all sent
    while True:
        seen = await read_snapshot(runtime, job_id, tenant, cursor, segments_done)
        segments_done = seen.transcript
        if seen.job is None:  # deleted meanwhile
            yield {"event": "end", "data": json.dumps({"status": "deleted"})}
            return
        for event_id, event in zip(seen.event_ids, seen.events, strict=True):
            cursor = replace(cursor, event=event_id)
            yield {"event": "state", "id": cursor.encode(), "data": json.dumps(event)}
        for segment in seen.segments:
            cursor = replace(cursor, segments=cursor.segments + 1)
            shown = json.dumps(_segment(segment))
            yield {"event": "segment", "id": cursor.encode(), "data": shown}
        for note_id, note in seen.notes:
            cursor = replace(cursor, note=note_id)
            yield {"event": "note", "id": cursor.encode(), "data": json.dumps(note)}
        status = JobStatus(seen.job.status)
        if (status.value, seen.job.progress) != progress and status not in TERMINAL:
            progress = (status.value, seen.job.progress)
            now = {"status": status.value, "progress": seen.job.progress}
            yield {"event": "progress", "data": json.dumps(now)}
        if status in TERMINAL:
            error = None
            if seen.job.error_code is not None:
                error = {"code": seen.job.error_code, "message": seen.job.error_message or ""}
            yield {"event": "end", "id": cursor.encode(),
                   "data": json.dumps({"status": status.value, "error": error})}  # fmt: skip
            return
        await asyncio.sleep(POLL_SECONDS)
