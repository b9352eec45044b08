"""Cancel and delete through the status API, and audio retention, on the real database."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from sweeper import retention
from tests.services.status_api.conftest import LEASE, WORKER, JobMaker
from voxflow.db import session_scope
from voxflow.jobs import repository, service
from voxflow.jobs.errors import LeaseLostError
from voxflow.jobs.models import Job, JobEvent, LlmCall, LlmResult, Transcript
from voxflow.jobs.states import JobStatus
from voxflow.storage.local import LocalStorage


def _store_audio(storage_root: Path, sessions: sessionmaker[Session], job_id: uuid.UUID) -> Path:
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        path = storage_root / job.source_key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"audio")
    return path


def test_cancel_stops_an_unfinished_job_and_its_worker(
    client: TestClient, jobs: JobMaker, auth: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    queued, running = jobs.queued(2)
    jobs.claim(running)
    for job_id in (queued, running):
        response = client.post(f"/v1/jobs/{job_id}/cancel", headers=auth)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "canceled"
    # The worker that held the running job finds it gone at its next write.
    with session_scope(sessions) as session:
        assert service.claim(session, queued, JobStatus.QUEUED, WORKER, LEASE) is None
    with pytest.raises(LeaseLostError), session_scope(sessions) as session:
        service.heartbeat(session, running, JobStatus.TRANSCRIBING, WORKER, LEASE, 50)
    events = client.get(f"/v1/jobs/{running}/events", headers=auth).json()
    assert events[-1]["to_status"] == "canceled"
    assert events[-1]["actor"].startswith("tenant:")


def test_a_finished_job_cannot_be_canceled(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    (job_id,) = jobs.queued()
    jobs.transcribe(job_id)  # no tasks: completed
    response = client.post(f"/v1/jobs/{job_id}/cancel", headers=auth)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "job_finished"


def test_delete_removes_audio_transcript_notes_and_history(
    client: TestClient, jobs: JobMaker, auth: dict[str, str],
    sessions: sessionmaker[Session], storage_root: Path,
) -> None:  # fmt: skip
    job_id = jobs.queued(1, tasks=["summary"])[0]
    audio = _store_audio(storage_root, sessions, job_id)
    jobs.transcribe(job_id)
    jobs.claim(job_id, JobStatus.TRANSCRIBED)
    jobs.add_result(job_id, "summary", 10, 5, "0.001")
    jobs.add_call(job_id, "summary", "ok", "0.001")
    response = client.delete(f"/v1/jobs/{job_id}", headers=auth)
    assert response.status_code == 204
    assert not audio.exists()
    with sessions() as session:
        for column in (Job.id, Transcript.job_id, LlmResult.job_id, LlmCall.job_id,
                       JobEvent.job_id):  # fmt: skip
            count = session.scalar(select(func.count()).where(column == job_id))
            assert count == 0, column
    assert client.get(f"/v1/jobs/{job_id}", headers=auth).status_code == 404
    assert client.delete(f"/v1/jobs/{job_id}", headers=auth).status_code == 404


def test_other_tenants_cannot_cancel_or_delete(
    client: TestClient, jobs: JobMaker, sessions: sessionmaker[Session]
) -> None:
    from voxflow.apikeys import issue_key

    (job_id,) = jobs.queued()
    with session_scope(sessions) as session:
        stranger = issue_key(session, f"stranger-{uuid.uuid4().hex[:6]}", "x")
    headers = {"Authorization": f"Bearer {stranger.secret}"}
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=headers).status_code == 404
    assert client.delete(f"/v1/jobs/{job_id}", headers=headers).status_code == 404
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert job.status == "queued"


def test_retention_deletes_old_audio_and_keeps_the_transcript(
    jobs: JobMaker, sessions: sessionmaker[Session], storage_root: Path
) -> None:
    old, recent, running = jobs.queued(3)
    paths = {
        job_id: _store_audio(storage_root, sessions, job_id) for job_id in (old, recent, running)
    }
    jobs.transcribe(old)
    jobs.transcribe(recent)
    jobs.claim(running)
    with session_scope(sessions) as session:
        session.execute(update(Job).where(Job.id == old)
                        .values(finished_at=func.now() - timedelta(days=40)))  # fmt: skip
    storage = LocalStorage(storage_root)
    with session_scope(sessions) as session:
        deleted = retention.expire_audio(session, storage, timedelta(days=30), limit=100)
    assert deleted >= 1
    assert not paths[old].exists()
    assert paths[recent].exists()
    assert paths[running].exists()
    with sessions() as session:
        job = session.get(Job, old)
        assert job is not None
        assert job.audio_deleted_at is not None
        kept = select(func.count()).select_from(Transcript).where(Transcript.job_id == old)
        assert session.scalar(kept) == 1
    with session_scope(sessions) as session:  # done once: a second pass skips it
        assert old not in [
            j.id for j in repository.lock_expired_audio(session, timedelta(days=30), 100)
        ]
