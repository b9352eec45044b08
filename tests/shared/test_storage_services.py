"""The services on the S3 backend, chosen by VOXFLOW_* variables as deployed (moto server).

The ingestion API stores an upload, the status API deletes the job, the sweeper expires
audio: each builds its storage through `make_storage` from the environment.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ingest_api.app import create_app as create_ingest_app
from ingest_api.settings import IngestSettings
from status_api.app import create_app as create_status_app
from sweeper.main import housekeep
from sweeper.settings import SweeperSettings
from tests.conftest import SAMPLES
from tests.support.s3server import S3Server
from voxflow.db import session_scope
from voxflow.jobs.models import Job, JobEvent
from voxflow.storage import StorageConfigError

VOICE_NOTE = SAMPLES / "voice_note.ogg"


@pytest.fixture
def bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket, selected for every process through the environment."""
    name = s3_server.new_bucket()
    for variable, value in s3_server.env(name, prefix="deploy").items():
        monkeypatch.setenv(variable, value)
    return name


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    """The ingestion API's spool directory, watched for leftovers."""
    path = tmp_path / "spool"
    path.mkdir()
    return path


@pytest.fixture
def ingest(bucket: str, spool: Path) -> Iterator[TestClient]:
    """The ingestion API, configured from the environment (S3 storage)."""
    with TestClient(create_ingest_app(IngestSettings(spool_dir=spool))) as client:
        yield client


def upload(client: TestClient, auth: dict[str, str]) -> Any:
    """POST the voice note sample."""
    files = {"file": ("note.ogg", VOICE_NOTE.read_bytes(), "audio/ogg")}
    return client.post("/v1/jobs", headers=auth, files=files)


def s3_keys(s3_server: S3Server, bucket: str) -> list[str]:
    """Every object in the bucket, prefix included."""
    listed = s3_server.client().list_objects_v2(Bucket=bucket)
    return [item["Key"] for item in listed.get("Contents", [])]


def test_upload_lands_in_the_bucket_and_delete_removes_it(
    ingest: TestClient,
    s3_server: S3Server,
    bucket: str,
    auth: dict[str, str],
    sessions: sessionmaker[Session],
    spool: Path,
) -> None:
    assert ingest.get("/readyz").json()["checks"]["storage"] == "ok"
    content = VOICE_NOTE.read_bytes()
    response = upload(ingest, auth)
    assert response.status_code == 202, response.text
    job_id = uuid.UUID(response.json()["id"])
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        source_key = job.source_key
    assert s3_keys(s3_server, bucket) == [f"deploy/{source_key}"]
    body = s3_server.client().get_object(Bucket=bucket, Key=f"deploy/{source_key}")["Body"]
    assert body.read() == content
    assert list(spool.iterdir()) == []

    with TestClient(create_status_app()) as status:
        deleted = status.delete(f"/v1/jobs/{job_id}", headers=auth)
        assert deleted.status_code == 204, deleted.text
        assert status.get(f"/v1/jobs/{job_id}", headers=auth).status_code == 404
    assert s3_keys(s3_server, bucket) == []


def test_retention_deletes_expired_audio_from_the_bucket(
    ingest: TestClient,
    s3_server: S3Server,
    bucket: str,
    auth: dict[str, str],
    sessions: sessionmaker[Session],
) -> None:
    response = upload(ingest, auth)
    assert response.status_code == 202, response.text
    job_id = uuid.UUID(response.json()["id"])
    with session_scope(sessions) as session:
        # Finished long ago (the lifecycle itself is tested elsewhere).
        session.execute(
            update(Job).where(Job.id == job_id)
            .values(status="completed", finished_at=Job.created_at - timedelta(days=40))
        )  # fmt: skip
    assert len(s3_keys(s3_server, bucket)) == 1
    housekeep(sessions, SweeperSettings(audio_retention_days=30))
    assert s3_keys(s3_server, bucket) == []
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert job.audio_deleted_at is not None
        events = session.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
        ).all()
    assert events[-1].actor == "retention"


def test_unreachable_storage_is_a_503_and_leaves_nothing(
    bucket: str,
    spool: Path,
    auth: dict[str, str],
    tenant: str,
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VOXFLOW_S3_ENDPOINT_URL", "http://127.0.0.1:1")  # nothing listens
    with TestClient(create_ingest_app(IngestSettings(spool_dir=spool))) as down:
        ready = down.get("/readyz")
        assert ready.status_code == 503
        assert "StorageUnavailableError" in ready.json()["checks"]["storage"]
        response = upload(down, auth)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "storage_unavailable"
    assert response.headers["retry-after"] == "5"
    assert list(spool.iterdir()) == []
    with sessions() as session:
        assert session.scalars(select(Job).where(Job.tenant == tenant)).all() == []


def test_a_missing_bucket_stops_the_api_at_startup(
    bucket: str, spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOXFLOW_S3_BUCKET", f"{bucket}-missing")
    app = create_ingest_app(IngestSettings(spool_dir=spool))
    with pytest.raises(StorageConfigError, match=r"missing.*does not exist"), TestClient(app):
        pass
