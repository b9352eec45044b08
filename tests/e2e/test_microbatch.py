"""Micro-batching through real workers: queued short jobs share one pass, failures stay apart."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import jiwer
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import SAMPLES
from tests.e2e.conftest import Worker
from tests.e2e.test_pipeline import normalise, submit, wait_done
from voxflow.jobs.models import Job, JobEvent, Transcript
from voxflow.queue.celery_app import publisher_app
from voxflow.queue.names import TRANSCRIPTION_QUEUE

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def transcription_concurrency() -> int:
    """One process: the first job's task claims all the others as its batch mates."""
    return 1


def test_queued_voice_notes_are_batched_and_a_corrupt_one_fails_alone(
    ingest: TestClient,
    status: TestClient,
    auth: dict[str, str],
    workers: dict[str, Worker],
    sessions: sessionmaker[Session],
    storage_root: Path,
) -> None:
    control = publisher_app().control
    node = workers["transcription"].node
    # Hold the queue so that the jobs are all waiting when the worker takes the first one.
    control.cancel_consumer(TRANSCRIPTION_QUEUE, destination=[node], reply=True)
    try:
        ids = [submit(ingest, auth, "voice_note.ogg", {}) for _ in range(5)]
        with sessions() as session:
            corrupt = session.get(Job, uuid.UUID(ids[2]))
            assert corrupt is not None
            key = corrupt.source_key
        # Valid when uploaded, damaged in storage afterwards: only the worker can notice.
        (storage_root / key).write_bytes(b"\x00garbage" * 4000)
    finally:
        control.add_consumer(TRANSCRIPTION_QUEUE, destination=[node], reply=True)

    final = {job_id: wait_done(status, auth, job_id, workers) for job_id in ids}
    assert final[ids[2]]["status"] == "failed"
    assert final[ids[2]]["error"]["code"] == "corrupt_audio"
    good = [job_id for job_id in ids if job_id != ids[2]]
    assert all(final[job_id]["status"] == "completed" for job_id in good), final
    reference = normalise((SAMPLES / "voice_note.txt").read_text())
    time.sleep(1)  # the jobs' own (now redundant) messages are consumed and skipped
    with sessions() as session:
        for job_id in ids:
            claims = session.scalar(
                select(func.count())
                .select_from(JobEvent)
                .where(JobEvent.job_id == job_id, JobEvent.to_status == "transcribing")
            )
            assert claims == 1, job_id
        transcripts = {
            str(t.job_id): t
            for t in session.scalars(select(Transcript).where(Transcript.job_id.in_(ids)))
        }
    assert sorted(transcripts) == sorted(good)
    assert {t.decode_options["mode"] for t in transcripts.values()} == {"microbatch"}
    for transcript in transcripts.values():
        assert jiwer.wer(reference, normalise(transcript.text)) < 0.15, transcript.text
        assert 13 < transcript.duration_seconds < 14
