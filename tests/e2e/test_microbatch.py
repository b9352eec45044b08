"""Micro-batching through a real worker: queued short jobs share one pass, failures stay apart."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import jiwer
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import SAMPLES
from tests.e2e.conftest import Worker
from tests.e2e.helpers import normalise, submit, wait_done
from voxflow.jobs.models import Job, JobEvent, Transcript
from voxflow.queue.names import TRANSCRIPTION_QUEUE

pytestmark = pytest.mark.e2e


@pytest.fixture
def idle_worker(purged_queues: None, tmp_path: Path) -> Iterator[Worker]:
    """A one-process transcription worker, started by the test when the jobs are queued."""
    worker = Worker("transcription_worker.tasks", TRANSCRIPTION_QUEUE, 1, tmp_path / "w.log")
    yield worker
    worker.stop()


def test_queued_voice_notes_are_batched_and_a_corrupt_one_fails_alone(
    ingest: TestClient, status: TestClient, auth: dict[str, str], idle_worker: Worker,
    sessions: sessionmaker[Session], storage_root: Path,
) -> None:  # fmt: skip
    ids = [submit(ingest, auth, "voice_note.ogg", {}) for _ in range(5)]
    with sessions() as session:
        corrupt = session.get(Job, uuid.UUID(ids[2]))
        assert corrupt is not None
        key = corrupt.source_key
    # Valid when uploaded, damaged in storage afterwards: only the worker can notice.
    (storage_root / key).write_bytes(b"\x00garbage" * 4000)
    # All five wait in the queue; the worker's first task claims the other four as mates.
    idle_worker.start()

    workers = {"transcription": idle_worker}
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


def test_a_corrupt_file_fails_its_job_and_the_worker_serves_the_next(
    ingest: TestClient, status: TestClient, auth: dict[str, str], idle_worker: Worker,
    sessions: sessionmaker[Session], storage_root: Path,
) -> None:  # fmt: skip
    broken = submit(ingest, auth, "meeting.ogg", {})  # too long to join a micro-batch
    after = submit(ingest, auth, "voice_note.ogg", {})
    with sessions() as session:
        job = session.get(Job, uuid.UUID(broken))
        assert job is not None
        (storage_root / job.source_key).write_bytes(b"OggS" + b"\xff" * 50_000)
    idle_worker.start()
    workers = {"transcription": idle_worker}
    failed = wait_done(status, auth, broken, workers)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "corrupt_audio"
    assert failed["error"]["message"]
    assert failed["attempts"] == 1  # failed at once, not retried until the cap
    assert wait_done(status, auth, after, workers)["status"] == "completed"
    assert idle_worker.process is not None
    assert idle_worker.process.poll() is None


def test_worker_refuses_audio_over_its_own_duration_cap(
    ingest: TestClient, status: TestClient, auth: dict[str, str], idle_worker: Worker,
) -> None:  # fmt: skip
    job_id = submit(ingest, auth, "voice_note.ogg", {})  # 13 s, accepted by the API
    idle_worker.env["VOXFLOW_MAX_AUDIO_SECONDS"] = "5"  # the worker's limit was lowered since
    idle_worker.start()
    job = wait_done(status, auth, job_id, {"transcription": idle_worker})
    assert job["status"] == "failed"
    assert job["error"]["code"] == "audio_too_long"


def test_a_micro_batch_over_its_time_limit_fails_its_jobs_with_the_reason(
    ingest: TestClient, status: TestClient, auth: dict[str, str], idle_worker: Worker,
    sessions: sessionmaker[Session],
) -> None:  # fmt: skip
    ids = [submit(ingest, auth, "voice_note.ogg", {}) for _ in range(3)]
    # A limit of a few milliseconds: every pass overruns at its first segment.
    idle_worker.env["VOXFLOW_TRANSCRIPTION_TIMEOUT_BASE_SECONDS"] = "0"
    idle_worker.env["VOXFLOW_TRANSCRIPTION_TIMEOUT_FACTOR"] = "0.0001"
    idle_worker.start()
    workers = {"transcription": idle_worker}
    final = {job_id: wait_done(status, auth, job_id, workers) for job_id in ids}
    for job in final.values():
        assert job["status"] == "failed", job
        # Retried under the attempt cap, then failed with the last reason, not lost.
        assert job["error"]["code"] == "transcription_timeout", job
    with sessions() as session:
        transcripts = session.scalar(
            select(func.count()).select_from(Transcript).where(Transcript.job_id.in_(ids))
        )
        batched = session.scalar(
            select(func.count())
            .select_from(JobEvent)
            .where(JobEvent.job_id.in_(ids), JobEvent.to_status == "transcribing")
        )
    assert transcripts == 0
    assert (batched or 0) >= 3  # every job was claimed (and retried)
