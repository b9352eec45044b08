"""Upload to notes through real worker processes: accuracy, duplicates, lost messages."""

from __future__ import annotations

import time
import uuid

import jiwer
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from sweeper.main import sweep_once
from tests.conftest import SAMPLES
from tests.e2e.conftest import Worker
from tests.e2e.helpers import normalise, submit, wait_done
from tests.support.servers import Servers
from voxflow.embedded import redis_client_url
from voxflow.jobs.enqueue import publish_now
from voxflow.jobs.models import Job, JobEvent, LlmResult, Transcript
from voxflow.jobs.states import JobStatus
from voxflow.queue.celery_app import publisher_app
from voxflow.queue.names import TRANSCRIPTION_QUEUE
from voxflow.settings import JobSettings

pytestmark = pytest.mark.e2e

LIFECYCLE = [
    (None, "queued"),
    ("queued", "transcribing"),
    ("transcribing", "transcribed"),
    ("transcribed", "generating"),
    ("generating", "completed"),
]


def test_upload_becomes_accurate_transcript_and_notes(
    ingest: TestClient, status: TestClient, auth: dict[str, str], workers: dict[str, Worker]
) -> None:
    job_id = submit(ingest, auth, "voice_note.ogg", {"tasks": ["summary", "diary", "action_items"]})
    job = wait_done(status, auth, job_id, workers)
    assert job["status"] == "completed", job
    assert job["progress"] == 100
    assert job["finished_at"] is not None

    transcript = status.get(f"/v1/jobs/{job_id}/transcript?format=json", headers=auth).json()
    expected = (SAMPLES / "voice_note.txt").read_text()
    wer = jiwer.wer(normalise(expected), normalise(transcript["text"]))
    assert wer < 0.15, (wer, transcript["text"])
    assert transcript["segments"]
    srt = status.get(f"/v1/jobs/{job_id}/transcript?format=srt", headers=auth).text
    assert srt.startswith("1\n00:00:0")

    results = status.get(f"/v1/jobs/{job_id}/results", headers=auth).json()["results"]
    assert {r["task"] for r in results} == {"summary", "diary", "action_items"}
    assert all(r["provider"] == "local" and r["output"].strip() for r in results)
    actions = next(r for r in results if r["task"] == "action_items")
    assert any("dentist" in item["text"].lower() for item in actions["output_json"])

    events = status.get(f"/v1/jobs/{job_id}/events", headers=auth).json()
    assert [(e["from_status"], e["to_status"]) for e in events] == LIFECYCLE


def test_progress_is_visible_while_the_job_runs(
    ingest: TestClient, status: TestClient, auth: dict[str, str], workers: dict[str, Worker]
) -> None:
    job_id = submit(ingest, auth, "meeting.ogg", {"mode": "sequential"})
    seen: list[int] = []
    job = wait_done(status, auth, job_id, workers, seen=seen)
    assert job["status"] == "completed", job
    assert seen == sorted(seen)
    assert seen[-1] == 100
    assert any(0 < p < 100 for p in seen), seen  # written as segments arrived


def test_duplicate_delivery_writes_one_transcript(
    ingest: TestClient,
    status: TestClient,
    auth: dict[str, str],
    workers: dict[str, Worker],
    sessions: sessionmaker[Session],
) -> None:
    job_id = submit(ingest, auth, "voice_note.ogg", {})
    # Two more copies of the message, as Redis redelivery or a double publish would make.
    publish_now(uuid.UUID(job_id), JobStatus.QUEUED)
    publish_now(uuid.UUID(job_id), JobStatus.QUEUED)
    job = wait_done(status, auth, job_id, workers)
    assert job["status"] == "completed", job
    time.sleep(2)  # let the duplicate deliveries finish too
    with sessions() as session:
        transcripts = session.scalar(
            select(func.count()).select_from(Transcript).where(Transcript.job_id == job_id)
        )
        claims = session.scalar(
            select(func.count())
            .select_from(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.to_status == "transcribing")
        )
        db_job = session.get(Job, uuid.UUID(job_id))
    assert transcripts == 1
    assert claims == 1
    assert db_job is not None
    assert db_job.status == "completed"


def test_lost_message_is_republished_by_the_sweeper(
    ingest: TestClient,
    status: TestClient,
    auth: dict[str, str],
    workers: dict[str, Worker],
    sessions: sessionmaker[Session],
    servers: Servers,
) -> None:
    control = publisher_app().control
    node = workers["transcription"].node
    control.cancel_consumer(TRANSCRIPTION_QUEUE, destination=[node], reply=True)
    # A blocking pop issued before the cancel may still be waiting (kombu's BRPOP times out
    # after 1 s) and would take the next message: let it expire first.
    time.sleep(2.5)
    try:
        job_id = submit(ingest, auth, "voice_note.ogg", {"tasks": ["summary"]})
        broker = redis.Redis.from_url(redis_client_url(servers.redis_url))
        assert broker.llen(TRANSCRIPTION_QUEUE) >= 1
        broker.delete(TRANSCRIPTION_QUEUE)  # the message is lost
        broker.close()
    finally:
        control.add_consumer(TRANSCRIPTION_QUEUE, destination=[node], reply=True)
    time.sleep(1)
    with sessions() as session:
        db_job = session.get(Job, uuid.UUID(job_id))
        assert db_job is not None
        assert db_job.status == "queued"  # nobody is going to run it

    report = sweep_once(sessions, JobSettings(requeue_after_seconds=0))
    assert uuid.UUID(job_id) in report.republished
    job = wait_done(status, auth, job_id, workers)
    assert job["status"] == "completed", job
    with sessions() as session:
        results = session.scalars(select(LlmResult).where(LlmResult.job_id == job_id)).all()
    assert [r.task for r in results] == ["summary"]
