"""A job's live stream (SSE): watched from mid-job to the end, resumed, ended by failure."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.services.status_api.conftest import SEGMENTS, JobMaker
from voxflow.apikeys import issue_key
from voxflow.db import session_scope
from voxflow.jobs.states import JobStatus


@dataclass
class Event:
    """One server-sent event."""

    name: str
    id: str | None
    data: dict[str, Any]


def parse(body: str) -> list[Event]:
    """The events of an SSE body (comments and pings aside)."""
    events = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line and not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
        if "event" in fields:
            events.append(Event(fields["event"], fields.get("id"), json.loads(fields["data"])))
    return events


def watch(client: TestClient, auth: dict[str, str], job_id: uuid.UUID, **headers: str) -> Any:
    """GET the job's stream (it returns once the stream ends)."""
    return client.get(f"/v1/jobs/{job_id}/stream", headers={**auth, **headers})


def test_a_client_watching_mid_job_sees_everything_in_order_and_the_end(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    [job_id] = jobs.queued(tasks=["summary"])
    with ThreadPoolExecutor(1) as pool:
        streaming = pool.submit(watch, client, auth, job_id)
        steps: list[Callable[[], None]] = [
            lambda: jobs.transcribe(job_id),
            lambda: jobs.claim(job_id, JobStatus.TRANSCRIBED),
            lambda: jobs.add_result(job_id, "summary", 100, 20, "0.001"),
            lambda: jobs.finish_generation(job_id),
        ]
        for step in steps:
            time.sleep(0.6)  # the stream sees each step on a poll of its own
            assert not streaming.done(), "the stream ended before the job"
            step()
        answer = streaming.result(timeout=30)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = parse(answer.text)
    names = [e.name for e in events if e.name != "progress"]
    assert names == [
        "state", "state", "state", "segment", "segment", "segment", "state", "note", "state",
        "end",
    ]  # fmt: skip
    states = [e.data["to"] for e in events if e.name == "state"]
    assert states == ["queued", "transcribing", "transcribed", "generating", "completed"]
    assert [e.data["text"] for e in events if e.name == "segment"] == [s["text"] for s in SEGMENTS]
    [note] = [e.data for e in events if e.name == "note"]
    assert (note["task"], note["output"]) == ("summary", "summary output")
    assert events[-1].data == {"status": "completed", "error": None}
    assert any(e.name == "progress" for e in events)
    ids = [e.id for e in events[:-1] if e.id is not None]
    assert len(ids) == len(set(ids))  # every id names one position
    assert events[-1].id == ids[-1]  # the end repeats it: a reconnect after it gets the end


def test_segments_come_as_the_worker_publishes_them_and_resume_across_the_transcript(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    [job_id] = jobs.queued()
    jobs.claim(job_id)
    jobs.publish(job_id, 0)
    with ThreadPoolExecutor(1) as pool:
        streaming = pool.submit(watch, client, auth, job_id)
        time.sleep(0.6)
        jobs.publish(job_id, 1)
        time.sleep(0.6)
        assert not streaming.done(), "the stream ended before the job"
        jobs.finish_transcription(job_id)  # the transcript, with a third segment
        events = parse(streaming.result(timeout=30).text)
    names = [e.name for e in events if e.name != "progress"]
    assert names == ["state", "state", "segment", "segment", "state", "state", "segment", "end"]
    assert [e.data["text"] for e in events if e.name == "segment"] == [s["text"] for s in SEGMENTS]
    # A client that lost the line after the first (draft) segment gets the rest, once.
    first = next(e for e in events if e.name == "segment")
    rest = parse(watch(client, auth, job_id, **{"Last-Event-ID": str(first.id)}).text)
    resumed = [e.data["text"] for e in rest if e.name == "segment"]
    assert resumed == [s["text"] for s in SEGMENTS[1:]]


def test_reconnecting_with_last_event_id_resumes_without_gap_or_repeat(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    [job_id] = jobs.queued(tasks=["summary"])
    jobs.transcribe(job_id)
    jobs.claim(job_id, JobStatus.TRANSCRIBED)
    jobs.add_result(job_id, "summary", 100, 20, "0.001")
    jobs.finish_generation(job_id)
    whole = [e for e in parse(watch(client, auth, job_id).text) if e.id is not None]
    assert [e.name for e in whole][-1] == "end"
    for cut in range(len(whole) - 1):  # the client got events up to `cut`, then lost the line
        rest = [
            e
            for e in parse(
                watch(client, auth, job_id, **{"Last-Event-ID": str(whole[cut].id)}).text
            )
            if e.id is not None
        ]
        assert [(e.name, e.id, e.data) for e in rest] == [
            (e.name, e.id, e.data) for e in whole[cut + 1 :]
        ], f"resumed after event {cut}"


def test_a_failed_and_a_canceled_job_end_the_stream_with_their_state(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    failing, canceled = jobs.queued(2)
    jobs.claim(failing)
    jobs.fail(failing, JobStatus.TRANSCRIBING, "corrupt_audio", "The audio is damaged.")
    assert client.post(f"/v1/jobs/{canceled}/cancel", headers=auth).status_code == 200
    failed_end = parse(watch(client, auth, failing).text)[-1]
    assert (failed_end.name, failed_end.data["status"]) == ("end", "failed")
    assert failed_end.data["error"] == {"code": "corrupt_audio", "message": "The audio is damaged."}
    canceled_end = parse(watch(client, auth, canceled).text)[-1]
    assert (canceled_end.name, canceled_end.data) == ("end", {"status": "canceled", "error": None})


def test_another_tenant_and_a_bad_last_event_id_are_refused(
    client: TestClient, jobs: JobMaker, auth: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    [job_id] = jobs.queued()
    jobs.transcribe(job_id)
    with session_scope(sessions) as session:
        stranger = {"Authorization": f"Bearer {issue_key(session, 'stream-other', 's').secret}"}
    refused = watch(client, stranger, job_id)
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "job_not_found"
    bad = watch(client, auth, job_id, **{"Last-Event-ID": "yesterday"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_last_event_id"
